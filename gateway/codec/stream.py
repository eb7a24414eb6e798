"""Byte-stream decoder: arbitrary chunks in, frames or rejections out."""
from __future__ import annotations

from gateway.codec._result import Rejection
from gateway.codec.enums import RejectReason
from gateway.codec.frame import MAX_WIRE, Frame, decode_wire


class StreamDecoder:
    """Splits a link's byte stream at 0x00 delimiters and decodes each frame.

    Garbage between delimiters is one rejected frame; the next 0x00 resynchronises. A
    frame longer than ``max_wire`` encoded bytes is rejected once as ``oversize`` and the
    rest of it is dropped unbuffered up to the next 0x00 (the rejection is reported as
    soon as the cap is crossed, so an endless stream without delimiters is still seen). Empty segments (consecutive 0x00, used by senders to
    flush or resynchronise the receiver) are ignored, not counted.
    """

    def __init__(self, max_wire: int = MAX_WIRE) -> None:
        self._max = max_wire
        self._buf = bytearray()
        self._dropping = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Frame | Rejection]:
        out: list[Frame | Rejection] = []
        start = 0
        data = bytes(chunk)
        while start <= len(data):
            end = data.find(0, start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._dropping:
                self._buf += piece
                if len(self._buf) > self._max:
                    out.append(Rejection(RejectReason.OVERSIZE, f"frame exceeds {self._max} encoded bytes; dropping it up to the next 0x00"))
                    self._buf.clear()
                    self._dropping = True
            if end < 0:
                break
            if self._dropping:
                self._dropping = False
            elif self._buf:
                out.append(decode_wire(bytes(self._buf)))
                self._buf.clear()
            start = end + 1
        return out
