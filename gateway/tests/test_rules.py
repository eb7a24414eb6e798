"""Rules with an injected clock: bed, door, dose, geofence, supervision, battery, mains, uplink."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.config import (BatteryRule, BedRule, DoorRule, DoseRule, GeofenceRule as GeofenceCfg,
                            Zone, ZoneShape, load_config)
from gateway.domain.devices import DeviceRegistry
from gateway.adapters.mains import EmulatedMainsInput, MainsState
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.rules import (BedNotReturnedRule, DoorAtNightRule, GeofenceRule, LowBatteryRule, MainsRule,
                           MissedDoseRule, RuleEngine, SupervisionRule, UplinkRule, build_rules,
                           haversine_m, in_window, point_in_polygon)
from gateway.domain.event_ids import GatewayEventIds, time_based_event_id
from gateway.domain.rules import Raised
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import device_event
from gateway.tests._kit import FakeJournal, FakeSink

OSLO = ZoneInfo("Europe/Oslo")
BED = "a4c1380a0001"
DOOR = "a4c1380a0002"
DISP = "a4c1380a0003"
GPS = "a4c1380a0004"


def at(y, mo, d, h, mi, s=0, tz=OSLO) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()


_seq = iter(range(1, 1_000_000))


def ev(code: EventCode, device: str, t: float, test: bool = False, **data) -> Event:
    return device_event(next(_seq), code, t, device=device, data=data, test=test)


class Driven:
    """A rule on its own FakeClock, driven as the running gateway drives it: each call first
    lets time pass (wall and monotonic together) up to the call's wall time."""

    def __init__(self, make, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rule = make(self.clock)

    def _to(self, t: float) -> None:
        if t > self.clock.t:
            self.clock.advance(t - self.clock.t)

    def on_event(self, event: Event):
        self._to(event.received_at)
        return self.rule.on_event(event)

    def tick(self, now: float):
        self._to(now)
        return self.rule.tick(now)


# ------------------------------------------------------------------ windows
@pytest.mark.parametrize("hm,expected", [
    ((20, 29), False), ((20, 30), True), ((23, 59), True), ((0, 0), True), ((5, 59), True),
    ((6, 0), False), ((12, 0), False)])
def test_window_across_midnight(hm, expected):
    assert in_window(at(2026, 11, 23, *hm), dt.time(20, 30), dt.time(6, 0), OSLO) is expected


def test_window_same_day_and_timezone_aware():
    start, end = dt.time(9, 0), dt.time(17, 0)
    # 08:30 UTC is 09:30 in Oslo in winter (UTC+1) -> inside; 16:30 UTC = 17:30 Oslo -> outside
    assert in_window(at(2026, 1, 10, 8, 30, tz=dt.timezone.utc), start, end, OSLO)
    assert not in_window(at(2026, 1, 10, 16, 30, tz=dt.timezone.utc), start, end, OSLO)
    # summer time (UTC+2): 07:30 UTC = 09:30 Oslo
    assert in_window(at(2026, 7, 10, 7, 30, tz=dt.timezone.utc), start, end, OSLO)
    assert not in_window(at(2026, 7, 10, 7, 30, tz=dt.timezone.utc), start, end, ZoneInfo("UTC"))


# ------------------------------------------------------------------ bed
def bed_rule(**kw) -> Driven:
    return Driven(lambda clock: BedNotReturnedRule(BedRule(**kw), OSLO, clock))


def door_rule(**kw) -> Driven:
    return Driven(lambda clock: DoorAtNightRule(DoorRule(**kw), OSLO, clock))


def dose_rule(**kw) -> Driven:
    return Driven(lambda clock: MissedDoseRule(DoseRule(**kw), clock))


def test_bed_exit_at_night_not_back_within_30_min_alarms_once():
    r = bed_rule()
    t0 = at(2026, 11, 23, 23, 50)
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    assert list(r.tick(t0 + 29 * 60 + 59)) == []
    raised = list(r.tick(t0 + 30 * 60))           # 00:20, across midnight
    assert [x.code for x in raised] == [EventCode.BED_NOT_RETURNED]
    assert raised[0].device_id == BED and raised[0].data["out_min"] == 30.0 and raised[0].role is Role.BED
    assert list(r.tick(t0 + 3600)) == []          # one alarm per exit


def test_bed_back_in_time_no_alarm():
    r = bed_rule()
    t0 = at(2026, 11, 23, 2, 0)
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    r.on_event(ev(EventCode.BED_IN, BED, t0 + 25 * 60))
    assert list(r.tick(t0 + 60 * 60)) == []


def test_bed_exit_outside_window_is_not_supervised():
    r = bed_rule()
    t0 = at(2026, 11, 23, 19, 0)                  # evening, before 20:30
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    assert list(r.tick(t0 + 3 * 3600)) == []      # still out at 22:00: no alarm
    r2 = bed_rule()
    t1 = at(2026, 11, 23, 6, 0)                   # window end is exclusive
    r2.on_event(ev(EventCode.BED_OUT, BED, t1))
    assert list(r2.tick(t1 + 3600)) == []


def test_bed_exit_late_in_window_alarms_after_window_end():
    r = bed_rule()
    t0 = at(2026, 11, 23, 5, 50)
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    assert len(list(r.tick(t0 + 30 * 60))) == 1  # 06:20: night exit, not back


def test_bed_threshold_and_window_from_config():
    r = bed_rule(max_out_min=10, window_start=dt.time(22, 0), window_end=dt.time(7, 0))
    t0 = at(2026, 11, 23, 21, 0)
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    assert list(r.tick(t0 + 3600)) == []
    t1 = at(2026, 11, 24, 6, 30)                  # next morning, still inside 22:00-07:00
    r.on_event(ev(EventCode.BED_OUT, BED, t1))
    assert list(r.tick(t1 + 9 * 60)) == []
    assert len(list(r.tick(t1 + 10 * 60))) == 1


def test_bed_repeated_out_keeps_first_exit_time():
    r = bed_rule()
    t0 = at(2026, 11, 23, 1, 0)
    r.on_event(ev(EventCode.BED_OUT, BED, t0))
    r.on_event(ev(EventCode.BED_OUT, BED, t0 + 20 * 60))   # repeated advert
    assert len(list(r.tick(t0 + 30 * 60))) == 1


# ------------------------------------------------------------------ door
def test_door_open_in_window_alarms_at_once_with_repeat_limit():
    r = door_rule()
    t0 = at(2026, 11, 23, 2, 15)
    out = list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, t0)))
    assert [x.code for x in out] == [EventCode.DOOR_AT_NIGHT] and out[0].occurred_at == t0
    assert list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, t0 + 60))) == []       # within 5 min
    assert len(list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, t0 + 5 * 60)))) == 1
    assert list(r.on_event(ev(EventCode.DOOR_CLOSED, DOOR, t0 + 400))) == []


def test_door_open_outside_window_is_fine():
    r = door_rule()
    assert list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, at(2026, 11, 23, 14, 0)))) == []
    assert list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, at(2026, 11, 23, 22, 59)))) == []
    assert len(list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, at(2026, 11, 23, 23, 0))))) == 1


def test_test_flag_propagates():
    r = door_rule()
    out = list(r.on_event(ev(EventCode.DOOR_OPEN, DOOR, at(2026, 11, 23, 3, 0), test=True)))
    assert out[0].test is True


# ------------------------------------------------------------------ dose
def test_dose_due_not_taken_within_delay_raises_missed():
    r = dose_rule(delay_min=30)
    t0 = at(2026, 11, 23, 8, 0)
    r.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=1, scheduled_min=480))
    assert list(r.tick(t0 + 29 * 60)) == []
    out = list(r.tick(t0 + 30 * 60))
    assert [x.code for x in out] == [EventCode.DOSE_MISSED]
    assert out[0].data["slot"] == 1 and out[0].data["scheduled_min"] == 480 and out[0].data["source"] == "gateway"
    assert list(r.tick(t0 + 90 * 60)) == []


def test_dose_taken_or_device_missed_clears():
    r = dose_rule(delay_min=30)
    t0 = at(2026, 11, 23, 8, 0)
    r.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=1, scheduled_min=480))
    r.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=2, scheduled_min=490))
    r.on_event(ev(EventCode.DOSE_TAKEN, DISP, t0 + 60, slot=1, scheduled_min=480))
    r.on_event(ev(EventCode.DOSE_MISSED, DISP, t0 + 60, slot=2, scheduled_min=490))  # device alarmed itself
    assert list(r.tick(t0 + 3600)) == []


def test_dose_taken_for_other_slot_does_not_clear():
    r = dose_rule(delay_min=15)
    t0 = at(2026, 11, 23, 8, 0)
    r.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=1, scheduled_min=480))
    r.on_event(ev(EventCode.DOSE_TAKEN, DISP, t0 + 60, slot=2, scheduled_min=480))
    r.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=1))            # malformed: ignored
    assert len(list(r.tick(t0 + 15 * 60))) == 1


# ------------------------------------------------------------------ geofence
HOME = Zone(id="home", shape=ZoneShape.CIRCLE, lat=59.9139, lon=10.7522, radius_m=300)
PARK = Zone(id="park", shape=ZoneShape.POLYGON,
            points=((59.920, 10.760), (59.925, 10.760), (59.925, 10.770), (59.920, 10.770)))


def pos(t, lat, lon, **kw):
    return ev(EventCode.GPS_POSITION, GPS, t, lat=lat, lon=lon, alt_m=10, fix_quality=kw.get("fix", 1), sats=7, zone=255)


def test_geometry():
    assert haversine_m(59.9139, 10.7522, 59.9139, 10.7522) == 0
    assert 1100 < haversine_m(59.9139, 10.7522, 59.9239, 10.7522) < 1125   # 0.01° lat ≈ 1.11 km
    assert point_in_polygon(59.922, 10.765, PARK.points)
    assert not point_in_polygon(59.919, 10.765, PARK.points)


def test_geofence_exit_raised_once_and_rearmed_by_return():
    r = GeofenceRule(GeofenceCfg(zones=(HOME, PARK)))
    t = at(2026, 11, 23, 12, 0)
    assert list(r.on_event(pos(t, 59.9140, 10.7525))) == []          # home
    assert list(r.on_event(pos(t + 60, 59.922, 10.765))) == []        # in the park zone
    out = list(r.on_event(pos(t + 120, 59.95, 10.80)))                # outside all zones
    assert [x.code for x in out] == [EventCode.GEOFENCE_EXIT] and out[0].data["source"] == "gateway"
    assert list(r.on_event(pos(t + 180, 59.951, 10.801))) == []       # still outside: no repeat
    assert list(r.on_event(pos(t + 240, 59.9140, 10.7525))) == []     # back home
    assert len(list(r.on_event(pos(t + 300, 59.96, 10.80)))) == 1     # leaves again


def test_geofence_device_own_exit_suppresses_gateway_duplicate_and_no_fix_ignored():
    r = GeofenceRule(GeofenceCfg(zones=(HOME,)))
    t = at(2026, 11, 23, 12, 0)
    r.on_event(pos(t, 59.9140, 10.7525))
    r.on_event(ev(EventCode.GEOFENCE_EXIT, GPS, t + 10, lat=59.95, lon=10.8))
    assert list(r.on_event(pos(t + 20, 59.95, 10.80))) == []
    r.on_event(ev(EventCode.GEOFENCE_ENTER, GPS, t + 30, lat=59.9139, lon=10.7522))
    assert list(r.on_event(pos(t + 40, 10.0, 10.0, fix=0))) == []     # no fix: ignored
    assert len(list(r.on_event(pos(t + 50, 59.95, 10.80)))) == 1


def test_geofence_zone_limited_to_devices():
    other = Zone(id="x", lat=0.0, lon=0.0, radius_m=10, devices=("ffffffffffff",))
    r = GeofenceRule(GeofenceCfg(zones=(other,)))
    assert list(r.on_event(pos(at(2026, 11, 23, 12, 0), 59.95, 10.8))) == []   # no zone applies to GPS


# ------------------------------------------------------------------ supervision / battery
def registry(t0: float, **kw):
    cfg = load_config(None, env={}, overrides={
        "devices": {BED: {"role": "bed"}, DOOR: {"role": "door", "silent_after_s": 600},
                    DISP: {"role": "dispenser", "supervised": False}}})
    return DeviceRegistry(cfg.devices, default_silent_after_s=kw.get("silent", 180), started_at=t0)


def test_device_silent_within_three_minutes_then_recovered():
    t0 = 1_000_000.0
    clock = FakeClock(t0 + 1.7e9, mono=t0)
    reg = registry(t0)
    r = SupervisionRule(reg, clock)

    def seen(dev, t, **kw):
        reg.seen(dev, t + 1.7e9, mono=t, **kw)

    def tick(t):
        clock.advance(t - clock.mono)
        return list(r.tick(clock.time()))

    seen(BED, t0 + 10, battery_pct=80, rssi=-60)
    seen(DOOR, t0 + 10)
    assert tick(t0 + 189) == []
    out = tick(t0 + 190)
    assert [(x.code, x.device_id) for x in out] == [(EventCode.DEVICE_SILENT, BED)]
    assert out[0].data["last_seen"] == t0 + 10 + 1.7e9
    assert reg.get(BED).silent and reg.get(BED).role is Role.BED
    assert tick(t0 + 300) == []                       # once
    seen(BED, t0 + 400)
    out = tick(t0 + 401)
    assert [(x.code, x.device_id) for x in out] == [(EventCode.DEVICE_RECOVERED, BED)]
    assert not reg.get(BED).silent
    seen(BED, t0 + 600)
    out = tick(t0 + 610)                              # door has its own 600 s limit
    assert [(x.code, x.device_id) for x in out] == [(EventCode.DEVICE_SILENT, DOOR)]


def test_wall_clock_step_does_not_make_devices_silent():
    clock = FakeClock(1e9, mono=100.0)
    reg = registry(100.0)
    r = SupervisionRule(reg, clock)
    reg.seen(BED, 1e9, mono=100.0)
    reg.seen(DOOR, 1e9, mono=100.0)
    clock.advance(50)
    clock.set(1e9 + 86400 * 365)                 # NTP stepped the wall clock a year forward
    assert list(r.tick(clock.time())) == []


def test_never_seen_device_counts_from_start_and_unsupervised_are_skipped():
    t0 = 5000.0
    clock = FakeClock(mono=t0 + 180)
    reg = registry(t0)
    r = SupervisionRule(reg, clock)
    out = {x.device_id for x in r.tick(0)}
    assert out == {BED}                   # DISP unsupervised, DOOR limit 600 s
    reg.seen("0badc0ffee00", 0, mono=t0)  # unknown device: tracked, not supervised
    clock.advance(10_000 - 180)
    assert "0badc0ffee00" not in {x.device_id for x in r.tick(0)}


def test_low_battery_once_with_rearm_and_device_own_alarm_counts():
    reg = registry(0.0)
    r = LowBatteryRule(BatteryRule(low_pct=20, rearm_pct=30), reg)
    reg.seen(BED, 1, battery_pct=25)
    assert list(r.tick(2)) == []
    reg.seen(BED, 3, battery_pct=19)
    out = list(r.tick(4))
    assert [x.code for x in out] == [EventCode.LOW_BATTERY] and out[0].data["battery_pct"] == 19
    reg.seen(BED, 5, battery_pct=15)
    assert list(r.tick(6)) == []
    reg.seen(BED, 7, battery_pct=25)                  # below rearm: still quiet
    assert list(r.tick(8)) == []
    reg.seen(BED, 9, battery_pct=95)                  # charged
    assert list(r.tick(10)) == []
    reg.seen(BED, 11, battery_pct=10)
    assert len(list(r.tick(12))) == 1
    r.on_event(ev(EventCode.LOW_BATTERY, DOOR, 13, battery_pct=5, battery_mv=3000))
    reg.seen(DOOR, 13, battery_pct=5)
    assert list(r.tick(14)) == []                     # the device already alarmed


# ------------------------------------------------------------------ mains / uplink
def test_mains_lost_and_restored_with_debounce():
    src = EmulatedMainsInput(MainsState.ON)
    r = Driven(lambda clock: MainsRule("gw-1", src, 5, clock), FakeClock(0.0, mono=0.0))
    assert list(r.tick(0)) == [] and list(r.tick(10)) == []
    src.set(MainsState.OFF)
    assert list(r.tick(20)) == []
    src.set(MainsState.ON)                           # 2 s blip: ignored
    assert list(r.tick(22)) == [] and list(r.tick(30)) == []
    src.set(MainsState.OFF)
    r.tick(40)
    out = list(r.tick(45))
    assert [x.code for x in out] == [EventCode.MAINS_LOST] and out[0].device_id == "gw-1"
    assert list(r.tick(100)) == []
    src.set(MainsState.UNKNOWN)
    assert list(r.tick(110)) == []
    src.set(MainsState.ON)
    r.tick(120)
    out = list(r.tick(125))
    assert [x.code for x in out] == [EventCode.MAINS_RESTORED] and out[0].data["down_s"] == 80.0


def test_mains_starting_on_battery_is_reported():
    r = MainsRule("gw-1", EmulatedMainsInput(MainsState.OFF), 0, FakeClock())
    assert [x.code for x in r.tick(1)] == [EventCode.MAINS_LOST]


def test_uplink_lost_after_threshold_and_restored():
    state = {"up": True}
    r = Driven(lambda clock: UplinkRule("gw-1", lambda: state["up"], 60, clock), FakeClock(0.0, mono=0.0))
    assert list(r.tick(0)) == []
    state["up"] = False
    assert list(r.tick(10)) == [] and list(r.tick(69)) == []
    out = list(r.tick(70))
    assert [x.code for x in out] == [EventCode.UPLINK_LOST] and out[0].occurred_at == 10
    assert list(r.tick(100)) == []
    state["up"] = True
    out = list(r.tick(130))
    assert [x.code for x in out] == [EventCode.UPLINK_RESTORED] and out[0].data["down_s"] == 120.0
    state["up"] = False                               # short blip: nothing
    r.tick(140)
    state["up"] = True
    assert list(r.tick(150)) == []


# ------------------------------------------------------------------ engine
def test_engine_assigns_gateway_ids_submits_and_isolates_failures():
    clock = FakeClock(at(2026, 11, 23, 2, 0))
    sink, counter = FakeSink(), FakeJournal(counter=41)

    class Broken:
        name = "broken"

        def on_event(self, event):
            raise RuntimeError("bug")

        def tick(self, now):
            raise RuntimeError("bug")

    eng = RuleEngine("gw-0001", [Broken(), DoorAtNightRule(DoorRule(), OSLO, clock),
                                 BedNotReturnedRule(BedRule(), OSLO, clock)], counter, sink, clock)
    eng.on_event(ev(EventCode.DOOR_OPEN, DOOR, clock.t))
    eng.on_event(ev(EventCode.BED_OUT, BED, clock.t))
    clock.advance(31 * 60)
    eng.tick()
    assert [e.code for e in sink.events] == [EventCode.DOOR_AT_NIGHT, EventCode.BED_NOT_RETURNED]
    assert [e.event_id for e in sink.events] == ["gw-0001-g0000000042", "gw-0001-g0000000043"]
    assert sink.events[1].received_at == clock.t and sink.events[1].role is Role.BED
    assert sink.events[0].event_class.value == "care"
    assert eng.errors == 3                            # two on_event calls + one tick
    # the engine's own events never feed back
    assert eng.on_event(sink.events[0]) == []


class Fires:
    """A rule that raises the given alarms on every tick (and records that it ran)."""

    def __init__(self, name: str, *codes: EventCode, device: str = BED) -> None:
        self.name, self.codes, self.device, self.ticks = name, codes, device, 0

    def on_event(self, event):
        return ()

    def tick(self, now):
        self.ticks += 1
        return [Raised(code, self.device, now, {"n": self.ticks}) for code in self.codes]


def test_rule_alarm_without_a_gateway_counter_gets_a_time_based_id_and_other_rules_still_run():
    """Disk full: no gateway counter can be reserved. The care alarms still reach the sink with
    the forwarder's fallback id scheme (``<gw>-t<epoch ms>``), unique within one tick, and the
    rules after the one that raised still run."""
    clock, sink, counter = FakeClock(at(2026, 11, 23, 2, 0)), FakeSink(), FakeJournal()
    counter.counter_error = OSError(28, "No space left on device")
    first, second = Fires("first", EventCode.BED_NOT_RETURNED, EventCode.DOOR_AT_NIGHT), Fires("second",
                                                                                            EventCode.DOSE_MISSED)
    eng = RuleEngine("gw-1", [first, second], counter, sink, clock)
    out = eng.tick()
    assert [e.code for e in sink.events] == [EventCode.BED_NOT_RETURNED, EventCode.DOOR_AT_NIGHT,
                                             EventCode.DOSE_MISSED]
    assert out == sink.events and second.ticks == 1 and eng.errors == 0 and eng.raised == 3
    ids = [e.event_id for e in sink.events]
    assert ids[0] == time_based_event_id("gw-1", clock.time())          # the forwarder's own scheme
    assert all(i.startswith("gw-1-t") and len(i) == len("gw-1-t") + 13 for i in ids)
    assert len(set(ids)) == 3, ids                    # one millisecond, three alarms: no id collides
    assert eng.on_event(sink.events[0]) == []         # a time-based id is ours too: no feedback
    counter.counter_error = None                      # disk freed: back to counter ids
    eng.tick()
    assert [e.event_id for e in sink.events[3:]] == ["gw-1-g0000000001", "gw-1-g0000000002", "gw-1-g0000000003"]


def test_one_issuer_shared_by_two_raisers_never_repeats_a_fallback_id():
    counter = FakeJournal(counter=6)
    ids = GatewayEventIds("gw-1", counter)
    clock = FakeClock()
    eng = RuleEngine("gw-1", [Fires("first", EventCode.BED_NOT_RETURNED)], counter, FakeSink(), clock, ids=ids)
    assert ids.next(clock.time()) == "gw-1-g0000000007"
    counter.counter_error = OSError(28, "No space left on device")
    technical = ids.next(clock.time())                     # e.g. the forwarder's uplink_lost
    [rule_alarm] = eng.tick()                              # same millisecond
    assert technical == time_based_event_id("gw-1", clock.time()) and rule_alarm.event_id != technical
    assert rule_alarm.event_id == f"gw-1-t{int(clock.time() * 1000) + 1:013d}" and ids.time_based == 2


def test_a_refused_submission_or_a_failing_observer_does_not_stop_the_other_alarms():
    class Refusing(FakeSink):
        def submit(self, event, on_stored=None):
            if event.code is EventCode.BED_NOT_RETURNED:
                raise RuntimeError("sink refused")
            super().submit(event, on_stored)

    seen: list[str] = []

    def observer(event):
        seen.append(event.event_id)
        raise RuntimeError("observer bug")

    sink, second = Refusing(), Fires("second", EventCode.DOSE_MISSED)
    eng = RuleEngine("gw-1", [Fires("first", EventCode.BED_NOT_RETURNED, EventCode.DOOR_AT_NIGHT), second],
                     FakeJournal(), sink, FakeClock(), on_raised=observer)
    eng.tick()
    assert [e.code for e in sink.events] == [EventCode.DOOR_AT_NIGHT, EventCode.DOSE_MISSED]
    assert len(seen) == 3 and second.ticks == 1 and eng.errors == 1


def test_rule_alarm_reaches_the_platform_like_a_technical_alarm_when_the_counter_fails(offline_gateway,
                                                                                      monkeypatch):
    """The real wiring: with the hwm file unwritable, a care alarm raised by a rule and a
    technical alarm raised by the forwarder in the same millisecond are both published on the
    alarm topic, each with its own time-based id (one issuer, shared by the bootstrap)."""
    gw = offline_gateway("gw-rule")
    gw.rt.engine.rules.insert(0, Fires("probe", EventCode.BED_NOT_RETURNED))
    gw.rt.forwarder.start()

    def disk_full() -> int:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(gw.rt.journal, "next_gateway_counter", disk_full)
    gw.rt.engine.tick()
    gw.rt.forwarder.raise_technical(EventCode.UPLINK_LOST, {"route": "fallback"})    # same millisecond
    gw.settle()
    alarms = {a.body["type"]: a for a in gw.published("alarm")}
    assert {"bed_not_returned", "uplink_lost"} <= set(alarms), list(alarms)
    rule_id, tech_id = alarms["bed_not_returned"].event_id, alarms["uplink_lost"].event_id
    assert rule_id.startswith("gw-rule-t") and tech_id.startswith("gw-rule-t"), (rule_id, tech_id)
    assert rule_id != tech_id                         # one issuer: no collision, neither alarm swallowed
    assert alarms["bed_not_returned"].alarm and alarms["bed_not_returned"].body["device"] == BED


def test_build_rules_from_config_respects_enabled_flags():
    cfg = load_config(None, env={}, overrides={"rules": {"door": {"enabled": False}}})
    names = [r.name for r in build_rules(cfg, DeviceRegistry(), EmulatedMainsInput(), lambda: True, FakeClock())]
    assert "door" not in names and {"bed", "dose", "battery", "supervision", "mains", "uplink"} <= set(names)
    assert "geofence" not in names                    # no zones configured


def test_pending_bed_exit_and_dose_survive_a_restart():
    t0 = at(2026, 11, 23, 2, 0)
    clock, store = FakeClock(t0), FakeJournal()

    def engine(sink):
        return RuleEngine("gw-1", [BedNotReturnedRule(BedRule(), OSLO, clock),
                                   MissedDoseRule(DoseRule(delay_min=30), clock)], FakeJournal(), sink, clock,
                          state=store)

    first = engine(FakeSink())
    first.on_event(ev(EventCode.BED_OUT, BED, t0))
    first.on_event(ev(EventCode.DOSE_DUE, DISP, t0, slot=1, scheduled_min=120))
    first.on_event(ev(EventCode.DOOR_OPEN, DOOR, t0))        # no state change: no extra write
    assert set(store.state) == {"rules.bed", "rules.dose"} and store.state_writes == 2
    clock.advance(10 * 60)
    first.tick()
    assert store.state_writes == 2                            # unchanged state is not rewritten
    # gateway restarts 10 minutes into the wait
    sink = FakeSink()
    second = engine(sink)
    clock.advance(20 * 60)
    second.tick()
    assert sorted(e.code.name for e in sink.events) == ["BED_NOT_RETURNED", "DOSE_MISSED"]
    assert json_loads(store.state["rules.bed"]) == {} and json_loads(store.state["rules.dose"]) == {}
    # and a third start has nothing pending any more
    sink3 = FakeSink()
    engine(sink3).tick(t0 + 3600)
    assert sink3.events == []


def test_unreadable_rule_state_starts_empty():
    store = FakeJournal()
    store.state["rules.bed"] = b"{not json"
    clock = FakeClock()
    eng = RuleEngine("gw-1", [BedNotReturnedRule(BedRule(), OSLO, clock)], FakeJournal(), FakeSink(), clock,
                     state=store)
    assert eng.rules[0].pending == {}


def json_loads(raw: bytes):
    import json
    return json.loads(raw)
