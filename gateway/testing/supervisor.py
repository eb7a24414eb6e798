"""A tiny service manager for tests: what systemd's ``Restart=always`` does for the gateway unit.

:class:`Supervisor` starts a command (the launcher, gateway/launch.py), waits for it to
exit, records the exit code and starts it again after ``restart_s`` — until :meth:`stop`.
The launcher execs the daemon, so the child's PID is the daemon's (``kill9`` hits it, as a
power cut or the OOM killer would). All output goes to one log file, like the journal.

Also :func:`seed_factory`: a factory release directory (``app/``, ``VERSION``) from a
release artifact, what the Debian package ships as /usr/lib/wt-gateway/factory.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from gateway.adapters.upgrade import inspect, unpack


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


__all__ = ["Run", "Supervisor", "seed_factory", "wait_for"]
