"""sd_notify: the daemon tells systemd it is ready, keeps the watchdog fed only while healthy,
and says when it stops (gateway/adapters/systemd.py, gateway/daemon/_service.py).

Every test listens on a real ``AF_UNIX``/``SOCK_DGRAM`` socket, as systemd does. The process
test runs the real ``gateway run`` with ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` set and
wedges its event loop from outside (a SIGUSR1 handler installed by the test's launcher
blocks the main thread, which is the loop's thread).
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.adapters.systemd import MAX_STATUS_CHARS, SystemdNotifier
from gateway.config import load_config
from gateway.daemon._service import ServiceWatchdog

ROOT = Path(__file__).resolve().parents[2]


class NotifyListener:
    """The service manager's end: a datagram socket collecting (monotonic time, fields)."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def times(self, key: str) -> list[float]:
        return [t for t, f in list(self.messages) if key in f]

    def statuses(self) -> list[str]:
        return [f["STATUS"] for _, f in list(self.messages) if "STATUS" in f]

    def wait_for(self, pred, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not received within {timeout_s} s; got {self.messages}")
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    made: list[NotifyListener] = []

    def make(address: str | bytes | None = None) -> NotifyListener:
        lst = NotifyListener(address if address is not None else str(tmp_path / "notify.sock"))
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()


# ---------------------------------------------------------------- the adapter

def test_notifier_sends_to_a_path_socket(listener, tmp_path):
    lst = listener()
    n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_interval_s == 15.0
    assert n.ready("gw-1 up\nsecond line") and n.watchdog() and n.stopping()
    lst.wait_for(lambda: len(lst.messages) == 3, 5, "three datagrams")
    assert [f for _, f in lst.messages] == [{"READY": "1", "STATUS": "gw-1 up second line"}, {"WATCHDOG": "1"},
                                            {"STOPPING": "1"}]
    n.close()


def test_notifier_abstract_namespace_socket(listener):
    name = f"wt-notify-test-{os.getpid()}-{time.monotonic_ns()}"
    lst = listener(b"\0" + name.encode())
    n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
    assert n.watchdog_interval_s is None            # no WATCHDOG_USEC: no watchdog
    assert n.status("x" * (MAX_STATUS_CHARS + 50))
    lst.wait_for(lambda: lst.messages, 5, "a datagram on the abstract socket")
    assert lst.messages[0][1] == {"STATUS": "x" * MAX_STATUS_CHARS}
    n.close()


def test_notifier_without_socket_is_a_no_op():
    n = SystemdNotifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled and n.watchdog_interval_s is None
    assert not n.ready("x") and not n.watchdog() and n.sent == 0


def test_watchdog_of_another_process_is_not_ours(tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "s"), "WATCHDOG_USEC": "1000000"}
    assert SystemdNotifier.from_environ({**env, "WATCHDOG_PID": "1"}, pid=4242).watchdog_interval_s is None
    assert SystemdNotifier.from_environ({**env, "WATCHDOG_PID": "4242"}, pid=4242).watchdog_interval_s == 0.5
    assert SystemdNotifier.from_environ({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval_s is None


def test_a_vanished_service_manager_never_raises(tmp_path, caplog):
    n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not n.watchdog() and not n.watchdog()
    assert n.dropped == 2
    assert sum("notification" in r.message for r in caplog.records) == 1   # said once, not every period


# ---------------------------------------------------------------- the health policy on a real journal writer

class _Runtime:
    """What ServiceWatchdog reads from a GatewayRuntime: the writer, the config, the uplink."""

    def __init__(self, writer: JournalWriter) -> None:
        self.writer = writer
        self.cfg = load_config(None, env={}, overrides={"gateway": {"id": "gw-health"}})

    def uplink_connected(self) -> bool:
        return False


def test_watchdog_withheld_while_the_journal_writer_hangs_and_resumed_after(listener, tmp_path):
    lst = listener()
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    release = threading.Event()

    async def run() -> ServiceWatchdog:
        loop = asyncio.get_running_loop()
        writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
        notifier = SystemdNotifier(str(tmp_path / "notify.sock"), watchdog_usec=200_000)   # a ping per 0.1 s
        svc = ServiceWatchdog(notifier, loop=loop, writer_stall_s=0.3)
        svc.on_ready(_Runtime(writer))
        task = loop.create_task(svc.async_run())
        try:
            await asyncio.sleep(0.6)
            healthy_pings = svc.pings
            writer.call(lambda j: release.wait(10))          # the writer thread hangs (as in a dead SD card)
            await asyncio.sleep(1.5)
            hung_pings = svc.pings
            assert svc.problem() is not None and "journal writer has not answered" in svc.problem()
            release.set()
            await asyncio.sleep(0.6)
            assert healthy_pings >= 3, healthy_pings
            # while hung, only the pings before the stall bound ran out (0.3 s at 0.1 s, plus a tick)
            assert hung_pings - healthy_pings <= 6, hung_pings - healthy_pings
            assert svc.pings > hung_pings, "keep-alive did not resume after the writer answered"
        finally:
            task.cancel()
            release.set()
            writer.stop()
            notifier.close()
        return svc

    asyncio.run(run())
    journal.close()
    statuses = lst.statuses()
    assert statuses[0].startswith("gw-health ") and "uplink down" in statuses[0]
    assert any(s.startswith("UNHEALTHY: the journal writer has not answered") for s in statuses)
    assert not statuses[-1].startswith("UNHEALTHY")
    watchdog = lst.times("WATCHDOG")
    gaps = [b - a for a, b in zip(watchdog, watchdog[1:])]
    assert max(gaps) >= 0.8, gaps                      # the withheld stretch (~1.1 s)


def test_no_watchdog_before_ready_and_ready_only_once(listener, tmp_path):
    lst = listener()
    journal = SqliteJournal(tmp_path / "journal.sqlite")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
        notifier = SystemdNotifier(str(tmp_path / "notify.sock"), watchdog_usec=100_000)
        svc = ServiceWatchdog(notifier, loop=loop)
        svc.tick()                                      # no gateway yet: nothing sent
        svc.on_ready(_Runtime(writer))
        svc.on_ready(_Runtime(writer))                  # a re-bootstrap: STATUS, not READY again
        svc.tick()
        writer.stop()
        notifier.close()

    asyncio.run(run())
    journal.close()
    lst.wait_for(lambda: len(lst.messages) >= 3, 5, "ready, status, watchdog")
    kinds = [sorted(f) for _, f in lst.messages]
    assert kinds[:3] == [["READY", "STATUS"], ["STATUS"], ["WATCHDOG"]]


# ---------------------------------------------------------------- the real daemon process

_LAUNCH = """
import os, signal, sys, time
wedge_s = float(os.environ["TEST_WEDGE_S"])
signal.signal(signal.SIGUSR1, lambda *_: time.sleep(wedge_s))   # blocks the main thread = the event loop
from gateway.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


@pytest.mark.slow
def test_real_daemon_ready_watchdog_wedged_loop_and_stopping(listener, tmp_path, mosquitto):
    lst = listener()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[gateway]
id = "gw-notify"
data_dir = "{tmp_path / 'data'}"
[uplink]
host = "127.0.0.1"
port = {mosquitto.port}
[uplink.tls]
enabled = false
[serial]
ports = []
[status]
port = 0
[discovery]
enabled = false
""")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000",
           "TEST_WEDGE_S": "3", "PYTHONPATH": str(ROOT)}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(cfg)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        lst.wait_for(lambda: lst.times("READY"), 60, "READY=1")
        assert any("gw-notify" in ln and "running" in ln for ln in out), "READY before the gateway ran:\n" + "".join(out)
        ready = lst.times("READY")
        assert len(ready) == 1
        assert lst.statuses()[0].startswith("gw-notify ")
        lst.wait_for(lambda: any("uplink connected" in s for s in lst.statuses()), 30, "STATUS: uplink connected")

        # WATCHDOG=1 periodically at half of WATCHDOG_USEC (0.5 s)
        lst.wait_for(lambda: len([t for t in lst.times("WATCHDOG") if t > ready[0]]) >= 6, 20, "6 keep-alives")
        pings = lst.times("WATCHDOG")[-6:]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert 0.35 <= sum(gaps) / len(gaps) <= 0.8, gaps

        # wedge the event loop for 3 s: no keep-alive in that time, then they resume
        wedged_at = time.monotonic()
        proc.send_signal(signal.SIGUSR1)
        lst.wait_for(lambda: any(t > wedged_at + 3.0 for t in lst.times("WATCHDOG")), 20, "keep-alive after the wedge")
        assert proc.poll() is None
        during = [t for t in lst.times("WATCHDOG") if wedged_at + 0.6 < t < wedged_at + 2.9]
        assert during == [], f"keep-alives while the loop was blocked: {[round(t - wedged_at, 2) for t in during]}"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(out)
        stopping = lst.times("STOPPING")
        assert len(stopping) == 1 and stopping[0] > wedged_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
