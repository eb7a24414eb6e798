"""Care rules: bed not returned, door at night, missed dose, geofence exit.

Two clocks, each for what it is good at (gateway/domain/rules/_base.py, "Time"):

- **time of day** (is this bed exit inside the night window in ``gateway.timezone``?) and
  the timestamps an alarm carries are wall time: the event's ``occurred_at``, the tick's
  ``now``;
- **how long** (30 minutes out of bed, 30 minutes after a dose fell due, 5 minutes between
  two door alarms) is measured on the injected clock's ``monotonic()``, so a wall-clock
  step (an NTP correction, a wrong RTC at boot) neither delays nor suppresses an alarm, nor
  fires one early. An event starts its timer at ``monotonic() - age`` where ``age`` is
  ``received_at - occurred_at`` (the frame's own age field: both stamps come from one
  wall reading, so no step can fall between them).

Pending bed exits and due doses persist across a restart as **wall-clock anchors** (the
monotonic clock restarts with the machine) and are converted back on restore:
:func:`_base.restored_mono`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from gateway.config import BedRule, DoorRule, DoseRule, Zone, ZoneShape
from gateway.config import GeofenceRule as GeofenceConfig
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import Clock
from gateway.domain.rules._base import Raised, event_mono, in_window, restored_mono, wall_anchor


@dataclass(frozen=True)
class _Pending:
    """A running timer: ``at`` the event's wall stamp (reported), ``mono`` when it started."""

    at: float
    mono: float
    test: bool


class BedNotReturnedRule:
    """Bed exit inside the night window, not back within ``max_out_min`` → BED_NOT_RETURNED.

    Only exits that happen inside the window start the timer (going to bed late is not an
    alarm). Once started, the alarm fires at the deadline even if the window has ended
    meanwhile: the resident left the bed at night and has not come back (safety first).
    One alarm per exit; ``bed_in`` clears. The window is wall time of day; the 30 minutes
    are monotonic (module docstring).
    """

    name = "bed"

    def __init__(self, cfg: BedRule, tz: ZoneInfo, clock: Clock) -> None:
        self.cfg = cfg
        self.tz = tz
        self.clock = clock
        self._out: dict[str, _Pending] = {}

    def on_event(self, event: Event) -> Iterable[Raised]:
        if event.code is EventCode.BED_OUT:
            if in_window(event.occurred_at, self.cfg.window_start, self.cfg.window_end, self.tz):
                if event.device_id not in self._out:
                    self._out[event.device_id] = _Pending(event.occurred_at, event_mono(self.clock, event), event.test)
            else:
                self._out.pop(event.device_id, None)
        elif event.code in (EventCode.BED_IN, EventCode.BED_SEIZURE):
            self._out.pop(event.device_id, None)
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        limit = self.cfg.max_out_min * 60.0
        mono = self.clock.monotonic()
        out = []
        for dev, p in list(self._out.items()):
            if mono - p.mono >= limit:
                del self._out[dev]
                out.append(Raised(EventCode.BED_NOT_RETURNED, dev, now, {
                    "left_at": p.at, "out_min": round((mono - p.mono) / 60.0, 1),
                    "max_out_min": self.cfg.max_out_min}, Role.BED, p.test))
        return out

    @property
    def pending(self) -> dict[str, float]:
        return {d: p.at for d, p in self._out.items()}

    def snapshot(self) -> dict[str, Any]:
        """``{device: [left_at, test, anchor]}``: ``anchor`` is the exit on today's wall clock."""
        return {d: [p.at, p.test, wall_anchor(self.clock, p.mono)] for d, p in self._out.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self._out = {str(d): _restore_pending(self.clock, v) for d, v in state.items()}


def _restore_pending(clock: Clock, v: Any) -> _Pending:
    """``[at, test, anchor]`` (or ``[at, test]`` as stored before anchors: the anchor is ``at``)."""
    at, test = float(v[0]), bool(v[1])
    anchor = float(v[2]) if len(v) > 2 else at
    if not (math.isfinite(at) and math.isfinite(anchor)):
        raise ValueError(f"non-finite time in stored rule state: {v!r}")
    return _Pending(at, restored_mono(clock, anchor), test)


class DoorAtNightRule:
    """Door opened inside the window → DOOR_AT_NIGHT at once (one per ``repeat_after_min``,
    measured on the monotonic clock: a wall step neither repeats nor mutes the alarm)."""

    name = "door"

    def __init__(self, cfg: DoorRule, tz: ZoneInfo, clock: Clock) -> None:
        self.cfg = cfg
        self.tz = tz
        self.clock = clock
        self._last: dict[str, float] = {}      # device -> monotonic time of its last alarm

    def on_event(self, event: Event) -> Iterable[Raised]:
        if event.code is not EventCode.DOOR_OPEN:
            return ()
        t = event.occurred_at
        if not in_window(t, self.cfg.window_start, self.cfg.window_end, self.tz):
            return ()
        mono = event_mono(self.clock, event)
        last = self._last.get(event.device_id)
        if last is not None and mono - last < self.cfg.repeat_after_min * 60.0:
            return ()
        self._last[event.device_id] = mono
        return (Raised(EventCode.DOOR_AT_NIGHT, event.device_id, t,
                       {"opened_at": t, "trigger": event.event_id}, Role.DOOR, event.test),)

    def tick(self, now: float) -> Iterable[Raised]:
        return ()


class MissedDoseRule:
    """``dose_due`` not followed by ``dose_taken`` (or the device's own ``dose_missed``)
    within ``delay_min`` (monotonic) → DOSE_MISSED raised by the gateway (``source: gateway``)."""

    name = "dose"

    def __init__(self, cfg: DoseRule, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self._due: dict[tuple[str, int, int], _Pending] = {}

    @staticmethod
    def _key(event: Event) -> tuple[str, int, int] | None:
        try:
            return (event.device_id, int(event.data["slot"]), int(event.data["scheduled_min"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

    def on_event(self, event: Event) -> Iterable[Raised]:
        if event.code not in (EventCode.DOSE_DUE, EventCode.DOSE_TAKEN, EventCode.DOSE_MISSED):
            return ()
        key = self._key(event)
        if key is None:
            return ()
        if event.code is EventCode.DOSE_DUE:
            if key not in self._due:
                self._due[key] = _Pending(event.occurred_at, event_mono(self.clock, event), event.test)
        else:
            self._due.pop(key, None)
        return ()

    def snapshot(self) -> dict[str, Any]:
        """``{"device/slot/scheduled_min": [due_at, test, anchor]}`` (``anchor``: as for the bed rule)."""
        return {f"{d}/{slot}/{sched}": [p.at, p.test, wall_anchor(self.clock, p.mono)]
                for (d, slot, sched), p in self._due.items()}

    def restore(self, state: dict[str, Any]) -> None:
        due = {}
        for k, v in state.items():
            d, slot, sched = k.split("/")
            due[(d, int(slot), int(sched))] = _restore_pending(self.clock, v)
        self._due = due

    def tick(self, now: float) -> Iterable[Raised]:
        mono = self.clock.monotonic()
        out = []
        for key, p in list(self._due.items()):
            if mono - p.mono >= self.cfg.delay_min * 60.0:
                del self._due[key]
                dev, slot, sched = key
                out.append(Raised(EventCode.DOSE_MISSED, dev, now, {
                    "slot": slot, "scheduled_min": sched, "due_at": p.at,
                    "delay_min": self.cfg.delay_min, "source": "gateway"}, Role.DISPENSER, p.test))
        return out


_EARTH_R_M = 6371008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_R_M * math.asin(min(1.0, math.sqrt(a)))


def point_in_polygon(lat: float, lon: float, points: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting on (lat, lon); fine for home-sized zones away from the antimeridian."""
    inside = False
    n = len(points)
    for i in range(n):
        y1, x1 = points[i]
        y2, x2 = points[(i + 1) % n]
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def zone_contains(zone: Zone, lat: float, lon: float) -> bool:
    if zone.shape is ZoneShape.CIRCLE:
        return haversine_m(zone.lat, zone.lon, lat, lon) <= zone.radius_m
    return point_in_polygon(lat, lon, zone.points)


@dataclass
class _GeoState:
    inside: bool | None = None


class GeofenceRule:
    """Gateway-side safe-zone check of ``gps_position``: leaving every zone that applies to
    the device → GEOFENCE_EXIT (``source: gateway``). The device's own ``geofence_exit``
    counts as the exit (no second alarm); ``geofence_enter`` / a position inside re-arms.
    Positions without a fix (``fix_quality`` 0) are ignored."""

    name = "geofence"

    def __init__(self, cfg: GeofenceConfig) -> None:
        self.cfg = cfg
        self._state: dict[str, _GeoState] = {}

    def zones_for(self, device_id: str) -> list[Zone]:
        return [z for z in self.cfg.zones if not z.devices or device_id in z.devices]

    def on_event(self, event: Event) -> Iterable[Raised]:
        if event.code not in (EventCode.GPS_POSITION, EventCode.GEOFENCE_EXIT, EventCode.GEOFENCE_ENTER):
            return ()
        st = self._state.setdefault(event.device_id, _GeoState())
        if event.code is EventCode.GEOFENCE_EXIT:
            st.inside = False
            return ()
        if event.code is EventCode.GEOFENCE_ENTER:
            st.inside = True
            return ()
        zones = self.zones_for(event.device_id)
        lat, lon = event.data.get("lat"), event.data.get("lon")
        if not zones or not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
            return ()
        if event.data.get("fix_quality", 1) == 0:
            return ()
        inside = any(zone_contains(z, lat, lon) for z in zones)
        was = st.inside
        st.inside = inside
        if inside or was is False:
            return ()
        nearest = min(zones, key=lambda z: haversine_m(z.lat, z.lon, lat, lon) if z.shape is ZoneShape.CIRCLE
                      else haversine_m(z.points[0][0], z.points[0][1], lat, lon))
        return (Raised(EventCode.GEOFENCE_EXIT, event.device_id, event.occurred_at, {
            **{k: event.data[k] for k in ("lat", "lon", "alt_m", "fix_quality", "sats") if k in event.data},
            "zone": nearest.id, "source": "gateway", "trigger": event.event_id}, Role.GPS, event.test),)

    def tick(self, now: float) -> Iterable[Raised]:
        return ()
