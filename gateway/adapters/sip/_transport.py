"""asyncio protocols for SIP over UDP and over TCP/TLS streams (no SIP logic here)."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
import time
from typing import Any, Callable

from gateway.adapters.sip._errors import SipTransportError
from gateway.adapters.sip._message import SipMessage, SipRejection, StreamDecoder

log = logging.getLogger(__name__)

Peer = tuple[Any, ...]
Reply = Callable[[bytes], None]
Dispatch = Callable[["SipMessage | SipRejection", Reply, Peer, "StreamConnection | None"], None]


class UdpEndpoint:
    """The UA's one UDP socket: requests out, responses and the centre's requests in.

    A plain non-blocking socket read with ``loop.add_reader`` (not asyncio's datagram
    transport) so each datagram comes with the kernel's software receive timestamp
    (Linux ``SO_TIMESTAMPING`` with ``SOF_TIMESTAMPING_RX_SOFTWARE``; ``SO_TIMESTAMPNS``
    would give the read time on loopback): :attr:`rx_wait_s` is how long the datagram
    waited in the socket before the loop got to it, so the route can tell when the centre's
    answer *arrived* (as the MQTT alarm lane takes a PUBACK's time where it arrives),
    whatever else the loop was doing. 0.0 where the platform has no such timestamp."""

    _TS = 37 if sys.platform.startswith("linux") else None      # SO_TIMESTAMPING (asm-generic, x86, arm)
    _TS_FLAGS = (1 << 3) | (1 << 4)                                # RX_SOFTWARE | SOFTWARE
    _BATCH = 64                       # datagrams read per wake-up at most (the loop's other work goes on)

    def __init__(self, on_datagram: Callable[[bytes, Peer], None]) -> None:
        self.on_datagram = on_datagram
        self.sock: socket.socket | None = None
        self.icmp_errors = 0
        self.rx_wait_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, host: str, port: int) -> tuple[Any, ...]:
        """Bind and start reading; returns the bound address. Raises OSError."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self._TS is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, self._TS, self._TS_FLAGS)
                except OSError:
                    self._TS = None       # no receive timestamps here: rx_wait_s stays 0.0
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        return sock.getsockname()

    def _readable(self) -> None:
        sock = self.sock
        for _ in range(self._BATCH):
            if sock is None or sock.fileno() < 0:
                return
            try:
                data, anc, _flags, addr = sock.recvmsg(65536, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:        # ICMP port unreachable and the like: timers E/F carry on
                self.icmp_errors += 1
                log.debug("sip: udp error %s", exc)
                continue
            self.rx_wait_s = self._waited(anc)
            self.on_datagram(data, addr)

    def _waited(self, anc: list[tuple[int, int, bytes]]) -> float:
        """Seconds since the datagram arrived (SCM_TIMESTAMPING: three timespecs, the first
        the software one; 64- or 32-bit ``time_t``)."""
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == self._TS and len(blob) in (48, 24):
                sec, nsec = struct.unpack("qq" if len(blob) == 48 else "ii", blob[:len(blob) // 3])
                if sec:
                    return min(60.0, max(0.0, time.time() - (sec + nsec / 1e9)))
        return 0.0

    def sendto(self, data: bytes, addr: Peer) -> None:
        if self.sock is None or self.sock.fileno() < 0:
            raise SipTransportError("UDP socket is closed", target=f"{addr[0]}:{addr[1]}")
        try:
            self.sock.sendto(data, addr[:2])
        except (BlockingIOError, InterruptedError):
            log.debug("sip: udp send buffer full; the transaction retransmits")
        except OSError as exc:
            raise SipTransportError(f"UDP send to {addr[0]}:{addr[1]} failed: {exc.strerror or exc}",
                                    target=f"{addr[0]}:{addr[1]}") from None

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None


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
