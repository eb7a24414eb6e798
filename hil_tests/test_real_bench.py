"""The real-bench driver without hardware: command construction, DTR/RTS reset on a fake serial
port, console parsing, power switching on a fake sysfs GPIO tree, bench file checks."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hil_tests.bench import BenchDevice, BenchError, load_bench
from hil_tests.real import (Console, PowerSwitch, RealBenchError, build_command, flash, flash_commands, hard_reset)


class FakeSerial:
    """Records every DTR/RTS change with the fake time; serves canned console lines."""

    def __init__(self, lines: list[bytes] | None = None) -> None:
        self.t = 0.0
        self.changes: list[tuple[float, str, bool]] = []
        self._dtr = self._rts = False
        self._lines = list(lines or [])

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, v: bool) -> None:
        self._dtr = v
        self.changes.append((self.t, "dtr", v))

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, v: bool) -> None:
        self._rts = v
        self.changes.append((self.t, "rts", v))

    def sleep(self, s: float) -> None:
        self.t += s

    def readline(self) -> bytes:
        self.t += 0.2
        return self._lines.pop(0) if self._lines else b""

    def close(self) -> None:
        pass


def test_hard_reset_pulses_en_low_with_io0_high():
    port = FakeSerial()
    hard_reset(port, sleep=port.sleep)
    assert port.changes == [(0.0, "dtr", False), (0.0, "rts", True), (0.1, "rts", False)]
    assert port.dtr is False and port.rts is False     # left running, not in the bootloader


def test_console_waits_for_text_and_collects_tracebacks():
    port = FakeSerial([b"boot\r\n", b"Traceback (most recent call last):\r\n", b"\xffHELLO sent\r\n"])
    con = Console(port, clock=lambda: port.t)
    assert con.wait_for("HELLO", 5) == "\ufffdHELLO sent"
    assert con.tracebacks() == ["Traceback (most recent call last):"]
    assert con.wait_for("never", 1.0) is None and port.t >= 1.0


def test_flash_commands_follow_the_technician_procedure(tmp_path):
    dev = BenchDevice(name="btn", role="button", transport="serial", port="/dev/ttyUSB1",
                      console="/dev/ttyUSB0")
    cmds, cfg = flash_commands(dev, tmp_path, "00" * 16, extra_config={"heartbeat_s": 60})
    assert cmds[0][:3] == ["mpremote", "connect", "/dev/ttyUSB0"] and ":/data" in cmds[0]
    assert cmds[1][3:8] == ["fs", "cp", "-r", "lib", "hal"] and cmds[1][-1] == ":main.py"
    assert cmds[1][-2].endswith("firmware/main.py")
    assert cmds[2][3:] == ["fs", "cp", "config.json", ":/data/config.json", "+", "reset"]
    assert cfg == '{"heartbeat_s": 60, "key": "' + "00" * 16 + '", "role": "button"}'
    assert build_command("button", "1.2.0")[-5:] == ["--version", "1.2.0", "--role", "button", "--json"]
    with pytest.raises(RealBenchError, match="console"):
        flash_commands(BenchDevice(name="x", role="button", transport="ble", ble_address="AA:BB:CC:DD:EE:FF"),
                       tmp_path, "00" * 16)


def test_flash_runs_commands_in_the_build_dir_and_reports_failures(tmp_path):
    calls = []

    def run(cmd, cwd, **kw):
        calls.append((cmd, cwd))
        rc = 1 if "reset" in cmd else 0
        return subprocess.CompletedProcess(cmd, rc, "", "could not enter raw repl" if rc else "")

    dev = BenchDevice(name="btn", role="button", transport="serial", port="/dev/ttyUSB0")
    with pytest.raises(RealBenchError, match="could not enter raw repl"):
        flash(dev, tmp_path / "button-1.2.0", "11" * 16, run=run)
    assert len(calls) == 3 and all(c == str(tmp_path / "button-1.2.0") for _, c in calls)
    cfg = tmp_path / "config-btn.json"
    assert cfg.read_text() == '{"key": "' + "11" * 16 + '", "role": "button"}'
    assert calls[2][0][5] == str(cfg)


def test_power_switch_gpio_and_uhubctl(tmp_path):
    root = tmp_path / "gpio"
    (root / "gpio17").mkdir(parents=True)
    sw = PowerSwitch("gpio:17", gpio_root=root)
    sw.cut()
    assert (root / "gpio17" / "value").read_text() == "1"
    sw.restore()
    assert (root / "gpio17" / "value").read_text() == "0"
    hub = PowerSwitch("uhubctl:1-1:3")
    assert hub.commands(False) == [["uhubctl", "-l", "1-1", "-p", "3", "-a", "off"]]
    ran = []
    hub.cut(run=lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    assert ran == [["uhubctl", "-l", "1-1", "-p", "3", "-a", "off"]]
    with pytest.raises(ValueError, match="uhubctl:<hub>:<port>"):
        PowerSwitch("relay:9").commands(True)


def test_bench_file_checks_power_relay_and_device_id(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text('[[device]]\nname = "b"\nrole = "button"\nport = "/dev/ttyUSB1"\npower_relay = "mains"\n')
    with pytest.raises(BenchError, match="power_relay"):
        load_bench(p)
    p.write_text('[[device]]\nname = "b"\nrole = "button"\nport = "/dev/ttyUSB1"\ndevice_id = "A4C1"\n')
    with pytest.raises(BenchError, match="12 lower-case hex"):
        load_bench(p)
    p.write_text('[[device]]\nname = "b"\nrole = "button"\nport = "/dev/ttyUSB1"\nconsole = "/dev/ttyUSB0"\n'
                 'power_relay = "uhubctl:1-1:2"\n')
    d = load_bench(p).devices[0]
    assert d.console == "/dev/ttyUSB0" and d.port == "/dev/ttyUSB1" and d.power_relay == "uhubctl:1-1:2"


def test_reference_bench_file_in_docs_loads():
    text = (Path(__file__).resolve().parent.parent / "docs" / "hil.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    import tomllib

    tomllib.loads(block)
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(block)
    try:
        b = load_bench(f.name)
    finally:
        Path(f.name).unlink()
    assert b.kind == "real" and {d.role for d in b.devices} >= {"button", "fall"}


def test_real_bench_prepare_builds_once_per_role_flashes_and_resets_each_board(tmp_path):
    import json as _json

    from hil_tests.real import RealBench

    p = tmp_path / "b.toml"
    p.write_text('[bench]\nkind = "real"\n'
                 '[[device]]\nname = "b1"\nrole = "button"\nport = "/dev/ttyUSB1"\nconsole = "/dev/ttyUSB0"\n'
                 'key = "' + "11" * 16 + '"\ndevice_id = "a4c1380a0001"\npower_relay = "uhubctl:1-1:2"\n'
                 '[[device]]\nname = "b2"\nrole = "button"\nport = "/dev/ttyUSB3"\nconsole = "/dev/ttyUSB2"\n'
                 'key = "' + "22" * 16 + '"\ndevice_id = "a4c1380a0002"\n'
                 '[[device]]\nname = "d1"\nrole = "door"\ntransport = "ble"\nble_address = "AA:BB:CC:DD:EE:FF"\n'
                 'device_id = "aabbccddeeff"\n')
    bench = load_bench(p)
    calls: list[list[str]] = []
    ports: dict[str, FakeSerial] = {}

    def run(cmd, **kw):
        calls.append(cmd)
        if "build.py" in " ".join(cmd):
            return subprocess.CompletedProcess(cmd, 0, _json.dumps([{"role": "button", "version": "0.0.0-bench"}]), "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def open_port(path):
        ports[path] = FakeSerial()
        return ports[path]

    rb = RealBench(bench, tmp_path, run=run, open_port=open_port, sleep=lambda s: None, python="py")
    assert rb.steps()[-1] == "gateway: run on /dev/ttyUSB1, /dev/ttyUSB3 + BLE"
    rb.prepare()
    builds = [c for c in calls if "build.py" in " ".join(c)]
    assert len(builds) == 1 and builds[0][0] == "py" and "--out" in builds[0]      # one build per role
    flashes = [c for c in calls if c[0] == "mpremote"]
    assert [c[2] for c in flashes] == ["/dev/ttyUSB0"] * 3 + ["/dev/ttyUSB2"] * 3
    assert set(ports) == {"/dev/ttyUSB0", "/dev/ttyUSB2"}
    assert all([(n, v) for _, n, v in fs.changes] == [("dtr", False), ("rts", True), ("rts", False)]
               for fs in ports.values())
    cfg = rb.gateway_config(tmp_path / "gw", 18787)
    assert cfg["serial"]["ports"] == ["/dev/ttyUSB1", "/dev/ttyUSB3"] and cfg["ble"]["enabled"] is True
    assert cfg["devices"]["a4c1380a0001"] == {"role": "button", "key": "11" * 16}
    assert cfg["devices"]["aabbccddeeff"] == {"role": "door"}
    from gateway.config import load_config
    from hil_tests.emulated import to_toml

    (tmp_path / "gw.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "gw.toml", env={}).serial.ports == ("/dev/ttyUSB1", "/dev/ttyUSB3")
    calls.clear()
    rb.power_cut("b1")
    assert calls == [["uhubctl", "-l", "1-1", "-p", "2", "-a", "off"]]
    with pytest.raises(RealBenchError, match="no power_relay"):
        rb.power_cut("b2")


def test_real_bench_refuses_a_board_without_key(tmp_path):
    from hil_tests.real import RealBench

    p = tmp_path / "b.toml"
    p.write_text('[[device]]\nname = "b1"\nrole = "button"\nport = "/dev/ttyUSB1"\n')
    rb = RealBench(load_bench(p), tmp_path, run=lambda *a, **k: None, open_port=lambda p: FakeSerial())
    with pytest.raises(RealBenchError, match="key"):
        rb.prepare()
