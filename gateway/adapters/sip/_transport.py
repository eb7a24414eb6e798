"""asyncio protocols for SIP over UDP and over TCP/TLS streams (no SIP logic here)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from gateway.adapters.sip._errors import SipTransportError
from gateway.adapters.sip._message import SipMessage, SipRejection, StreamDecoder

log = logging.getLogger(__name__)

Peer = tuple[Any, ...]
Reply = Callable[[bytes], None]
Dispatch = Callable[["SipMessage | SipRejection", Reply, Peer, "StreamConnection | None"], None]


class UdpEndpoint(asyncio.DatagramProtocol):
    """The UA's one UDP socket: requests out, responses and the centre's requests in."""

    def __init__(self, on_datagram: Callable[[bytes, Peer], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        self.icmp_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Peer) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: timers E/F carry on (the peer may come up)
        self.icmp_errors += 1
        log.debug("sip: udp error %s", exc)

    def sendto(self, data: bytes, addr: Peer) -> None:
        if self.transport is None or self.transport.is_closing():
            raise SipTransportError("UDP socket is closed", target=f"{addr[0]}:{addr[1]}")
        self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection; frames messages with :class:`StreamDecoder`."""

    def __init__(self, dispatch: Dispatch, on_lost: Callable[["StreamConnection", Exception | None], None],
                 max_bytes: int, label: str) -> None:
        self.dispatch = dispatch
        self.on_lost = on_lost
        self.decoder = StreamDecoder(max_bytes)
        self.label = label
        self.transport: asyncio.Transport | None = None
        self.peer: Peer = ("", 0)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername") or ("", 0)

    def data_received(self, data: bytes) -> None:
        for msg in self.decoder.feed(data):
            self.dispatch(msg, self.write, self.peer, self)
        if self.decoder.fatal is not None and self.transport is not None:
            log.warning("sip: closing %s connection to %s: unframeable stream (%s)", self.label, self.peer,
                        self.decoder.fatal.detail)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_lost(self, exc)

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and self.decoder.fatal is None

    def write(self, data: bytes) -> None:
        if not self.usable:
            raise SipTransportError(f"{self.label} connection to {self.peer[0]}:{self.peer[1]} is closed",
                                    target=f"{self.peer[0]}:{self.peer[1]}")
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
