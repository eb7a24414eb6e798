"""Rejection values (decoders return them instead of raising) and their counters."""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from gateway.codec.enums import RejectReason
from gateway.errors import GatewayError


class CodecError(GatewayError, ValueError):
    """Root exception of gateway.codec: an *encoder* was given a value the wire cannot carry.

    Decoders never raise; they return :class:`Rejection`. ``field`` names the offending
    field and ``value`` is what was given.
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


@dataclass(frozen=True)
class Rejection:
    """A refused input. ``detail`` says what exactly was wrong, for the log."""

    reason: RejectReason
    detail: str = ""
    device_id: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"rejected": True, "reason": self.reason.value, "detail": self.detail}
        if self.device_id is not None:
            out["device"] = self.device_id
        return out


class RejectCounters:
    """Counts rejections per reason (exact, for ever) and per source device (bounded).

    A radio attacker can rotate advert identities without end (F14: 200k identities once
    grew the per-device table to 34 MB), so the per-device counts are an LRU of at most
    ``max_sources`` devices; the least recently rejected one is folded into the
    :data:`OTHER` bucket when a new one arrives. The per-reason counts and :attr:`total`
    stay exact, and ``sum(per device) + other == total of rejections with a device``.
    """

    OTHER = "other"

    def __init__(self, max_sources: int = 1024) -> None:
        if max_sources < 1:
            raise ValueError(f"max_sources must be >= 1, got {max_sources}")
        self.max_sources = max_sources
        self._by_reason: Counter[RejectReason] = Counter()
        self._by_device: OrderedDict[str, Counter[RejectReason]] = OrderedDict()
        self._other: Counter[RejectReason] = Counter()
        self.sources_folded = 0

    def count(self, rejection: Rejection) -> None:
        self._by_reason[rejection.reason] += 1
        dev = rejection.device_id
        if dev is None:
            return
        per = self._by_device.get(dev)
        if per is None:
            if len(self._by_device) >= self.max_sources:
                _, old = self._by_device.popitem(last=False)
                self._other.update(old)
                self.sources_folded += 1
            per = self._by_device[dev] = Counter()
        else:
            self._by_device.move_to_end(dev)
        per[rejection.reason] += 1

    def __getitem__(self, reason: RejectReason | str) -> int:
        return self._by_reason[RejectReason(reason)]

    @property
    def total(self) -> int:
        return sum(self._by_reason.values())

    @property
    def sources_tracked(self) -> int:
        return len(self._by_device)

    def snapshot(self) -> dict[str, int]:
        """Counts per reason value, for health reports (only reasons seen)."""
        return {r.value: n for r, n in sorted(self._by_reason.items(), key=lambda kv: kv[0].value)}

    def for_device(self, device_id: str) -> dict[str, int]:
        """Counts of one tracked device ({} once it was folded into :data:`OTHER`)."""
        per = self._by_device.get(device_id, {})
        return {r.value: n for r, n in per.items()}

    def other(self) -> dict[str, int]:
        """Counts of devices no longer tracked individually, per reason."""
        return {r.value: n for r, n in self._other.items()}
