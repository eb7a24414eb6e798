"""COBS (Consistent Overhead Byte Stuffing, Cheshire & Baker 1999)."""
from __future__ import annotations

from gateway.codec._result import Rejection
from gateway.codec.enums import RejectReason


def cobs_encode(data: bytes) -> bytes:
    """Encode ``data`` so it contains no 0x00 byte (delimiter not appended)."""
    out = bytearray()
    code_pos = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF and i != last:
            # a full block of 254 non-zero bytes; the next block starts only if data follows
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
    out[code_pos] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | Rejection:
    """Decode one COBS block (without its 0x00 delimiter). Never raises."""
    if not data:
        return Rejection(RejectReason.EMPTY, "empty COBS block")
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            return Rejection(RejectReason.COBS, f"zero byte inside COBS data at offset {i}")
        end = i + code
        if end > n:
            return Rejection(RejectReason.COBS, f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        chunk = data[i + 1:end]
        if 0 in chunk:
            return Rejection(RejectReason.COBS, f"zero byte inside COBS data near offset {i}")
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
