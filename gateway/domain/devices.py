"""Device registry: what the gateway knows about each device right now.

Fed by ingress ``DeviceUpdate`` records (every accepted frame or advert), read by the
supervision and battery rules and by the status / health snapshots. Pure domain: no
I/O; times are epoch seconds from the injected clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from gateway.domain.model import Role


@dataclass
class DeviceState:
    device_id: str
    role: Role | None = None
    configured: bool = False
    supervised: bool = False
    silent_after_s: float = 0.0          # 0 = registry default
    last_seen: float | None = None       # wall clock, for display
    last_seen_mono: float | None = None  # monotonic, for supervision (immune to NTP steps)
    battery_pct: int | None = None
    rssi: int | None = None
    fw_version: str | None = None
    link: str | None = None
    silent: bool = False
    silent_since: float | None = None
    frames: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "role": self.role.name.lower() if self.role is not None else None,
            "configured": self.configured,
            "last_seen": self.last_seen,
            "battery_pct": self.battery_pct,
            "rssi": self.rssi,
            "fw": self.fw_version,
            "link": self.link,
            "silent": self.silent,
            "frames": self.frames,
        }


class DeviceRegistry:
    """Per-device last seen / battery / RSSI / firmware. Unknown devices are tracked too.

    ``started_at`` and ``mono`` arguments are monotonic seconds (supervision must survive
    a wall-clock step, e.g. NTP setting the time on a Pi without RTC); ``at`` is wall time.
    """

    def __init__(self, configured: Iterable[Any] = (), *, default_silent_after_s: float = 180.0,
                 started_at: float = 0.0, max_unknown: int = 256) -> None:
        self.default_silent_after_s = default_silent_after_s
        self.started_at = started_at
        self.max_unknown = max_unknown
        self._devices: dict[str, DeviceState] = {}
        for d in configured:  # config.DeviceSection (duck-typed: id, role, silent_after_s, supervised)
            self._devices[d.id] = DeviceState(
                device_id=d.id, role=d.role, configured=True,
                supervised=bool(getattr(d, "supervised", True)),
                silent_after_s=float(getattr(d, "silent_after_s", 0.0) or 0.0),
            )

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self):
        return iter(list(self._devices.values()))

    def get(self, device_id: str) -> DeviceState | None:
        return self._devices.get(device_id)

    def silent_after_s(self, state: DeviceState) -> float:
        return state.silent_after_s or self.default_silent_after_s

    def apply(self, update: Any, mono: float | None = None) -> DeviceState | None:
        """Record an ingress DeviceUpdate (duck-typed: device_id, at, role, battery_pct, rssi, fw_version)."""
        return self.seen(
            update.device_id, getattr(update, "at", None), mono=mono,
            role=getattr(update, "role", None), battery_pct=getattr(update, "battery_pct", None),
            rssi=getattr(update, "rssi", None), fw_version=getattr(update, "fw_version", None),
            link=getattr(update, "link", None),
        )

    def seen(self, device_id: str, at: float | None, *, mono: float | None = None,
             role: Role | None = None, battery_pct: int | None = None,
             rssi: int | None = None, fw_version: str | None = None, link: str | None = None) -> DeviceState | None:
        st = self._devices.get(device_id)
        if st is None:
            unknown = sum(1 for s in self._devices.values() if not s.configured)
            if unknown >= self.max_unknown:  # bounded: a radio full of strangers cannot grow memory
                return None
            st = self._devices[device_id] = DeviceState(device_id=device_id)
        if at is not None and (st.last_seen is None or at > st.last_seen):
            st.last_seen = at
        if mono is not None and (st.last_seen_mono is None or mono > st.last_seen_mono):
            st.last_seen_mono = mono
        st.frames += 1
        if role is not None and st.role is None:
            try:
                st.role = Role(role)
            except ValueError:
                pass
        if battery_pct is not None and 0 <= battery_pct <= 100:
            st.battery_pct = int(battery_pct)
        if rssi is not None and rssi != 0x7F:
            st.rssi = int(rssi)
        if fw_version:
            st.fw_version = str(fw_version)
        if link:
            st.link = link
        return st

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in sorted(self._devices.values(), key=lambda s: (not s.configured, s.device_id))]
