"""The emulated bench: real firmware on MicroPython, the real gateway daemon, real Mosquitto.

::

    firmware (micropython fw_runner) ── pty ── SerialFaultProxy ── pty ── `gateway run`
                                                                              │ MQTT v5
    PlatformStub ──────────── Mosquitto ◄──────── TcpFaultProxy ◄─────────────┘

Every process is real: each device is the firmware tree (compiled to .mpy exactly as it
is flashed) running ``main.boot`` on the MicroPython unix port with its UART on a
pseudo-terminal; the gateway is ``gateway run --config <generated toml>`` as a
subprocess; the broker is a private Mosquitto. Faults are injected by the proxies
(hil_tests/faults.py), by killing processes (``kill -9`` = power cut) and by the
stimuli (pin traces, replayed accelerometer/NMEA files, the dispenser emulator).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gateway.domain.ports import Clock
from gateway.testing.broker import free_port
from gateway.testing.waiting import wait_until
from hil_tests.control import trust as control_trust
from hil_tests.faults import FaultPolicy, SerialFaultProxy, TcpFaultProxy
from hil_tests.platform import Arrival, PlatformStub

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GATEWAY_ID = "gw-hil"


class BenchStartError(RuntimeError):
    """A bench component did not come up; ``what`` names it, the message carries its log."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what


def _bin(name: str) -> str:
    p = Path(sys.executable).with_name(name)
    return str(p) if p.exists() else name


# ------------------------------------------------------------------ devices
@dataclass
class DeviceSpec:
    """One emulated device: role, identity and its stimuli."""

    name: str
    role: str
    device_id: str
    key: str
    cfg: dict[str, Any] = field(default_factory=dict)         # extra firmware config.json keys
    pins: dict[str, list[tuple[int, int]]] = field(default_factory=dict)   # name -> [(t_ms, level)]
    adcs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    acc: Path | None = None          # accelerometer sample file (firmware replay format)
    gps: Path | None = None          # NMEA log
    cut: str | None = None           # "PIN:EDGES:K": tear the flash's K+1-th write after EDGES edges of PIN
    dispenser: dict[str, Any] | None = None   # DispenserEmulator keyword arguments
    battery: tuple[int, int, int] = (90, 4000, 0)
    heap: str = "128k"   # device heap (64k) + the host HAL, replay models and bench runner
    gateway: dict[str, Any] = field(default_factory=dict)     # extra [devices.<id>] keys


def _trace_file(path: Path, points: list[tuple[int, int]]) -> Path:
    path.write_text("".join(f"{t} {v}\n" for t, v in points))
    return path


class FirmwareProcess:
    """The firmware of one device on the real MicroPython interpreter (hil_tests/fw_runner.py)."""

    def __init__(self, spec: DeviceSpec, link_path: str, workdir: Path) -> None:
        self.spec = spec
        self.link_path = link_path
        self.workdir = workdir
        self.flash = workdir / f"{spec.name}.img"
        self.proc: subprocess.Popen | None = None
        self.t0_wall: float | None = None
        self.outputs: list[tuple[str, int, int]] = []   # (pin, level, t_ms)
        self.edges: list[tuple[str, int, int, int]] = []  # (pin, level, t_ms it took effect, trace t_ms)
        self.powercut_at: int | None = None     # t_ms of a --cut power cut (the process is killed at once)
        self.lags: list[tuple[int, int]] = []   # (device t_ms, total ms the device clock paused so far)
        self.boots = 0
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from firmware.tests.mpy import compiled_tree, micropython_bin, mpy_cross_bin, prelude

        tree = compiled_tree()
        rdir = self.workdir / "fw-runner"      # only the runner: nothing else importable from here
        script = rdir / "fw_runner_main.py"
        if not script.exists():
            rdir.mkdir(parents=True, exist_ok=True)
            # compiled like the firmware: compiling source on a 64 KB heap is what a device can't do either
            subprocess.run([mpy_cross_bin(), "-o", str(rdir / "fw_runner.mpy"), "-s", "fw_runner.py",
                            str(HERE / "fw_runner.py")], check=True, capture_output=True)
            script.write_text(prelude(tree) + "if '' in sys.path:\n    sys.path.remove('')\n"
                              f"sys.path.append({str(rdir)!r})\nimport fw_runner\n")
        s = self.spec
        args = [micropython_bin(), "-X", f"heapsize={s.heap}", str(script), "--link", self.link_path,
                "--flash", str(self.flash), "--device-id", s.device_id,
                "--cfg", json.dumps({"role": s.role, "key": s.key, **s.cfg}),
                "--battery", ",".join(str(x) for x in s.battery)]
        if s.pins:
            args += ["--pins", ",".join(f"{n}={_trace_file(self.workdir / f'{s.name}-{n}.trace', pts)}"
                                        for n, pts in s.pins.items())]
        if s.adcs:
            args += ["--adcs", ",".join(f"{n}={_trace_file(self.workdir / f'{s.name}-{n}.adc', pts)}"
                                        for n, pts in s.adcs.items())]
        if s.acc:
            args += ["--acc", str(s.acc)]
        if s.gps:
            args += ["--gps", str(s.gps)]
        if s.dispenser is not None:
            args += ["--dispenser", json.dumps(s.dispenser)]
        if s.cut:
            args += ["--cut", s.cut]
        return args

    def start(self) -> "FirmwareProcess":
        self.t0_wall = None
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=str(self.workdir), text=True, bufsize=1)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True, name=f"fw-{self.spec.name}").start()
        wait_until(lambda: self.t0_wall is not None or (self.proc and self.proc.poll() is not None), 20,
                   f"firmware {self.spec.name} to start")
        if self.t0_wall is None:
            raise BenchStartError(f"firmware {self.spec.name}", "exited at start:\n" + self.log())
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
                parts = line.split()
                if parts[:1] == ["T0"] and len(parts) == 2:
                    self.t0_wall = int(parts[1]) / 1e9
                elif parts[:1] == ["OUT"] and len(parts) >= 4:
                    self.outputs.append((parts[1], int(parts[2]), int(parts[3])))
                elif parts[:1] == ["LAG"] and len(parts) == 3:
                    self.lags.append((int(parts[1]), int(parts[2])))
                elif parts[:1] == ["EDGE"] and len(parts) >= 5:
                    self.edges.append((parts[1], int(parts[2]), int(parts[3]), int(parts[4])))
                elif parts[:1] == ["BOOT"]:
                    self.boots += 1
                elif parts[:1] == ["POWERCUT"]:
                    proc.kill()                 # the power is gone: nothing after the torn write runs
                    self.powercut_at = int(parts[1])

    def wall(self, t_ms: float) -> float:
        """Wall-clock time of the firmware's ``t_ms`` (the time base of its traces), including the
        pauses of its clock while the process was starved (fw_runner.GovernedClock)."""
        assert self.t0_wall is not None
        with self._lock:
            lag = 0
            for t, total in self.lags:
                if t > t_ms:
                    break
                lag = total
        return self.t0_wall + (t_ms + lag) / 1000.0

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-60:])

    def input_edges(self, pin: str, level: int | None = None) -> list[int]:
        """t_ms at which each edge of input ``pin`` took effect (= the trace time unless the
        process was starved, see fw_runner.ObservedPin)."""
        with self._lock:
            return [t for p, v, t, _ in self.edges if p == pin and (level is None or v == level)]

    def output_history(self, pin: str) -> list[tuple[int, int]]:
        with self._lock:
            return [(t, v) for p, v, t in self.outputs if p == pin]

    def power_cut(self) -> None:
        """SIGKILL: the board loses power wherever it is (mid flash write included)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ------------------------------------------------------------------ gateway
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Minimal TOML writer for the generated gateway config (tables, scalars, lists)."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)
               and not (isinstance(v, list) and v and isinstance(v[0], dict))}
    out = []
    if scalars:
        if prefix:
            out.append(f"[{prefix}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
        out.append("")
    for k, v in data.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.append(to_toml(v, name))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                out.append(f"[[{name}]]")
                out += [f"{ik} = {_toml_value(iv)}" for ik, iv in item.items()]
                out.append("")
    return "\n".join(out)


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class GatewayProcess:
    """``gateway run --config FILE`` as a subprocess (kill -9 = power cut, restart keeps data_dir)."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config = config
        self.config_path = workdir / "gateway.toml"
        self.config_path.write_text(to_toml(config))
        self.status_port = int(config["status"]["port"])
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self._log_path = workdir / "gateway.log"

    def start(self) -> "GatewayProcess":
        self.runs += 1
        log = open(self._log_path, "a")
        log.write(f"==== start {self.runs}\n")
        log.flush()
        self.proc = subprocess.Popen([_bin("gateway"), "run", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        log.close()
        wait_until(lambda: self.status() is not None or self.proc.poll() is not None, 30, "gateway status endpoint")
        if self.proc.poll() is not None:
            raise BenchStartError("gateway", f"exited {self.proc.returncode}:\n{self.log()}")
        return self

    def status(self) -> dict[str, Any] | None:
        from gateway.adapters.status import StatusError, fetch_status

        try:
            return fetch_status(f"http://127.0.0.1:{self.status_port}/status", timeout_s=2)
        except StatusError:
            return None

    def log(self) -> str:
        try:
            return "\n".join(self._log_path.read_text().splitlines()[-80:])
        except OSError:
            return ""

    def power_cut(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class InProcessGateway:
    """The gateway wired by ``gateway.daemon.bootstrap`` in this process (own event loop thread),
    with an injected clock; real serial links, journal and MQTT route. Same surface as GatewayProcess."""

    def __init__(self, workdir: Path, config: dict[str, Any], clock: Any) -> None:
        self.workdir = workdir
        self.config = config
        self.clock = clock
        self.config_path = workdir / "gateway.toml"
        self.config_path.write_text(to_toml(config))
        self.runtime: Any = None
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._stop: Any = None

    def start(self) -> "InProcessGateway":
        import asyncio

        from gateway.config import load_config
        from gateway.daemon import bootstrap

        cfg = load_config(self.config_path, env={})
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stop = asyncio.Event()
                try:
                    self.runtime = bootstrap(cfg, clock=self.clock, loop=loop, advertise=False)
                    await self.runtime.async_start()
                except BaseException as exc:   # reported to the starting thread
                    errors.append(exc)
                    ready.set()
                    return
                ready.set()
                await self._stop.wait()
                await self.runtime.async_stop()
            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="gateway-in-process")
        self._thread.start()
        if not ready.wait(30):
            raise BenchStartError("gateway (in-process)", "did not start in 30 s")
        if errors:
            raise BenchStartError("gateway (in-process)", repr(errors[0]))
        return self

    def call(self, fn: Callable[[], Any], timeout_s: float = 10) -> Any:
        """Run ``fn`` on the gateway's event loop and return its result."""
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()

        def go() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
        self._loop.call_soon_threadsafe(go)
        return fut.result(timeout_s)

    def status(self) -> dict[str, Any] | None:
        if self.runtime is None or self._loop is None:
            return None
        return self.call(self.runtime.snapshot)

    def log(self) -> str:
        return "(in-process gateway: see the captured log output)"

    def power_cut(self) -> None:
        raise NotImplementedError("an in-process gateway cannot be killed; use the subprocess gateway")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)


# ------------------------------------------------------------------ the bench
class EmulatedBench:
    """Start everything for a list of devices; use as a context manager."""

    def __init__(self, workdir: Path, devices: list[DeviceSpec], *, gateway: dict[str, Any] | None = None,
                 platform_accept: bool = False, clock: Clock | None = None) -> None:
        self.clock = clock            # set: the gateway runs in-process on this clock
        self.workdir = workdir
        self.specs = devices
        self.gateway_overrides = gateway or {}
        self.platform_accept = platform_accept
        self.broker: Any = None
        self.uplink: TcpFaultProxy | None = None
        self.platform: PlatformStub | None = None
        self.serial: dict[str, SerialFaultProxy] = {}
        self.firmware: dict[str, FirmwareProcess] = {}
        self.gw: Any = None   # GatewayProcess, or InProcessGateway when a clock is injected
        self.downlinks: dict[str, list[tuple[float, Any, Any]]] = {}   # name -> (wall, Frame, payload)
        self.uplinks: dict[str, list[tuple[float, Any, Any]]] = {}     # what the gateway received, same shape
        self._decoders: dict[tuple[str, str], Any] = {}
        self._dl_lock = threading.Lock()

    # names for transcripts
    @property
    def names(self) -> dict[str, str]:
        return {s.device_id: s.name for s in self.specs}

    def spec(self, name: str) -> DeviceSpec:
        return next(s for s in self.specs if s.name == name)

    def gateway_config(self) -> dict[str, Any]:
        assert self.uplink is not None
        base: dict[str, Any] = {
            "gateway": {"id": GATEWAY_ID, "data_dir": str(self.workdir / "gw"), "timezone": "UTC",
                        "log_level": "info"},
            "uplink": {"host": "127.0.0.1", "port": self.uplink.port, "keepalive_s": 5,
                       "ack_timeout_s": 5, "health_interval_s": 30},
            "serial": {"ports": [self.serial[s.name].gateway_path for s in self.specs], "reconnect_s": 0.2},
            "discovery": {"enabled": False},
            "status": {"host": "127.0.0.1", "port": free_port()},
            "supervision": {"tick_s": 0.2, "silent_after_s": 120, "uplink_lost_after_s": 2},
            "devices": {s.device_id: {"role": s.role, "key": s.key, **s.gateway} for s in self.specs},
            "trust": control_trust(self.workdir),      # the fleet's control key: commands are signed
        }
        return deep_merge(base, self.gateway_overrides)

    def start(self) -> "EmulatedBench":
        from gateway.testing.broker import MosquittoProcess

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = MosquittoProcess(workdir=self.workdir / "mosquitto").start()
        self.uplink = TcpFaultProxy("127.0.0.1", self.broker.port).start()
        self.platform = PlatformStub("127.0.0.1", self.broker.port, accept=self.platform_accept).start()
        for s in self.specs:
            proxy = SerialFaultProxy(tap=lambda d, b, name=s.name: self._tap(name, d, b)).start()
            self.serial[s.name] = proxy
        if self.clock is not None:
            self.gw = InProcessGateway(self.workdir, self.gateway_config(), self.clock).start()
        else:
            self.gw = GatewayProcess(self.workdir, self.gateway_config()).start()
        self.wait_links_up()
        wait_until(lambda: self.platform.gateway_online(GATEWAY_ID), 20, "the gateway's online state at the platform")
        for s in self.specs:
            self.firmware[s.name] = FirmwareProcess(s, self.serial[s.name].device_path, self.workdir).start()
        for s in self.specs:
            self.wait_device_seen(s.name)
        return self

    def wait_links_up(self, timeout_s: float = 20) -> None:
        assert self.gw is not None

        def up() -> bool:
            st = self.gw.status()
            return bool(st) and len(st["links"]) == len(self.specs) and all(
                ln.get("state") == "up" for ln in st["links"])
        wait_until(up, timeout_s, "the gateway's serial links to come up")

    def wait_device_seen(self, name: str, timeout_s: float = 20) -> None:
        dev = self.spec(name).device_id

        def seen() -> bool:
            st = self.gw.status() if self.gw else None
            return bool(st) and any(d["device"] == dev and d.get("last_seen") for d in st["devices"])
        try:
            wait_until(seen, timeout_s, f"the gateway to hear from {name}", step_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- firmware\n{self.firmware[name].log()}\n--- gateway\n{self.gw.log()}") from None

    def _tap(self, name: str, direction: str, data: bytes) -> None:
        from gateway.codec import Frame, StreamDecoder
        from gateway.codec.payloads import decode_payload

        now = time.time()
        seen = self.downlinks if direction == "down" else self.uplinks
        with self._dl_lock:
            dec = self._decoders.setdefault((name, direction), StreamDecoder())
            for f in dec.feed(data):
                if isinstance(f, Frame):
                    seen.setdefault(name, []).append((now, f, decode_payload(f.type, f.payload)))

    def downlink_payloads(self, name: str, kind: type) -> list[tuple[float, Any]]:
        with self._dl_lock:
            return [(t, p) for t, _f, p in self.downlinks.get(name, []) if isinstance(p, kind)]

    def uplink_payloads(self, name: str, kind: type) -> list[tuple[float, Any]]:
        """Frames the device sent that reached the gateway's side of the link (after faults)."""
        with self._dl_lock:
            return [(t, p) for t, _f, p in self.uplinks.get(name, []) if isinstance(p, kind)]

    def alarms(self, pred: Callable[[Arrival], bool] = lambda a: True) -> list[Arrival]:
        assert self.platform is not None
        return [a for a in self.platform.alarms() if pred(a)]

    def restart_firmware(self, name: str, **changes: Any) -> FirmwareProcess:
        """Boot the device again on the same flash image (after a power cut), with new stimuli."""
        old = self.firmware[name]
        old.power_cut()
        spec = self.spec(name)
        for k, v in changes.items():
            setattr(spec, k, v)
        fw = FirmwareProcess(spec, self.serial[name].device_path, self.workdir)
        fw.lines = [*old.lines, "==== restart"]
        self.firmware[name] = fw
        return fw.start()

    def debug(self) -> str:
        parts = [f"--- gateway log\n{self.gw.log() if self.gw else ''}"]
        for n, fw in self.firmware.items():
            parts.append(f"--- firmware {n}\n{fw.log()}")
        if self.platform:
            parts.append("--- platform\n" + "\n".join(
                f"{a.topic} {a.type} {a.event_id}" for a in self.platform.all_arrivals()[-40:]))
        return "\n".join(parts)

    def stop(self) -> None:
        for fw in self.firmware.values():
            fw.stop()
        if self.gw:
            self.gw.stop()
        for p in self.serial.values():
            p.close()
        if self.platform:
            self.platform.stop()
        if self.uplink:
            self.uplink.close()
        if self.broker:
            self.broker.stop()

    def __enter__(self) -> "EmulatedBench":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["InProcessGateway", "BenchStartError", "DeviceSpec", "EmulatedBench", "FirmwareProcess", "GatewayProcess",
           "FaultPolicy", "GATEWAY_ID", "deep_merge", "to_toml"]
