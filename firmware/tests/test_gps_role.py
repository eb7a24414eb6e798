"""The GPS tracker role on the real MicroPython interpreter: a replayed NMEA log drives
the role through the App to a simulated gateway (simulated clock); the cellular path
runs against the pty modem emulator (real clock) with the gateway out of reach."""
from __future__ import annotations

import json

import pytest

from firmware.tests.gps_fixtures import gga, offset, rmc, walk
from firmware.tests.modem_emulator import MPY_PTY_UART, ModemEmulator
from firmware.tests.mpy import run_mpy

HEAP = "192k"
HOME = (59.9127, 10.7461)
E7 = (599127000, 107461000)


def write_log(tmp_path, lines: list[str], name: str = "log.nmea") -> tuple[str, int]:
    p = tmp_path / name
    data = "\r\n".join(lines) + "\r\n"
    p.write_text(data)
    return str(p), len(data)


def run_role(tmp_path, log: str, bytes_per_s: int, cfg: dict, *, end_ms: int, battery="(100, 4100, 0)",
             pins=None, files: dict | None = None, extra: str = "") -> dict:
    files = files or {}
    script = f'''
import simdev, json
from drivers.replay import NmeaUart
hal, gw = simdev.make({str(tmp_path / "flash.img")!r}, "gps", {cfg!r}, end_ms={end_ms}, battery={battery},
                      pins={pins or {}!r})
for name, text in {files!r}.items():
    with open(hal.data_dir + "/" + name, "w") as f:
        f.write(text)
hal._uart_cfg["gps"] = NmeaUart({log!r}, hal.clock, {bytes_per_s})
{extra}
simdev.boot(hal)
hb = gw.of_type(3)
print(json.dumps({{"events": [(s, c, a, list(d)) for s, c, a, d in gw.events],
                   "errors": [bytes(f.payload[1:]).decode("utf-8", "replace") for f in gw.of_type(0x7F)],
                   "rejects": sum(f.payload[10] | f.payload[11] << 8 for f in hb), "slept": hal.slept,
                   "boots": hal.boots, "causes": hal.reset_causes}}))
'''
    stdout = run_mpy(script, heap=HEAP, timeout=120).stdout
    # a crash inside the firmware (e.g. MemoryError) is caught by main.boot and turned
    # into a reset: fail here with its traceback instead of on a timing assertion later
    assert "Traceback" not in stdout, stdout
    return json.loads(stdout.strip().splitlines()[-1])


def test_walk_out_of_the_home_zone_raises_one_exit_then_enter(tmp_path):
    # 1 Hz: 150 s walking north from home at 1.5 m/s (exit of the 200 m zone at ~150 m +
    # margin), 100 s beyond, then back inside
    lines = walk(*HOME, start_s=36000, seconds=250, north_mps=1.5)
    lines += walk(*HOME, start_s=36250, seconds=60, north_mps=0.0, start_north_m=50)
    log, n = write_log(tmp_path, lines)
    r = run_role(tmp_path, log, n // 310 + 1,
                 {"home_lat_e7": E7[0], "home_lon_e7": E7[1], "home_radius_m": 200, "margin_m": 25,
                  "report_s": 60, "outside_report_s": 30}, end_ms=320000)
    codes = [e[1] for e in r["events"]]
    assert codes.count(0x41) == 1 and codes.count(0x42) == 1, codes
    exit_ev = next(e for e in r["events"] if e[1] == 0x41)
    lat_e7, lon_e7, alt, q, sats, zone = exit_ev[3]
    north = (lat_e7 - E7[0]) / 1e7 * 111195
    assert 225 <= north <= 245 and zone == 0 and q == 1 and sats == 8   # beyond 200 m + 25 m margin, confirmed
    pos = [e for e in r["events"] if e[1] == 0x40]
    assert 5 <= len(pos) <= 14   # power-aware: ~1/min inside, 1/30 s outside, not 1 Hz
    assert r["events"].index(exit_ev) < [e[1] for e in r["events"]].index(0x42)


def test_garbage_and_no_fix_are_counted_and_reported(tmp_path):
    lines = []
    for k in range(400):
        lines.append(gga(1000 + k, 0, 0, q=0))
        lines.append(rmc(1000 + k, 0, 0, valid=False))
        if k % 10 == 0:
            lines.append("$GPGGA,garbage*00")
            lines.append("\x00\x01\x02$GNRMC,1,2")
    log, n = write_log(tmp_path, lines)
    r = run_role(tmp_path, log, n // 400 + 1, {"no_fix_s": 120, "heartbeat_s": 60}, end_ms=400000)
    codes = [e[1] for e in r["events"]]
    assert codes == [0x43]      # gps_no_fix once per outage, no position without a fix
    assert r["rejects"] >= 60   # 40 checksum errors + 40 malformed lines, reported in heartbeats


def test_silent_receiver_fails_self_test_and_bad_zones_are_rejected_not_fatal(tmp_path):
    (tmp_path / "empty.nmea").write_bytes(b"")   # the receiver never says anything
    log = str(tmp_path / "empty.nmea")
    zones = json.dumps({"zones": [{"polygon": [[59.91, 10.74], [59.91, 10.75], [59.915, 10.75]]},
                                  {"lat": 59.9, "lon": 10.7, "radius_m": -5}, "nonsense"]})
    r = run_role(tmp_path, log, 100, {"home_radius_m": 200, "home_lat_e7": 999999999}, end_ms=60000,
                 files={"zones.json": zones})
    codes = [e[1] for e in r["events"]]
    assert codes == [0x62] and r["events"][0][3] == [5]   # self_test_failed(gps), once
    assert any("home_lat_e7" in e for e in r["errors"])   # config value rejected, named
    assert r["rejects"] >= 3                               # bad config + 2 bad zones counted


def test_switch_off_sends_a_last_message_then_sleeps_and_wakes_when_switched_on(tmp_path):
    lines = walk(*HOME, start_s=0, seconds=300, north_mps=0.0)
    log, n = write_log(tmp_path, lines)
    r = run_role(tmp_path, log, n // 300 + 1, {"home_lat_e7": E7[0], "home_lon_e7": E7[1], "home_radius_m": 200},
                 end_ms=200000, pins={"power_switch": [(0, 1), (30000, 0), (60000, 1), (120000, 0)]})
    offs = [e for e in r["events"] if e[1] == 0x63]
    assert [e[3] for e in offs] == [[1], [1]]        # one power_off(user) per switch-off, not per wake
    starts = [s[0] for s in r["slept"]]
    assert len(starts) == 2 and 30000 <= starts[0] < 35000 and 120000 <= starts[1] < 125000
    assert r["slept"][0][2] == ["power_switch", "vbus"]
    assert r["boots"] >= 2                            # woke (new boot) when switched on
    assert set(r["causes"]) == {3}, r["causes"]      # every reboot was a deep-sleep wake


def test_battery_empty_and_charger_idle(tmp_path):
    log, n = write_log(tmp_path, walk(*HOME, start_s=0, seconds=30, north_mps=0.0))
    r = run_role(tmp_path, log, n // 30 + 1, {}, end_ms=3 * 3600 * 1000 + 60000, battery="(3, 3200, 0)")
    off = [e for e in r["events"] if e[1] == 0x63]
    assert len(off) == 1 and off[0][3] == [2]          # power_off(battery empty), once, not at every wake
    assert len(r["slept"]) >= 3                        # sleeps, checks hourly, sleeps again
    r2 = run_role(tmp_path, log, n // 30 + 1, {"charger_idle_h": 1}, end_ms=3 * 3600 * 1000 + 60000,
                  battery="(100, 4150, 2)")
    idle = [e for e in r2["events"] if e[1] == 0x64]
    assert len(idle) == 1 and idle[0][3] == [1]                          # once per charging session


@pytest.mark.parametrize("dialect", ["sim7080", "bg95"])
def test_away_from_home_events_go_out_through_the_modem_with_backoff(tmp_path, dialect):
    """Gateway out of reach; first no coverage (event kept), then coverage: the exit alarm
    is published over the modem and leaves the queue."""
    emu = ModemEmulator(coverage=False, dialect=dialect).start()
    try:
        beyond = offset(*HOME, 400, 0)
        lines = [gga(43200 + k, *beyond) for k in range(3)] + [rmc(43203, *beyond)]
        log, n = write_log(tmp_path, lines * 3)
        (tmp_path / "cellular.json").write_text(json.dumps({"host": "broker.invalid", "port": 8883,
                                                            "dialect": dialect, "password": "tr4cker-pw"}))
        script = MPY_PTY_UART + f'''
import simdev, json, time
from hal.host import HostHal, RealClock, SimEnd, loop_pair
from simgw import SimGateway
from drivers.replay import NmeaUart
simdev.fresh({str(tmp_path / "flash.img")!r})
dev, peer = loop_pair()
hal = HostHal(flash={str(tmp_path / "flash.img")!r}, clock=RealClock(), uarts={{"link": dev, "modem": PtyUart({emu.path!r})}})
gw = SimGateway(peer, hal.device_id(), simdev.KEY, False)   # gateway out of reach: nothing is acked
hal.peers.append(gw)
with open(hal.data_dir + "/config.json", "w") as f:
    json.dump({{"role": "gps", "key": simdev.KEY.hex(), "modem": True, "gw_grace_s": 5, "retry_ms": 200,
               "home_lat_e7": {E7[0]}, "home_lon_e7": {E7[1]}, "home_radius_m": 200}}, f)
with open(hal.data_dir + "/cellular.json", "w") as f:
    f.write({(tmp_path / "cellular.json").read_text()!r})
import os
os.mkdir(hal.data_dir + "/cell")
with open(hal.data_dir + "/cell/ca.pem", "w") as f:     # provisioned with the device (TLS by default)
    f.write("-----BEGIN CERTIFICATE-----\\nemulated\\n-----END CERTIFICATE-----\\n")
hal._uart_cfg["gps"] = NmeaUart({log!r}, hal.clock, 400)
class Stop:
    # end once the emulator has seen the publish (flag file), or after 30 s
    def service(self, hal):
        try:
            os.stat({str(tmp_path / "published.flag")!r})
            raise SimEnd()
        except OSError:
            pass
        if hal.clock.t > 30000:
            raise SimEnd()
        return 200
hal.peers.append(Stop())
simdev.boot(hal)
import app
print(json.dumps({{"ok": True}}))
'''
        import threading
        import time

        def cover():
            # the first session finds no coverage (it stops at registration); then the
            # network comes back and a later session publishes
            deadline = time.monotonic() + 40
            while "AT+CEREG?" not in emu.log and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.5)
            emu.coverage = True
            while not emu.publishes and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            (tmp_path / "published.flag").write_text("1")

        th = threading.Thread(target=cover, daemon=True)
        th.start()
        run_mpy(script, heap=HEAP, timeout=90)
        th.join()
    finally:
        emu.stop()
    topics = [t for t, _, _, _ in emu.publishes]
    assert f"wt/v1/dev/020000000001/alarm" in topics, (emu.log[-20:], topics)
    alarm = json.loads(next(p for t, p, _, _ in emu.publishes if t.endswith("/alarm")))
    assert alarm["type"] == "geofence_exit" and alarm["data"]["zone"] == 0
    assert alarm["occurred_at"].startswith("2026-11-23T12:00:0")   # GNSS time of the fix
    assert alarm["attempt"] >= 1 and alarm["event_id"].startswith("020000000001-")
    # before coverage returned the session stopped at registration (no connect attempts)
    first_conn = next(i for i, c in enumerate(emu.log) if c.startswith(("AT+SMCONN", "AT+QMTOPEN")))
    assert emu.log[:first_conn].count("AT+CEREG?") >= 2
    assert len(topics) == len(set(json.loads(p)["event_id"] for _, p, _, _ in emu.publishes))
    # over TLS with the CA from <data>/cell, logged in as the device with its password
    assert emu.files["ca.pem"].startswith(b"-----BEGIN CERTIFICATE-----")
    assert emu.ssl.get("enabled") == "1" and emu.subscriptions == ["wt/v1/dev/020000000001/ack"]
    assert any(c.startswith(('AT+SMCONF="PASSWORD","tr4cker-pw"', 'AT+QMTCONN=0,"wt-020000000001","020000000001","tr4cker-pw"'))
               for c in emu.log)


def test_gateway_moves_the_home_zone_and_a_bad_value_is_refused(tmp_path):
    # standing at home; at 60 s the gateway sets a bad radius (refused, old zone kept),
    # at 120 s it moves the home zone 5 km away: the next fixes are outside -> exit
    log, n = write_log(tmp_path, walk(*HOME, start_s=0, seconds=240, north_mps=0.0))
    far = offset(*HOME, 5000, 0)
    extra = f'''
import struct, wire
class Cfg:
    def __init__(self):
        self.todo = [(60000, 2, {{"home_radius_m": -5}}),
                     (120000, 3, {{"home_lat_e7": {int(far[0] * 1e7)}, "home_lon_e7": {int(far[1] * 1e7)}}})]
    def service(self, hal):
        if self.todo and hal.clock.t >= self.todo[0][0]:
            t, v, patch = self.todo.pop(0)
            gw.send(wire.T_CONFIG, struct.pack("<I", v) + json.dumps(patch).encode())
        return (self.todo[0][0] - hal.clock.t) if self.todo else None
hal.peers.append(Cfg())
'''
    r = run_role(tmp_path, log, n // 240 + 1, {"home_lat_e7": E7[0], "home_lon_e7": E7[1], "home_radius_m": 200},
                 end_ms=200000, extra=extra)
    codes = [e[1] for e in r["events"]]
    assert codes.count(0x41) == 1, codes                       # exit only after the move
    assert any("home_radius_m" in e for e in r["errors"])      # the bad value was refused, named


def test_at_home_the_modem_modules_are_loaded_only_for_the_boot_self_test(tmp_path):
    """modem on, gateway in reach (it acks): the modem answers the AT self-test at boot;
    its driver and the MQTT uplink are never loaded (RAM) and nothing goes by cellular."""
    emu = ModemEmulator(coverage=True).start()
    try:
        log, n = write_log(tmp_path, walk(*HOME, start_s=43200, seconds=20, north_mps=0.0))
        script = MPY_PTY_UART + f'''
import sys, json
from hal.host import HostHal, RealClock, SimEnd, loop_pair
from simgw import SimGateway
from drivers.replay import NmeaUart
import simdev
simdev.fresh({str(tmp_path / "flash.img")!r})
dev, peer = loop_pair()
hal = HostHal(flash={str(tmp_path / "flash.img")!r}, clock=RealClock(), uarts={{"link": dev, "modem": PtyUart({emu.path!r})}})
gw = SimGateway(peer, hal.device_id(), simdev.KEY, True)
hal.peers.append(gw)
with open(hal.data_dir + "/config.json", "w") as f:
    json.dump({{"role": "gps", "key": simdev.KEY.hex(), "modem": True, "gw_grace_s": 5,
               "cell_host": "broker.invalid", "home_lat_e7": {E7[0]}, "home_lon_e7": {E7[1]},
               "home_radius_m": 200}}, f)
hal._uart_cfg["gps"] = NmeaUart({log!r}, hal.clock, {n // 20 + 1})
seen = []
class Probe:
    def service(self, hal):
        seen.append("modem" in sys.modules or "modem_mqtt" in sys.modules)
        if hal.clock.t > 5000:
            raise SimEnd()
        return 200
hal.peers.append(Probe())
simdev.boot(hal)
print(json.dumps({{"seen": seen, "events": [e[1] for e in gw.events]}}))
'''
        out = run_mpy(script, heap=HEAP, timeout=60).stdout
        assert "Traceback" not in out, out
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        emu.stop()
    assert emu.log[:1] == ["AT"]                            # the boot self-test talked to the modem
    assert r["seen"] and not any(r["seen"]), r             # then the modem code was not in RAM
    assert 0x40 in r["events"] and 0x62 not in r["events"]  # positions via the gateway; self-test passed
    assert emu.publishes == []                              # nothing went by cellular


def test_gateway_sets_the_zones_and_cellular_settings_with_config_frames(tmp_path):
    # at home with no zone at all; at 60 s the gateway sends a "zones" value that is not
    # a list (refused, named) and cellular settings; at 120 s a zone 5 km away: the next
    # fixes are outside every safe zone -> exit
    log, n = write_log(tmp_path, walk(*HOME, start_s=0, seconds=240, north_mps=0.0))
    far = offset(*HOME, 5000, 0)
    extra = f'''
import struct, wire
class Cfg:
    def __init__(self):
        self.todo = [(60000, 2, {{"zones": {{"lat": 1}}}}),
                     (90000, 3, {{"cell_host": "mqtt.example.org", "cell_apn": "telenor.smart"}}),
                     (120000, 4, {{"zones": [{{"lat": {far[0]}, "lon": {far[1]}, "radius_m": 300}}]}})]
    def service(self, hal):
        if self.todo and hal.clock.t >= self.todo[0][0]:
            t, v, patch = self.todo.pop(0)
            gw.send(wire.T_CONFIG, struct.pack("<I", v) + json.dumps(patch).encode())
        return (self.todo[0][0] - hal.clock.t) if self.todo else None
hal.peers.append(Cfg())
'''
    r = run_role(tmp_path, log, n // 240 + 1, {}, end_ms=200000, extra=extra)
    codes = [e[1] for e in r["events"]]
    assert codes.count(0x41) == 1, codes                   # exit only once the zone was set
    assert any("zones" in e and "list" in e for e in r["errors"]), r["errors"]   # refused, named
    assert not any("cell_" in e for e in r["errors"]), r["errors"]               # accepted


def test_a_silent_modem_fails_its_self_test_and_tracking_goes_on(tmp_path):
    log, n = write_log(tmp_path, walk(*HOME, start_s=0, seconds=30, north_mps=0.0))
    extra = '''
class SilentModem:
    written = b""
    def read(self, n=-1):
        return None
    def write(self, b):
        SilentModem.written += bytes(b)
        return len(b)
    def any(self):
        return 0
hal._uart_cfg["modem"] = SilentModem()
'''
    r = run_role(tmp_path, log, n // 30 + 1, {"modem": True, "cell_host": "broker.invalid",
                                               "home_lat_e7": E7[0], "home_lon_e7": E7[1], "home_radius_m": 200},
                 end_ms=30000, extra=extra)
    fails = [e for e in r["events"] if e[1] == 0x62]
    assert [e[3] for e in fails] == [[6]], r["events"]     # self_test_failed(modem), once
    assert any(e[1] == 0x40 for e in r["events"])          # positions still reported (via the gateway)
