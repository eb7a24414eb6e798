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
                   extra_config: dict[str, Any] | None = None) -> tuple[list[list[str]], str]:
    """(mpremote command lines, config.json text) that install the role's build on the board.

    Mirrors docs/firmware.md §2: make the directories, copy lib/hal/roles and stage-0 main.py,
    write /data/config.json, reset. The caller writes the config text to ``build_dir/config.json``.
    """
    port = console_port(dev)
    cfg = {"role": dev.role, "key": key_hex, **(extra_config or {})}
    mk = ["fs", "mkdir", ":/lib", "+", "fs", "mkdir", ":/hal", "+", "fs", "mkdir", ":/roles", "+",
          "fs", "mkdir", ":/data"]
    cmds = [
        [mpremote, "connect", port, *mk],
        [mpremote, "connect", port, "fs", "cp", "-r", "lib", "hal", "roles", ":", "+",
         "fs", "cp", str(ROOT / "firmware" / "main.py"), ":main.py"],
        [mpremote, "connect", port, "fs", "cp", "config.json", ":/data/config.json", "+", "reset"],
    ]
    return cmds, json.dumps(cfg, sort_keys=True)


def flash(dev: BenchDevice, build_dir: Path, key_hex: str, *, run: Callable[..., Any] = subprocess.run,
          mpremote: str = "mpremote") -> None:
    """Run :func:`flash_commands` in ``build_dir``; mkdir of existing directories is allowed to fail."""
    cmds, cfg = flash_commands(dev, build_dir, key_hex, mpremote=mpremote)
    (build_dir / "config.json").write_text(cfg)
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
