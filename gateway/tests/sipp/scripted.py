"""Scripted SIP peers in-process, for tests where exact bytes and timing matter:
:class:`UdpPeer` (the test reads what arrives and decides what to send), :func:`answer`
(a response to a request) and :func:`request_to` (a request as a centre sends it)."""
from __future__ import annotations

import asyncio
import time

from gateway.adapters.sip import Headers, SipRejection, SipRequest, SipResponse, parse_message


class UdpPeer(asyncio.DatagramProtocol):
    """A scripted SIP peer: the test reads what arrives and decides what to send."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[SipRequest | SipResponse | SipRejection, tuple, float]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.queue.put_nowait((parse_message(data), addr, time.monotonic()))

    async def recv(self, timeout_s: float = 3.0):
        return await asyncio.wait_for(self.queue.get(), timeout_s)

    def send(self, data: bytes, addr: tuple) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def answer(req: SipRequest, status: int, reason: str = "OK", body: bytes = b"",
           extra: list[tuple[str, str]] | None = None) -> bytes:
    pairs = [("Via", v) for v in req.headers.get_all("Via")]
    pairs += [("From", req.headers.get("From")), ("To", f"{req.headers.get('To')};tag=peer"),
              ("Call-ID", req.headers.get("Call-ID")), ("CSeq", req.headers.get("CSeq"))]
    pairs += extra or []
    if body:
        pairs.append(("Content-Type", "application/scaip+xml"))
    return SipResponse(status, reason, Headers.of(pairs), body).to_bytes()


def request_to(port: int, method: str = "MESSAGE", *, branch: str = "z9hG4bKpeer1", body: bytes = b"<mrs/>") -> bytes:
    pairs = [("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch={branch}"), ("Max-Forwards", "70"),
             ("From", "<sip:arc@centre.test>;tag=c1"), ("To", "<sip:4711@127.0.0.1>"), ("Call-ID", "in-1"),
             ("CSeq", f"1 {method}"), ("Content-Type", "application/scaip+xml")]
    return SipRequest(method, "sip:4711@127.0.0.1", Headers.of(pairs), body).to_bytes()
