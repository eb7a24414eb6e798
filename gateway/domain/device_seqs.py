"""Device sequence numbers that must outlive the journal (F13, docs/protocol.md "Sequence
numbers after a lost journal").

Downlink seqs of a device are reserved in blocks of :data:`DOWNLINK_SEQ_BLOCK` in the
journal state (``downlink_seq/<dev>``). For a keyed device two high-water marks are also
written, once per block, as ``seq_mark/*`` state keys, which the journal adapter mirrors
into a small file beside the journal (``<journal>.seqs``) and seeds into a journal that has
no state (fresh or quarantined):

- ``seq_mark/dl/<dev>``: the top of the reserved downlink block; after a lost journal the
  downlink seqs continue from it, so the device accepts the new gateway's ACKs;
- ``seq_mark/up/<dev>``: above every uplink frame seq accepted (the highest + at least half
  of :data:`UPLINK_MARK_BLOCK`); after a lost journal it is the frame window's *floor*: a
  captured old frame is refused as a replay and a device below it is answered ERROR 3 and
  renumbers above it.

With no saved value at all (dead SD card, replaced gateway without the old files) the
first downlink block starts from the wall clock: ``(seconds since 2020-01-01) × 2 + 1``
(:func:`clock_seed`) — above anything a device accepted before, as long as the old gateway
sent fewer than 2 downlinks per second to it on average since its own seed.

Pure domain: the journal is the :class:`~gateway.domain.ingress_types.IngressStore` port.
"""
from __future__ import annotations

import logging
import struct
from typing import Callable

from gateway.codec._result import CodecError
from gateway.domain.ingress_types import IngressStore
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.domain.ingress")

DOWNLINK_SEQ_BLOCK = 64          # downlink seqs reserved per journal write
UPLINK_MARK_BLOCK = 256          # uplink high-water mark written once per this many seqs
SEQ_EPOCH_S = 1_577_836_800      # 2020-01-01T00:00:00Z
CLOCK_SEED_SHIFT = 1             # × 2: room for 2 downlinks per second on average
_SEQ_MAX = 0xFFFFFFFF


def clock_seed(now_s: float) -> int:
    """First downlink seq of a device with no saved state: ``(s since 2020) × 2 + 1``
    (1 with a clock before 2020, at most 0xF0000000 with one far in the future)."""
    return min(max(int(now_s) - SEQ_EPOCH_S, 0) << CLOCK_SEED_SHIFT, 0xF0000000 - 1) + 1


def _u32(blob: bytes | None) -> int | None:
    return struct.unpack("<I", blob)[0] if blob is not None and len(blob) == 4 else None


class DeviceSeqs:
    """Downlink seq blocks and the durable uplink/downlink marks of keyed devices."""

    def __init__(self, journal: IngressStore, clock: Clock, keyed: Callable[[str], bool]) -> None:
        self._journal = journal
        self._clock = clock
        self._keyed = keyed
        self._dl_next: dict[str, int] = {}
        self._dl_reserved: dict[str, int] = {}
        self._up_mark: dict[str, int] = {}

    # ---- uplink
    def recovered_floor(self, device: str) -> int:
        """The uplink mark of a device whose replay state is gone (0 if none)."""
        return _u32(self._journal.get_state(f"seq_mark/up/{device}")) or 0

    def note_uplink(self, device: str, seq: int) -> None:
        """An accepted uplink frame seq: move the durable mark up once per half block.
        Queued before the frame's event (same FIFO writer), so durable before its ACK."""
        if not self._keyed(device):
            return
        mark = self._up_mark.get(device)
        if mark is None:
            mark = self._up_mark[device] = self.recovered_floor(device)
        if seq < mark - UPLINK_MARK_BLOCK // 2:
            return
        mark = min(seq + UPLINK_MARK_BLOCK, _SEQ_MAX)
        self._up_mark[device] = mark
        self._set(f"seq_mark/up/{device}", mark)

    # ---- downlink
    def load(self, device: str) -> int:
        """Downlink seq state of a device, loaded on its first frame. The first block is
        reserved at once — queued BEFORE the frame's event is appended, so it is durable
        before that event's ACK (sent after the commit) uses a seq from it."""
        nxt = self._dl_next.get(device)
        if nxt is None:
            nxt = _u32(self._journal.get_state(f"downlink_seq/{device}"))
            if nxt is None:
                nxt = _u32(self._journal.get_state(f"seq_mark/dl/{device}"))
            if nxt is None:
                nxt = clock_seed(self._clock.time())
                log.info("device %s: no saved downlink seq; starting at %d (wall clock)", device, nxt)
            self._dl_next[device] = nxt
            self._dl_reserved[device] = nxt
            self._reserve(device, nxt)
        return nxt

    def next(self, device: str) -> int:
        # Residual (docs/architecture.md): a seq used before its block's commit completed (an
        # immediate ACK DUPLICATE/ERROR to a device's first frame after a start, or > 32
        # downlinks within one commit) can be reused after a crash inside that commit. The
        # device rejects such a frame as a replay and re-sends; none is accepted twice.
        nxt = self.load(device)
        self._reserve(device, nxt)
        if nxt >= _SEQ_MAX:
            raise CodecError(f"downlink sequence space of {device} exhausted; re-pair the device with a new key")
        self._dl_next[device] = nxt + 1
        return nxt

    def _reserve(self, device: str, nxt: int) -> None:
        """Reserve the next block once half of the current one is used (prefetch: the
        write is committed long before a seq of the new block is sent)."""
        reserved = self._dl_reserved[device]
        if nxt < reserved - DOWNLINK_SEQ_BLOCK // 2:
            return
        reserved = min(max(reserved, nxt) + DOWNLINK_SEQ_BLOCK, _SEQ_MAX)
        self._set(f"downlink_seq/{device}", reserved)
        if self._keyed(device):
            self._set(f"seq_mark/dl/{device}", reserved)
        self._dl_reserved[device] = reserved

    def _set(self, key: str, value: int) -> None:
        try:
            self._journal.set_state(key, struct.pack("<I", value))
        except Exception as exc:  # noqa: BLE001 - the Journal port's failure (disk broken or full)
            # Keep sending (ACKs after a PUBACK, FEEDBACK): the device's replay window
            # refuses a reused seq after a restart, it never accepts a replayed frame.
            log.error("%s not persisted: %s; continuing from memory", key, exc)
