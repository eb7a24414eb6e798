"""Transports: byte links and advert sources that feed ingress.

Light on purpose: importing ``gateway.adapters.transports`` pulls in no serial/BLE library. The
adapters live in their own modules (``serial_link`` → pyserial, ``ble`` → bleak,
``emulated`` → nothing) and are imported by the composition root (gateway/daemon/).
"""
from __future__ import annotations

import enum
from typing import Callable, Protocol

from gateway.errors import GatewayError


class LinkState(str, enum.Enum):
    CONNECTING = "connecting"   # not opened yet / retrying
    UP = "up"
    DOWN = "down"               # lost; reconnecting after reconnect_s
    STOPPED = "stopped"


class TransportError(GatewayError):
    """Root exception of gateway.adapters.transports (``link`` names the link)."""

    def __init__(self, message: str, *, link: str = "") -> None:
        super().__init__(message)
        self.link = link


BytesCallback = Callable[[str, bytes], None]          # (link name, data), called on the loop
StateCallback = Callable[[str, LinkState], None]      # (link name, state), called on the loop


class ByteLink(Protocol):
    """A FrameLink (gateway.domain.ports) whose state the status endpoint reports."""

    name: str
    state: LinkState

    def send(self, data: bytes) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict: ...


__all__ = ["LinkState", "TransportError", "ByteLink", "BytesCallback", "StateCallback"]
