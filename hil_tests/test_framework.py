"""Tests of the bench machinery itself (not scenarios): bench files, fault proxies, golden files, report."""
from __future__ import annotations

import json
import os
import select
import socket
import time

import pytest

from hil_tests.bench import BenchError, default_bench, load_bench
from hil_tests.faults import FaultPolicy, SerialFaultProxy, TcpFaultProxy
from hil_tests.report import percentile, write_report
from hil_tests.transcript import GoldenMismatch, check_golden, normalise
from hil_tests.platform import Arrival


def _read_all(fd: int, n: int, timeout_s: float = 3.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while len(buf) < n and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            buf += os.read(fd, 4096)
    return buf


def _open_raw(path: str) -> int:
    import tty
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def test_bench_file_errors_name_key_value_and_fix(tmp_path):
    p = tmp_path / "bench.toml"
    p.write_text('[bench]\nkind = "real"\n[[device]]\nname = "b1"\nrole = "button"\ntransport = "serial"\n')
    with pytest.raises(BenchError) as e:
        load_bench(p)
    assert e.value.key == "device[0].port" and "/dev/ttyUSB0" in str(e.value)
    p.write_text('[[device]]\nname = "b1"\nrole = "toaster"\n')
    with pytest.raises(BenchError, match=r"device\[0\].role = 'toaster': use one of button"):
        load_bench(p)
    p.write_text('[[device]]\nname = "b1"\nrole = "button"\nport = "/dev/ttyUSB0"\nkey = "abcd"\n')
    with pytest.raises(BenchError, match="32 hex digits"):
        load_bench(p)
    with pytest.raises(BenchError, match="file not found"):
        load_bench(tmp_path / "missing.toml")


def test_bench_file_loads_real_bench(tmp_path):
    p = tmp_path / "desk.toml"
    p.write_text('[bench]\nname = "desk"\n[broker]\nport = 1883\n'
                 '[[device]]\nname = "btn"\nrole = "button"\nport = "/dev/ttyUSB0"\npower_relay = "gpio:17"\n'
                 '[[device]]\nname = "door"\nrole = "door"\ntransport = "ble"\nble_address = "AA:BB:CC:DD:EE:FF"\n')
    b = load_bench(p)
    assert b.kind == "real" and not b.emulated and b.broker_port == 1883
    assert [d.transport for d in b.devices] == ["serial", "ble"]
    assert b.devices[0].power_relay == "gpio:17"
    assert default_bench().emulated and {d.role for d in default_bench().devices} >= {"button", "fall", "bed"}


def test_serial_proxy_passes_then_corrupts_and_drops_bytes_deterministically():
    proxy = SerialFaultProxy().start()
    try:
        dev = _open_raw(proxy.device_path)
        gw = _open_raw(proxy.gateway_path)
        os.write(dev, b"hello gateway")
        assert _read_all(gw, 13) == b"hello gateway"
        os.write(gw, b"ack")
        assert _read_all(dev, 3) == b"ack"
        proxy.set_policy(up=FaultPolicy(corrupt=1.0, seed=7))
        os.write(dev, b"\x00" * 8)
        got = _read_all(gw, 8)
        assert len(got) == 8 and got != b"\x00" * 8 and bin(int.from_bytes(got, "big")).count("1") == 1
        proxy.set_policy(up=FaultPolicy(drop=1.0))
        os.write(dev, b"lost")
        assert _read_all(gw, 1, timeout_s=0.5) == b""
        assert proxy.counters["up"].dropped >= 1 and proxy.counters["up"].corrupted == 1
        proxy.set_policy(up=FaultPolicy(duplicate=1.0))
        os.write(dev, b"twice")
        assert _read_all(gw, 10) == b"twicetwice"
        os.close(dev)
        os.close(gw)
    finally:
        proxy.close()


def _echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    import threading

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            def echo(c=c):
                while True:
                    try:
                        d = c.recv(4096)
                    except OSError:
                        return
                    if not d:
                        return
                    c.sendall(d)
            threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=run, daemon=True).start()
    return srv


def test_tcp_proxy_pass_blackhole_and_refuse():
    srv = _echo_server()
    proxy = TcpFaultProxy("127.0.0.1", srv.getsockname()[1]).start()
    try:
        c = socket.create_connection((proxy.host, proxy.port), timeout=2)
        c.sendall(b"ping")
        assert c.recv(10) == b"ping"
        proxy.set_mode("blackhole")
        c.sendall(b"into the void")
        c.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.recv(10)
        assert proxy.bytes_blackholed >= len(b"into the void")
        proxy.set_mode("pass")
        c.settimeout(2)
        c.sendall(b"back")
        assert c.recv(10) == b"back"
        proxy.set_mode("refuse")
        c2 = socket.create_connection((proxy.host, proxy.port), timeout=2)
        c2.settimeout(2)
        assert c2.recv(10) == b""  # closed at once
        with pytest.raises(ValueError, match="unknown proxy mode"):
            proxy.set_mode("teleport")
    finally:
        proxy.close()
        srv.close()


def test_transcript_normalises_volatile_fields_and_golden_compare(tmp_path):
    a1 = Arrival("wt/v1/gw/gw-1/alarm", {"event_id": "x-1", "device": "a4c1380a1b2c", "class": "care",
                                          "type": "button_press", "occurred_at": "2026-01-01T00:00:00Z",
                                          "data": {"sats": 7, "at": "t"}}, 1.0)
    a2 = Arrival("wt/v1/gw/gw-1/alarm", dict(a1.payload, event_id="y-2", occurred_at="2027-01-01T00:00:00Z"), 2.0)
    assert normalise([a1], {"a4c1380a1b2c": "button-1"}) == normalise([a2], {"a4c1380a1b2c": "button-1"})
    assert normalise([a1], {"a4c1380a1b2c": "button-1"})[0] == 'alarm care button_press button-1 {"sats":7}'
    with pytest.raises(GoldenMismatch, match="--update-golden"):
        check_golden("demo", ["a"], update=False, directory=tmp_path)
    check_golden("demo", ["a", "b"], update=True, directory=tmp_path)
    check_golden("demo", ["a", "b"], update=False, directory=tmp_path)
    with pytest.raises(GoldenMismatch, match=r"\+c"):
        check_golden("demo", ["a", "b", "c"], update=False, directory=tmp_path)


def test_report_summary_and_html(tmp_path):
    results = [{"name": "s1", "outcome": "passed", "duration_s": 1.0,
                "latencies_ms": {"press_to_platform": [10.0, 20.0, 30.0]}, "figures": {"lost": 0}},
               {"name": "s2", "outcome": "failed", "duration_s": 2.0, "longrepr": "AssertionError: boom"}]
    s = write_report(tmp_path, "emulated", results)
    assert s == {"scenarios": 2, "passed": 1, "failed": 1, "skipped": 0, "press_to_platform_p99_ms": 30.0,
                 "press_to_platform_p50_ms": 20.0, "press_samples": 3}
    page = (tmp_path / "report.html").read_text()
    assert "1/2" in page and "AssertionError: boom" in page and "<svg" in page
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["passed"] == 1
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([], 99) is None


def test_generated_gateway_config_is_valid_for_the_real_loader(tmp_path):
    from gateway.config import load_config
    from hil_tests.emulated import deep_merge, to_toml

    data = deep_merge({"gateway": {"id": "gw-hil", "data_dir": str(tmp_path)},
                       "serial": {"ports": ["/dev/pts/7", "/dev/pts/9"]},
                       "devices": {"b0e1c4000001": {"role": "button", "key": "00" * 16, "silent_after_s": 8.0}},
                       "rules": {"bed": {"window_start": "20:30", "max_out_min": 30}}},
                      {"rules": {"bed": {"max_out_min": 31}}, "status": {"port": 0}})
    p = tmp_path / "gw.toml"
    p.write_text(to_toml(data))
    cfg = load_config(p, env={})
    assert cfg.serial.ports == ("/dev/pts/7", "/dev/pts/9") and cfg.rules.bed.max_out_min == 31
    assert cfg.rules.bed.window_start.hour == 20 and cfg.device("b0e1c4000001").silent_after_s == 8.0


def test_offset_clock_jumps_wall_and_monotonic_together():
    from gateway.testing.clock import OffsetClock

    c = OffsetClock(1_000_000.0)
    t0, m0 = c.time(), c.monotonic()
    assert abs(t0 - 1_000_000.0) < 1.0
    c.advance(1800)
    assert 1800 <= c.time() - t0 < 1801 and 1800 <= c.monotonic() - m0 < 1801


def test_sisfall_conversion_resamples_to_milli_g_and_finds_the_impact(tmp_path):
    from hil_tests.stimuli import SISFALL_G_PER_COUNT, sisfall_replay

    src = tmp_path / "F99_SX01_R01.txt"
    rows = []
    for i in range(2000):      # 10 s at 200 Hz: 1 g on z, one 8 g spike at 6.0 s
        z = 256 if not 1200 <= i < 1204 else 2048
        rows.append(f"  0,  0, {z}, 1, 2, 3, 4, 5, 6;")
    src.write_text("\n".join(rows) + "\n")
    rep = sisfall_replay(src, tmp_path / "out.mg", rate_hz=50, before_s=2, after_s=3, lead_s=1)
    lines = rep.path.read_text().splitlines()
    assert len(lines) == rep.samples == 50 * (1 + 2 + 3)
    assert lines[0] == f"0 0 {round(256 * SISFALL_G_PER_COUNT * 1000)}" == "0 0 1000"
    assert abs(rep.peak_s - 3.0) < 0.05 and rep.peak_mg == 8000


def test_nmea_fixes_have_valid_checksums_and_coordinates():
    from gateway.testing.stimuli import nmea_fix

    gga, rmc = nmea_fix(61, 59.9139, -10.7522)
    for s in (gga, rmc):
        body, star, cs = s.strip().lstrip("$").partition("*")
        x = 0
        for ch in body:
            x ^= ord(ch)
        assert star and int(cs, 16) == x
    f = gga.split(",")
    assert f[1] == "100101.00" and f[2] == "5954.8340" and f[3] == "N" and f[4] == "01045.1320" and f[5] == "W"


def test_ota_bundle_layout_matches_the_firmware_container():
    import hashlib
    import json as _json
    import struct

    from hil_tests.ota import build_bundle

    files = {"lib/version.mpy": b"M\x06abc", "lib/app.mpy": b"xyz"}
    b = build_bundle(files, "1.2.3", "button")
    assert b[:4] == b"WTB1"
    (n,) = struct.unpack("<H", b[4:6])
    man = _json.loads(b[6:6 + n])
    assert man["version"] == "1.2.3" and man["role"] == "button"
    assert [(f["path"], f["size"], f["sha256"]) for f in man["files"]] == [
        (p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()]
    assert b[6 + n:] == b"M\x06abcxyz"


def test_serial_proxy_tap_sees_what_each_side_receives():
    seen: list[tuple[str, bytes]] = []
    proxy = SerialFaultProxy(tap=lambda d, b: seen.append((d, b))).start()
    try:
        dev = _open_raw(proxy.device_path)
        gw = _open_raw(proxy.gateway_path)
        os.write(gw, b"\x00ack\x00")
        assert _read_all(dev, 5) == b"\x00ack\x00"
        proxy.set_policy(up=FaultPolicy(drop=1.0, seed=5))
        os.write(dev, b"gone")
        time.sleep(0.3)
        assert b"".join(b for d, b in seen if d == "down") == b"\x00ack\x00"
        assert not [b for d, b in seen if d == "up"]        # dropped bytes never reached the gateway
        os.close(dev)
        os.close(gw)
    finally:
        proxy.close()


def test_serial_proxy_drain_applies_the_current_policy_to_bytes_already_written():
    # the proxy is busy (delay) when the device writes "late": without drain() a policy switch
    # right after would let "late" through, though it was written while the link was cut
    proxy = SerialFaultProxy(up=FaultPolicy(drop=1.0, delay_s=0.3, seed=1)).start()
    try:
        dev = _open_raw(proxy.device_path)
        gw = _open_raw(proxy.gateway_path)
        os.write(dev, b"early")
        time.sleep(0.1)                      # the proxy holds "early" for 0.3 s
        os.write(dev, b"late")
        proxy.drain("up")
        proxy.set_policy(up=FaultPolicy())
        assert _read_all(gw, 1, timeout_s=0.5) == b""
        assert proxy.counters["up"].dropped == 2
        os.write(dev, b"after")              # the restored link passes new bytes
        assert _read_all(gw, 5) == b"after"
        os.close(dev)
        os.close(gw)
    finally:
        proxy.close()
