"""Driving real boards on a reference bench (``--bench FILE`` with ``kind = "real"``).

What the emulated bench does with processes and ptys, the real bench does with boards:

* **flash** the role's build (``firmware/build.py``) with ``mpremote`` over the board's USB
  console port, then write ``/data/config.json`` (role + device key) — the commands of
  docs/firmware.md §2, built by :func:`flash_commands`;
* **reset** through the USB-serial adapter's DTR/RTS lines (ESP32 auto-reset circuit:
  RTS → EN, DTR → IO0), :func:`hard_reset`, with pyserial;
* **read the console** (boot messages, tracebacks) line by line, :class:`Console`;
* **cut power** with a relay on a Raspberry Pi GPIO or a per-port switchable USB hub
  (``power_relay = "gpio:17"`` / ``"uhubctl:1-1:3"``), :class:`PowerSwitch`;
* the gateway opens the board's **link** port (``port``: a USB-serial adapter on the
  board's link UART, pins 17/16 of hal/esp32.py BOARD).

Everything here is command construction plus pyserial calls against an injected port
object, so it is tested with a fake serial port (hil_tests/test_real_bench.py). It has
not been run against hardware in CI.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from hil_tests.bench import BenchDevice
from hil_tests.control import trust as control_trust

ROOT = Path(__file__).resolve().parent.parent


class RealBenchError(RuntimeError):
    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device


class SerialLines(Protocol):
    """The part of ``serial.Serial`` used here (a fake in tests)."""

    dtr: bool
    rts: bool

    def readline(self) -> bytes: ...
    def close(self) -> None: ...


def console_port(dev: BenchDevice) -> str:
    port = dev.console or dev.port
    if not port:
        raise RealBenchError(dev.name, "no console port: set console = \"/dev/serial/by-id/...\" (the board's USB port)")
    return port


def build_command(role: str, version: str, python: str = "python") -> list[str]:
    return [python, str(ROOT / "firmware" / "build.py"), "--version", version, "--role", role, "--json"]


def flash_commands(dev: BenchDevice, build_dir: Path, key_hex: str, *, mpremote: str = "mpremote",
                   extra_config: dict[str, Any] | None = None,
                   config_path: str = "config.json") -> tuple[list[list[str]], str]:
    """(mpremote command lines, config.json text) that install the role's build on the board.

    Mirrors docs/firmware.md §2 (run in ``build_dir``): make the directories, copy lib/hal/roles
    and stage-0 main.py, write /data/config.json, reset. The caller writes the config text to
    ``config_path``.
    """
    port = console_port(dev)
    cfg = {"role": dev.role, "key": key_hex, **(extra_config or {})}
    mk = ["fs", "mkdir", ":/lib", "+", "fs", "mkdir", ":/hal", "+", "fs", "mkdir", ":/roles", "+",
          "fs", "mkdir", ":/data"]
    cmds = [
        [mpremote, "connect", port, *mk],
        [mpremote, "connect", port, "fs", "cp", "-r", "lib", "hal", "roles", ":", "+",
         "fs", "cp", str(ROOT / "firmware" / "main.py"), ":main.py"],
        [mpremote, "connect", port, "fs", "cp", config_path, ":/data/config.json", "+", "reset"],
    ]
    return cmds, json.dumps(cfg, sort_keys=True)


def flash(dev: BenchDevice, build_dir: Path, key_hex: str, *, run: Callable[..., Any] = subprocess.run,
          mpremote: str = "mpremote") -> None:
    """Run :func:`flash_commands` in ``build_dir``; mkdir of existing directories is allowed to fail.
    The board's config.json is written beside the build (one per board, the key is per board)."""
    cfg_path = build_dir.parent / f"config-{dev.name}.json"
    cmds, cfg = flash_commands(dev, build_dir, key_hex, mpremote=mpremote, config_path=str(cfg_path))
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(cfg)
    for i, cmd in enumerate(cmds):
        r = run(cmd, cwd=str(build_dir), capture_output=True, text=True, timeout=120)
        if r.returncode and i != 0:
            raise RealBenchError(dev.name, f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")


def hard_reset(port: SerialLines, *, sleep: Callable[[float], None] = time.sleep, pulse_s: float = 0.1) -> None:
    """EN low then high with IO0 high (a normal boot, not the ROM bootloader): the esptool sequence."""
    port.dtr = False          # IO0 high
    port.rts = True           # EN low: in reset
    sleep(pulse_s)
    port.rts = False          # EN high: run


def open_serial(path: str, baud: int = 115200) -> Any:
    import serial  # adapter module boundary: pyserial only here

    s = serial.Serial()
    s.port = path
    s.baudrate = baud
    s.timeout = 0.2
    s.dtr = False             # set before open so opening does not reset the board
    s.rts = False
    s.open()
    return s


class Console:
    """Lines from a board's console; ``wait_for(text)`` with a timeout."""

    def __init__(self, port: SerialLines, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.clock = clock
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout_s: float) -> str | None:
        deadline = self.clock() + timeout_s
        while self.clock() < deadline:
            raw = self.port.readline()
            if not raw:
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            if text in line:
                return line
        return None

    def tracebacks(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith("Traceback")]


@dataclass(frozen=True)
class PowerSwitch:
    """A board's power: ``gpio:<n>`` (relay on a Pi GPIO, sysfs) or ``uhubctl:<hub>:<port>``."""

    spec: str
    gpio_root: Path = Path("/sys/class/gpio")

    def commands(self, on: bool) -> list[list[str]]:
        kind, _, rest = self.spec.partition(":")
        if kind == "uhubctl":
            hub, _, port = rest.partition(":")
            if not hub or not port.isdigit():
                raise ValueError(f"power_relay = {self.spec!r}: use \"uhubctl:<hub location>:<port>\", e.g. uhubctl:1-1:3")
            return [["uhubctl", "-l", hub, "-p", port, "-a", "on" if on else "off"]]
        if kind == "gpio":
            return []
        raise ValueError(f"power_relay = {self.spec!r}: use \"gpio:<pin>\" or \"uhubctl:<hub>:<port>\"")

    def set(self, on: bool, *, run: Callable[..., Any] = subprocess.run) -> None:
        kind, _, rest = self.spec.partition(":")
        if kind == "gpio":
            if not rest.isdigit():
                raise ValueError(f"power_relay = {self.spec!r}: the GPIO number must be digits, e.g. gpio:17")
            d = self.gpio_root / f"gpio{rest}"
            if not d.exists():
                (self.gpio_root / "export").write_text(rest)
                (d / "direction").write_text("out")
            # relay wired normally-closed: driving the GPIO high opens the contact = power off
            (d / "value").write_text("0" if on else "1")
            return
        for cmd in self.commands(on):
            r = run(cmd, capture_output=True, text=True, timeout=30)
            if r.returncode:
                raise RealBenchError(self.spec, f"{' '.join(cmd)} failed: {r.stderr.strip()}")

    def cut(self, **kw: Any) -> None:
        self.set(False, **kw)

    def restore(self, **kw: Any) -> None:
        self.set(True, **kw)


class RealBench:
    """Bring up a real bench from its description: build + flash + reset every serial board, then the
    gateway (``gateway run``) on the boards' link ports and the platform stub on the bench broker.

    ``run`` (subprocess.run) and ``open_port`` (pyserial) are injected so the sequence is tested
    without hardware; :meth:`steps` lists what :meth:`prepare` will do, for a dry run.
    """

    def __init__(self, bench: Any, workdir: Path, *, version: str = "0.0.0-bench",
                 run: Callable[..., Any] = subprocess.run, open_port: Callable[[str], Any] = open_serial,
                 sleep: Callable[[float], None] = time.sleep, python: str | None = None) -> None:
        import sys

        self.bench = bench
        self.workdir = workdir
        self.version = version
        self.run = run
        self.open_port = open_port
        self.sleep = sleep
        self.python = python or sys.executable
        self.consoles: dict[str, Console] = {}

    def serial_devices(self) -> list[BenchDevice]:
        return [d for d in self.bench.devices if d.transport == "serial"]

    def steps(self) -> list[str]:
        out = []
        for d in self.serial_devices():
            out.append(f"{d.name}: build {d.role} {self.version}; flash over {console_port(d)}; reset (DTR/RTS)")
        out.append("gateway: run on " + ", ".join(d.port or "?" for d in self.serial_devices())
                   + (" + BLE" if any(d.transport == "ble" for d in self.bench.devices) else ""))
        return out

    def build(self, role: str) -> Path:
        out = self.workdir / "build"
        r = self.run(build_command(role, self.version, self.python) + ["--out", str(out)],
                     capture_output=True, text=True, timeout=300)
        if r.returncode:
            raise RealBenchError(role, f"firmware build failed: {r.stderr.strip()}")
        (m,) = json.loads(r.stdout)
        return out / f"{m['role']}-{m['version']}"

    def prepare(self) -> None:
        """Build, flash and reset every serial board; keep its console open."""
        builds: dict[str, Path] = {}
        for d in self.serial_devices():
            if not d.key_hex:
                raise RealBenchError(d.name, "a real board needs key = \"<32 hex>\" in the bench file "
                                             "(the device key the gateway is configured with)")
            if d.role not in builds:
                builds[d.role] = self.build(d.role)
            flash(d, builds[d.role], d.key_hex, run=self.run)
            port = self.open_port(console_port(d))
            hard_reset(port, sleep=self.sleep)
            self.consoles[d.name] = Console(port)

    def gateway_config(self, data_dir: Path, status_port: int) -> dict[str, Any]:
        """The gateway configuration of this bench (same shape as the emulated bench's)."""
        devs = {}
        for d in self.bench.devices:
            if d.transport == "emulated":
                continue
            if not d.device_id:
                raise RealBenchError(d.name, "set device_id = \"<12 hex>\" (the board's base MAC / BLE address)")
            entry: dict[str, Any] = {"role": d.role}
            if d.key_hex:
                entry["key"] = d.key_hex
            devs[d.device_id] = entry
        return {
            "gateway": {"id": "gw-hil", "data_dir": str(data_dir), "timezone": "UTC"},
            "uplink": {"host": self.bench.broker_host, "port": self.bench.broker_port or 1883, "keepalive_s": 5,
                       "ack_timeout_s": 5},
            "serial": {"ports": [d.port for d in self.serial_devices()], "reconnect_s": 0.5},
            "ble": {"enabled": any(d.transport == "ble" for d in self.bench.devices)},
            "discovery": {"enabled": False},
            "status": {"host": "127.0.0.1", "port": status_port},
            "supervision": {"tick_s": 0.2},
            "devices": devs,
            "trust": control_trust(data_dir.parent),      # the fleet's control key: commands are signed
        }

    def power_cut(self, name: str) -> None:
        self._switch(name).cut(run=self.run)

    def power_restore(self, name: str) -> None:
        self._switch(name).restore(run=self.run)

    def _switch(self, name: str) -> PowerSwitch:
        d = next((x for x in self.bench.devices if x.name == name), None)
        if d is None or not d.power_relay:
            raise RealBenchError(name, "no power_relay in the bench file for this device")
        return PowerSwitch(d.power_relay)

    def close(self) -> None:
        for c in self.consoles.values():
            c.port.close()
