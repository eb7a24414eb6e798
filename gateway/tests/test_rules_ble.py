"""BLE receiver supervision: the watchdog's ``degraded`` → technical alarm (and its clearing),
the watchdog in ``gateway status`` / wt.health/1, and GATT health values through the daemon."""
from __future__ import annotations

import dataclasses

from gateway.codec.gatt import BPM, encode_gatt
from gateway.codec.ieee11073 import MedFloat
from gateway.config import load_config
from gateway.domain.model import EventClass, EventCode
from gateway.domain.rules import BleReceiverRule, build_rules
from gateway.adapters.status import health_payload, render_table
from gateway.adapters.transports.ble_watchdog import HangKind, WatchdogState, WatchdogStatus
from gateway.testing.clock import FakeClock

OK = WatchdogStatus(state=WatchdogState.SCANNING, degraded=False, hangs_detected=0, scanner_restarts=0,
                    adapter_power_cycles=0, recoveries=0, last_hang=None, last_error="", last_report_age_s=1.0)
HUNG = dataclasses.replace(OK, state=WatchdogState.POWER_CYCLING, degraded=True, hangs_detected=1,
                           scanner_restarts=1, last_hang=HangKind.SILENT, last_error="no adverts for 120 s")


def test_degraded_watchdog_raises_one_technical_alarm_per_episode_and_clears_it():
    current = [None]
    clock = FakeClock(0.0, mono=0.0)
    rule = BleReceiverRule("gw-1", lambda: current[0], clock)

    def tick(t):                                   # t seconds after start (wall and monotonic)
        clock.advance(t - clock.t)
        return rule.tick(t)
    assert list(tick(0.0)) == []                 # BLE not running yet
    current[0] = OK
    assert list(tick(1.0)) == []
    current[0] = HUNG
    [fault] = tick(2.0)
    assert fault.code is EventCode.BLE_RECEIVER_FAULT and fault.code.event_class is EventClass.TECHNICAL_ALARM
    assert fault.data == {"hang": "no_adverts", "error": "no adverts for 120 s", "scanner_restarts": 1,
                          "adapter_power_cycles": 0}
    assert list(tick(3.0)) == [] and list(tick(50.0)) == []   # once per episode
    current[0] = dataclasses.replace(OK, recoveries=1)
    [restored] = tick(62.5)
    assert restored.code is EventCode.BLE_RECEIVER_RESTORED and restored.data == {"down_s": 60.5}
    assert list(tick(63.0)) == []
    current[0] = HUNG                                   # a second episode alarms again
    assert [r.code for r in tick(70.0)] == [EventCode.BLE_RECEIVER_FAULT]


def test_rule_is_in_the_table_only_with_ble_enabled(tmp_path):
    def cfg(enabled: bool):
        return load_config(None, env={}, overrides={"gateway": {"id": "gw-1", "data_dir": str(tmp_path)},
                                                     "ble": {"enabled": enabled}})
    for enabled in (True, False):
        rules = build_rules(cfg(enabled), None, None, lambda: True, FakeClock(), ble_status=lambda: None)
        assert any(isinstance(r, BleReceiverRule) for r in rules) is enabled


def _snap(ble):
    return {"gateway": "gw-1", "version": "0.1.0", "at": 1_795_000_000.0, "uptime_s": 5, "uplink": {}, "journal": {},
            "devices": [], "last_alarms": [], "ble": ble}


def test_watchdog_in_status_table_and_health():
    snap = _snap({"watchdog": HUNG.to_dict(), "reports": 3})
    h = health_payload(snap)
    assert h["ble"] == {"state": "power_cycling_adapter", "degraded": True, "hangs_detected": 1, "recoveries": 0,
                        "last_hang": "no_adverts", "last_report_age_s": 1.0}
    table = render_table(snap)
    assert "ble     DEGRADED" in table and "power cycles=0" in table and "no adverts for 120 s" in table
    assert "ble" not in health_payload(_snap(None)) and "ble " not in render_table(_snap(None))


def test_daemon_raises_and_publishes_the_ble_alarm_and_takes_gatt_measurements(offline_gateway):
    """The real wiring (bootstrap, journal, forwarder, rule engine) with a fake route: a degraded
    watchdog becomes a published technical alarm; a GATT health value becomes a measurement event."""
    gw = offline_gateway("gw-ble", ble={"enabled": True},
                         devices={"0a0b0c0d0e0f": {"role": "health", "link": "ble-health"}})
    rt = gw.rt

    class Watchdog:
        st = HUNG

        def status(self):
            return self.st

    class Scanner:
        def status(self):
            return {"reports": 0, "bthome_devices": 0, "state": "scanning"}

    wd = Watchdog()
    rt.ble.receiver = (Scanner(), wd)   # what BleSupervisor.async_start sets up (the BlueZ side is tested in test_daemon_ble)

    rt.forwarder.start()
    rt.engine.tick()
    gw.settle()
    rt.engine.tick()
    gw.settle()
    wd.st = OK
    rt.engine.tick()
    gw.settle()
    value = encode_gatt(BPM, 0x00, {"systolic": MedFloat(150, 0), "diastolic": MedFloat(90, 0),
                                    "mean_arterial_pressure": MedFloat(110, 0)})
    rt.on_gatt_measurement("0A:0B:0C:0D:0E:0F", BPM, value)
    gw.settle()
    gw.pub.puback()
    gw.settle()
    got = gw.published()
    types = [d.body["type"] for d in got]
    assert types.count("ble_receiver_fault") == 1 and types.count("ble_receiver_restored") == 1, types
    fault = next(d for d in got if d.body["type"] == "ble_receiver_fault")
    assert fault.body["device"] == "gw-ble" and fault.alarm
    m = [d for d in got if d.body["type"] == "measurement"]
    assert len(m) == 1 and m[0].body["device"] == "0a0b0c0d0e0f" and m[0].body["data"]["systolic"] == 150
    assert rt.snapshot()["ble"]["watchdog"]["degraded"] is False
