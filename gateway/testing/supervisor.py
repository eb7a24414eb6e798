"""A tiny service manager for tests: what systemd's ``Restart=always`` does for the gateway unit.

:class:`Supervisor` starts a command (the launcher, gateway/launch.py), waits for it to
exit, records the exit code and starts it again after ``restart_s`` — until :meth:`stop`.
The launcher execs the daemon, so the child's PID is the daemon's (``kill9`` hits it, as a
power cut or the OOM killer would). All output goes to one log file, like the journal.

Also :func:`seed_factory`: a factory release directory (``app/``, ``VERSION``) from a
release artifact, what the Debian package ships as /usr/lib/wt-gateway/factory; and
:class:`ServiceRig`: the installed layout in a temporary directory (factory release 0.1.0,
slots, config, the launcher under a :class:`Supervisor`, an observer on the broker that
records what the fleet would see), used by the A/B process tests of the gateway and of
the fleet's rollouts (hil_tests/test_gateway_ab.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from contracts.topics import gateway_subtree
from gateway.adapters.upgrade import inspect, pack, unpack

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "gateway" / "launch.py"


@dataclass
class Run:
    pid: int
    started: float
    ended: float | None = None
    exit_code: int | None = None


class Supervisor:
    def __init__(self, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None,
                 restart_s: float = 0.2, cwd: str | Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = env
        self.restart_s = restart_s
        self.cwd = cwd
        self.runs: list[Run] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def _loop(self) -> None:
        with open(self.log_path, "ab") as log:
            while not self._stop.is_set():
                log.write(f"--- supervisor: start {' '.join(self.argv)}\n".encode())
                log.flush()
                proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
                run = Run(proc.pid, time.time())
                with self._cv:
                    self._proc = proc
                    self.runs.append(run)
                    self._cv.notify_all()
                rc = proc.wait()
                with self._cv:
                    run.ended, run.exit_code = time.time(), rc
                    self._proc = None
                    self._cv.notify_all()
                log.write(f"--- supervisor: pid {proc.pid} exited {rc}\n".encode())
                log.flush()
                self._stop.wait(self.restart_s)

    @property
    def pid(self) -> int | None:
        with self._cv:
            return self._proc.pid if self._proc is not None else None

    def kill9(self) -> int | None:
        """SIGKILL the running child (a power cut for the process); its PID, or None."""
        with self._cv:
            proc = self._proc
        if proc is None:
            return None
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return proc.pid

    def wait_runs(self, n: int, timeout_s: float = 60.0) -> list[Run]:
        """Until at least ``n`` runs have started."""
        with self._cv:
            if not self._cv.wait_for(lambda: len(self.runs) >= n, timeout_s):
                raise AssertionError(f"only {len(self.runs)} of {n} starts within {timeout_s} s\n{self.output()[-4000:]}")
            return list(self.runs)

    def exit_codes(self) -> list[int | None]:
        with self._cv:
            return [r.exit_code for r in self.runs]

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the child (SIGKILL after ``timeout_s``) and stop restarting."""
        self._stop.set()
        with self._cv:
            proc = self._proc
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout_s)


def seed_factory(artifact: bytes, version: str, dest: Path) -> Path:
    """Unpack a release artifact into ``dest`` (app/, VERSION): a factory release directory."""
    unpack(artifact, inspect(artifact, version), dest)
    return dest


def wait_for(pred: Callable[[], object], timeout_s: float, what: str, *, debug: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s\n{debug()[-6000:]}")
        time.sleep(0.05)


_BUILDS: dict[tuple[str, str], bytes] = {}


def build_release(version: str, *, broken: str = "") -> bytes:
    """A release artifact of this checkout (cached); ``broken``: code that replaces
    ``gateway/__main__.py`` (a release that crashes at start)."""
    key = (version, broken)
    if key not in _BUILDS:
        replace = {"app/gateway/__main__.py": broken.encode()} if broken else None
        _BUILDS[key] = pack(ROOT, version, replace=replace)
    return _BUILDS[key]


class ServiceRig:
    """The gateway installed in ``tmp`` and run as the service would run it.

    ``proxy=True`` puts a TCP proxy (``.proxy``: blackhole/heal) between the gateway and the
    broker; the observer always talks to the broker directly. ``key`` signs releases
    (the gateway trusts its public half)."""

    def __init__(self, tmp: Path, broker_port: int, *, gateway_id: str = "gw-ab", proxy: bool = False,
                 deadline_s: float = 60.0) -> None:
        from contracts.release import generate_key
        from gateway.testing.control import FleetKey
        from gateway.testing.platform import PahoLink
        from gateway.testing.tcp_proxy import TcpProxy

        self.tmp = tmp
        self.gateway_id = gateway_id
        self.broker_port = broker_port
        self.proxy = TcpProxy("127.0.0.1", broker_port) if proxy else None
        port = self.proxy.port if self.proxy else broker_port
        self.key, pub = generate_key()
        (tmp / "ci.pub").write_bytes(pub)
        self.fleet = FleetKey.create(tmp / "keys")      # the fleet's control key: commands are signed
        seed_factory(build_release("0.1.0"), "0.1.0", tmp / "factory")
        self.slots = tmp / "slots"
        self.config = tmp / "gateway.toml"
        self.config.write_text(f"""
[gateway]
id = "{gateway_id}"
data_dir = "{tmp / 'data'}"
[uplink]
host = "127.0.0.1"
port = {port}
health_interval_s = 30
[status]
port = 0
[discovery]
enabled = false
[upgrades]
trusted_keys = ["{tmp / 'ci.pub'}"]
commit_deadline_s = {deadline_s}
[trust]
fleet_key = "{self.fleet.public_path}"
""")
        self.msgs: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.observer = PahoLink("127.0.0.1", broker_port, client_id=f"t-observer-{gateway_id}")
        self.observer.subscribe(gateway_subtree(gateway_id), self._record)
        self.observer.start()
        self.sup: Supervisor | None = None

    def _record(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        with self._lock:
            self.msgs.append((time.time(), topic.rsplit(f"{self.gateway_id}/", 1)[-1], doc))

    def seen(self) -> list[tuple[float, str, dict[str, Any]]]:
        """(arrival time, topic kind, document) of everything the gateway published."""
        with self._lock:
            return list(self.msgs)

    # ---- the service ------------------------------------------------------------------------
    def start(self) -> Supervisor:
        self.sup = Supervisor([sys.executable, str(LAUNCH), "--slots", str(self.slots), "--config", str(self.config),
                               "--factory", str(self.tmp / "factory")], log_path=self.tmp / "journal.log").start()
        return self.sup

    def stop(self) -> None:
        if self.sup is not None:
            self.sup.stop()
            self.sup = None

    def journal(self) -> str:
        """Everything the launcher and the daemons wrote (the journal under systemd)."""
        p = self.tmp / "journal.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        self.stop()
        self.observer.stop()
        if self.proxy is not None:
            self.proxy.close()

    # ---- what the fleet sees ---------------------------------------------------------------------
    def health_versions(self, since: float = 0.0) -> list[str]:
        return [str(d.get("version")) for t, k, d in self.seen() if k == "health" and t >= since]

    def wait_health(self, version: str, since: float = 0.0, timeout_s: float = 60.0) -> float:
        """Until a wt.health/1 with ``version`` arrived after ``since``; its arrival time."""
        wait_for(lambda: version in self.health_versions(since), timeout_s, f"health with version {version}",
                 debug=self.journal)
        return next(t for t, k, d in self.seen() if k == "health" and t >= since and d.get("version") == version)

    def results(self, cmd_id: str) -> list[dict[str, Any]]:
        return [d for _, k, d in self.seen() if k == "cmd/result" and d.get("cmd_id") == cmd_id]

    def phases(self, cmd_id: str) -> list[tuple[str, str]]:
        return [(d["status"], d["detail"].get("phase")) for d in self.results(cmd_id)]

    def outcome(self, cmd_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        wait_for(lambda: any(d["status"] != "progress" for d in self.results(cmd_id)), timeout_s,
                 f"final result of {cmd_id}", debug=self.journal)
        return [d for d in self.results(cmd_id) if d["status"] != "progress"][-1]

    def state(self) -> dict[str, Any]:
        return json.loads((self.slots / "state.json").read_text())

    # ---- releases and commands -------------------------------------------------------------------
    def signed(self, version: str, blob: bytes) -> Any:
        from contracts.release import sign

        return sign(blob, f"gateway-{version}.tar.gz", "gateway", version, self.key)

    def send_update(self, deployment: str, version: str, blob: bytes) -> str:
        """The fleet's ``update`` command for ``blob`` (inline), on the gateway's cmd topic; its cmd_id."""
        from contracts.payloads import encode_cmd
        from contracts.release import install_command
        from contracts.topics import Kind, gateway_topic

        cmd = install_command(self.signed(version, blob), deployment=deployment, gateway_id=self.gateway_id,
                              artifact_url="fleet://release", artifact=blob)
        self.observer.publish(gateway_topic(self.gateway_id, Kind.CMD),
                              self.fleet.wrap(self.gateway_id, "wt.cmd/1", encode_cmd(*cmd)), qos=1)
        return cmd.cmd_id


__all__ = ["Run", "ServiceRig", "Supervisor", "build_release", "seed_factory", "wait_for"]
