"""Rejection values (decoders return them instead of raising) and their counters."""
from __future__ import annotations

from collections import Counter
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
    """Counts rejections per reason (and per device where one is known)."""

    def __init__(self) -> None:
        self._by_reason: Counter[RejectReason] = Counter()
        self._by_device: Counter[tuple[str, RejectReason]] = Counter()

    def count(self, rejection: Rejection) -> None:
        self._by_reason[rejection.reason] += 1
        if rejection.device_id is not None:
            self._by_device[(rejection.device_id, rejection.reason)] += 1

    def __getitem__(self, reason: RejectReason | str) -> int:
        return self._by_reason[RejectReason(reason)]

    @property
    def total(self) -> int:
        return sum(self._by_reason.values())

    def snapshot(self) -> dict[str, int]:
        """Counts per reason value, for health reports (only reasons seen)."""
        return {r.value: n for r, n in sorted(self._by_reason.items(), key=lambda kv: kv[0].value)}

    def for_device(self, device_id: str) -> dict[str, int]:
        return {r.value: n for (d, r), n in self._by_device.items() if d == device_id}
