"""Frame authentication (truncated HMAC-SHA256) and the replay window."""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from gateway.codec._result import Rejection
from gateway.codec.enums import RejectReason

TAG_LEN = 8
KEY_LEN = 16
WINDOW_SIZE = 64
_MASK = (1 << WINDOW_SIZE) - 1
_STATE_VERSION = 1
_STATE = struct.Struct("<BIQ")


def frame_tag(key: bytes, signed: bytes) -> bytes:
    """First 8 bytes of HMAC-SHA256(key, body[0:15+len])."""
    return hmac.new(key, signed, hashlib.sha256).digest()[:TAG_LEN]


def verify_tag(key: bytes, signed: bytes, tag: bytes | None) -> bool:
    if tag is None or len(tag) != TAG_LEN:
        return False
    return hmac.compare_digest(frame_tag(key, signed), tag)


@dataclass
class ReplayWindow:
    """IPsec-style anti-replay window: the highest accepted ``seq`` and a 64-bit bitmap.

    Bit ``i`` of ``bitmap`` set means ``highest - i`` was accepted. ``seq`` 0 is never
    valid (counters start at 1).
    """

    highest: int = 0
    bitmap: int = 0

    def check(self, seq: int) -> bool:
        """Would ``seq`` be accepted? (no state change)"""
        if seq <= 0 or seq > 0xFFFFFFFF:
            return False
        if seq > self.highest:
            return True
        offset = self.highest - seq
        if offset >= WINDOW_SIZE:
            return False
        return not (self.bitmap >> offset) & 1

    def seen(self, seq: int) -> bool:
        """True if ``seq`` is inside the window and already accepted."""
        if seq <= 0 or seq > self.highest:
            return False
        offset = self.highest - seq
        return offset < WINDOW_SIZE and bool((self.bitmap >> offset) & 1)

    def accept(self, seq: int) -> bool:
        """Mark ``seq`` accepted if allowed; False (and no change) if it is a replay."""
        if not self.check(seq):
            return False
        if seq > self.highest:
            shift = seq - self.highest
            self.bitmap = ((self.bitmap << shift) | 1) & _MASK if shift < WINDOW_SIZE else 1
            self.highest = seq
        else:
            self.bitmap |= 1 << (self.highest - seq)
        return True

    def to_bytes(self) -> bytes:
        return _STATE.pack(_STATE_VERSION, self.highest, self.bitmap)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ReplayWindow | Rejection":
        if len(blob) != _STATE.size:
            return Rejection(RejectReason.LENGTH, f"replay window state must be {_STATE.size} bytes, got {len(blob)}")
        version, highest, bitmap = _STATE.unpack(blob)
        if version != _STATE_VERSION:
            return Rejection(RejectReason.VERSION, f"replay window state version {version}, expected {_STATE_VERSION}")
        if highest == 0 and bitmap:
            return Rejection(RejectReason.BAD_PAYLOAD, "replay window bitmap set with highest 0")
        return cls(highest, bitmap)
