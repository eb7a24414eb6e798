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
        flash(dev, tmp_path, "11" * 16, run=run)
    assert len(calls) == 3 and all(c == str(tmp_path) for _, c in calls)
    assert (tmp_path / "config.json").read_text() == '{"key": "' + "11" * 16 + '", "role": "button"}'


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
