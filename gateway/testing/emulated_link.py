"""Emulated transports for the demo, tests and benchmarks (no hardware, no library).

``EmulatedLink`` is an in-process byte pipe: the gateway side is a FrameLink (``send``),
the device side writes with ``device_write`` and receives downlinks through
``on_device_bytes``. Every hop is scheduled on the event loop (``call_soon``), so bytes
arrive asynchronously as they would from a serial reader thread. ``EmulatedAir`` carries
BLE advertisements (BTHome service data) from emulated sensors to the gateway's advert
handler. Links can be ``cut()`` to emulate a pulled cable or radio loss.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from gateway.adapters.transports import BytesCallback, LinkState, StateCallback

AdvertCallback = Callable[[str, bytes, int], None]   # (mac, service data, rssi)


class EmulatedLink:
    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, on_bytes: BytesCallback | None = None,
                 on_state: StateCallback | None = None) -> None:
        self.name = name
        self._loop = loop
        self.on_bytes = on_bytes                       # gateway side receiver
        self.on_device_bytes: Callable[[bytes], None] | None = None   # device side receiver
        self.on_state = on_state
        self.state = LinkState.CONNECTING
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped = 0

    # gateway side -------------------------------------------------------
    def start(self) -> None:
        self._set(LinkState.UP)

    def stop(self) -> None:
        self._set(LinkState.STOPPED)

    def send(self, data: bytes) -> None:
        if self.state is not LinkState.UP or self.on_device_bytes is None:
            self.dropped += 1
            return
        self.bytes_out += len(data)
        self._loop.call_soon(self.on_device_bytes, bytes(data))

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "emulated", "state": self.state.value,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "dropped_writes": self.dropped}

    # device side --------------------------------------------------------
    def device_write(self, data: bytes) -> bool:
        if self.state is not LinkState.UP or self.on_bytes is None:
            self.dropped += 1
            return False
        self.bytes_in += len(data)
        self._loop.call_soon(self.on_bytes, self.name, bytes(data))
        return True

    def cut(self) -> None:
        self._set(LinkState.DOWN)

    def restore(self) -> None:
        self._set(LinkState.UP)

    def _set(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        if self.on_state is not None:
            self._loop.call_soon(self.on_state, self.name, state)


class EmulatedAir:
    """BLE advertising medium: emulated sensors ``advertise``; the gateway's handler hears it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_advert: AdvertCallback | None = None) -> None:
        self._loop = loop
        self.on_advert = on_advert
        self.adverts = 0
        self.jammed = False

    def advertise(self, mac: str, service_data: bytes, rssi: int = -60) -> None:
        if self.jammed or self.on_advert is None:
            return
        self.adverts += 1
        self._loop.call_soon(self.on_advert, mac, bytes(service_data), rssi)
