"""Run a private Mosquitto broker on a loopback port.

Used by every test tier through the root conftest (``mosquitto``, ``mosquitto_factory``),
by the gateway demo ("starts or reuses a Mosquitto"), by tests that must kill or restart
a broker, and by the benchmarks. Not part of the daemon's runtime path.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class BrokerError(RuntimeError):
    """The mosquitto binary is missing or the broker did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_mosquitto() -> str:
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )
    if not exe:
        raise BrokerError(
            "mosquitto is not installed; install it with: apt-get install -y mosquitto"
        )
    return exe


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class MosquittoProcess:
    """A mosquitto child process with its own config file and port.

    ``extra_config`` lines are appended to the generated config (TLS listeners,
    password files...). Keeps the same port across :meth:`restart` so clients can
    reconnect to it.
    """

    port: int = 0
    host: str = "127.0.0.1"
    extra_config: str = ""
    default_listener: bool = True
    max_queued_messages: int = 100000
    workdir: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="wt-mosq-"))
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def conf_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        lines = ["per_listener_settings false", "allow_anonymous true",
                 f"max_queued_messages {self.max_queued_messages}",
                 "max_inflight_messages 0", "persistence false",
                 # Mosquitto >= 2.0 (2.0.11 installed): PUBACKs / forwarded alarms are not
                 # held back by Nagle's algorithm, as in the production config (docs/mqtt.md)
                 "set_tcp_nodelay true",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if self.default_listener:
            lines.append(f"listener {self.port} {self.host}")
        if self.extra_config:
            lines.append(self.extra_config.strip())
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, wait_s: float = 10.0) -> "MosquittoProcess":
        self.write_config()
        assert self.workdir is not None
        self._log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.conf_path)],
            stdout=self._log, stderr=self._log, start_new_session=True,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self.proc.returncode}; see {self.workdir}/mosquitto.log"
                )
            if not self.default_listener or port_open(self.host, self.port):
                return self
            time.sleep(0.02)
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {wait_s}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing connections cleanly."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "MosquittoProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
