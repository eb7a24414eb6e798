"""A private D-Bus daemon standing in for the system bus in tests.

The daemon runs with a session-like configuration (anyone may own any name) on a unix
socket in a short temporary directory. Tests point ``DBUS_SYSTEM_BUS_ADDRESS`` at it so
that bleak's BlueZ backend, which always connects to the *system* bus, talks to the
fake BlueZ service instead of the machine's bluetoothd.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = (
    "dbus-daemon not found: the BLE transport tests run bleak's real BlueZ backend "
    "against a fake BlueZ on a private D-Bus daemon. Install it with "
    "`apt-get install -y dbus-daemon` (Debian 12; the `dbus` package pulls it in) "
    "or run scripts/bootstrap.sh as root."
)

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class DbusDaemonMissing(RuntimeError):
    """The dbus-daemon binary is not installed."""


class DbusDaemonFailed(RuntimeError):
    """dbus-daemon was found but did not start; ``stderr`` holds its complaint."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(f"{message}: {stderr.strip()}" if stderr else message)
        self.stderr = stderr


def find_dbus_daemon(
    search_path: str | None = None,
    fallbacks: tuple[str, ...] = ("/usr/bin/dbus-daemon", "/bin/dbus-daemon"),
) -> str:
    """Path of dbus-daemon (``$PATH`` first); DbusDaemonMissing says how to install it."""
    exe = shutil.which("dbus-daemon", path=search_path) or next(
        (p for p in fallbacks if os.path.exists(p)), None
    )
    if exe is None:
        raise DbusDaemonMissing(INSTALL_HINT)
    return exe


class PrivateBus:
    """``with PrivateBus() as bus: bus.address`` — a dbus-daemon killed on exit."""

    def __init__(self, *, start_timeout_s: float = 10.0) -> None:
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self.address = ""

    def start(self) -> "PrivateBus":
        exe = find_dbus_daemon()
        # unix socket paths are limited to 107 bytes: keep the directory short
        self._dir = Path(tempfile.mkdtemp(prefix="wt-dbus-", dir="/tmp"))
        sock = self._dir / "bus"
        conf = self._dir / "bus.conf"
        conf.write_text(_CONFIG.format(socket=sock))
        self._proc = subprocess.Popen(
            [exe, f"--config-file={conf}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        # dbus-daemon prints its address once the socket listens
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        ready = sel.select(self._start_timeout_s)
        sel.close()
        line = self._proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            proc, self._proc = self._proc, None
            proc.kill()
            _, err = proc.communicate()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise DbusDaemonFailed("dbus-daemon did not print its address", err.decode(errors="replace"))
        self.address = line
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "PrivateBus":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
