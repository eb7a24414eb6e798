"""The service manager's notification protocol (sd_notify(3)), standard library only.

systemd starts a ``Type=notify`` service with ``$NOTIFY_SOCKET``: the path of a datagram
socket, or ``@name`` for a socket in the Linux abstract namespace. The service sends
newline-separated ``KEY=VALUE`` assignments in one datagram each:

``READY=1``        start-up is complete (the unit becomes ``active``);
``WATCHDOG=1``     keep-alive; with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` and
                   kills the service when none arrives within that time (send at half);
``STATUS=…``       one line shown by ``systemctl status``;
``STOPPING=1``     shutdown has begun.

Invariants: without ``$NOTIFY_SOCKET`` every call is a no-op (run by hand, in tests,
under another supervisor); a send never blocks the caller (non-blocking socket: a full
receiver queue drops the message) and never raises (a lost notification is logged — the
daemon must not die because the service manager went away). ``$WATCHDOG_PID``, when set
to another process, means the watchdog is not ours. Which health condition gates
``WATCHDOG=1`` is the daemon's policy (gateway/daemon/_service.py), not this module's.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
from typing import Mapping

log = logging.getLogger(__name__)

MAX_STATUS_CHARS = 200      # one line in ``systemctl status``; longer text is cut


def _address(value: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address: ``@name`` is the abstract ``\\0name``."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class SystemdNotifier:
    """Sends notifications to ``address`` (None: disabled, every call a no-op).

    ``watchdog_usec`` is the service's ``WatchdogSec`` in microseconds (None: no watchdog).
    Build it from the environment with :meth:`from_environ`.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._failing = False
        self.sent = 0
        self.dropped = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> "SystemdNotifier":
        env = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        if raw:
            try:
                usec = int(raw)
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not a whole number of microseconds", raw)
        owner = env.get("WATCHDOG_PID", "")
        if usec and owner:
            try:
                if int(owner) != pid:
                    usec = None      # the watchdog belongs to another process (sd_watchdog_enabled(3))
            except ValueError:
                log.warning("ignoring WATCHDOG_PID=%r: not a process id", owner)
        return cls(address, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half of ``WatchdogSec`` (None: no watchdog)."""
        if self.address is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000

    # ---------------------------------------------------------------- messages
    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *self._status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(*self._status(text))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *self._status(status))

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True when handed to the socket."""
        if self.address is None or not assignments:
            return False
        data = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, _address(self.address))
        except OSError as exc:
            self.dropped += 1
            if not self._failing:   # once per failing spell, not every watchdog period
                self._failing = True
                reason = "receiver busy" if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) else str(exc)
                log.warning("service manager notification to %s failed (%s); the daemon goes on",
                            self.address, reason)
            return False
        if self._failing:
            log.info("service manager notifications to %s work again", self.address)
            self._failing = False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if not text:
            return ()
        line = " ".join(text.split())     # one line: no newline may split the assignment
        return ("STATUS=" + line[:MAX_STATUS_CHARS],)
