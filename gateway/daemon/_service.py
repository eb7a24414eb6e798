"""The daemon as a systemd service: ``READY=1`` once a gateway runs, ``WATCHDOG=1`` only
while it is healthy, a one-line ``STATUS=``, ``STOPPING=1`` on shutdown
(gateway/adapters/systemd.py sends them; packaging/wt-gateway.service sets
``Type=notify``, ``WatchdogSec=30s``, ``NotifyAccess=main``).

**Healthy** means both:

1. *The event loop runs.* The keep-alive is sent by a task on the loop itself, every half
   ``WatchdogSec``: a loop wedged by a blocking call or a deadlock sends nothing, and
   systemd kills and restarts the daemon after ``WatchdogSec``.
2. *The journal writer answers.* Each period a no-op probe is queued on the writer
   thread (behind whatever it has to commit, so it needs no disk write of its own) and
   its answer comes back through the loop. While a probe has been waiting longer than
   ``writer_stall_s`` (:data:`WRITER_STALL_S`, 120 s), or the writer is closed for that
   long (a re-bootstrap for a fleet configuration push closes it for a few seconds), the
   keep-alive is withheld: a dead or hung writer thread means no event is stored and no
   device is ACKed. The bound is far above a slow SD card's batch commit (~50 ms–1 s)
   so that a long but legitimate writer operation does not get the daemon killed.

An unreachable broker is *not* unhealthy: the gateway works offline by design (alarms wait
in the journal, rules run, ``uplink_lost`` is raised); a restart would not bring the broker
back. Neither is a full disk (the journal's degraded path keeps alarms flowing).

Before the first gateway runs nothing is sent: systemd arms the watchdog only once the
service reported ``READY=1``; until then ``TimeoutStartSec`` applies.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.adapters.journal import JournalClosed
from gateway.adapters.systemd import SystemdNotifier

if TYPE_CHECKING:
    from gateway.daemon._runtime import GatewayRuntime

log = logging.getLogger("gateway.daemon")

WRITER_STALL_S = 120.0       # a journal writer probe unanswered for longer → keep-alive withheld
STATUS_INTERVAL_S = 30.0     # STATUS refresh when systemd runs no watchdog


class ServiceWatchdog:
    """Tells the service manager how the daemon is (see the module docstring).

    ``on_ready(rt)`` is the main loop's ``ready`` callback (called for every gateway that
    runs, also after a re-bootstrap); :meth:`async_run` is the periodic task;
    :meth:`stopping` is called when shutdown begins."""

    def __init__(self, notifier: SystemdNotifier, *, loop: asyncio.AbstractEventLoop,
                 writer_stall_s: float = WRITER_STALL_S) -> None:
        self.notifier = notifier
        self._loop = loop
        self.writer_stall_s = writer_stall_s
        self._rt: GatewayRuntime | None = None
        self._ready_sent = False
        self._probe_since: float | None = None     # loop time the outstanding probe (or closed writer) began
        self._probe_seq = 0
        self._withheld = False
        self._last_status = ""
        self.pings = 0

    @property
    def interval_s(self) -> float:
        return self.notifier.watchdog_interval_s or STATUS_INTERVAL_S

    # ---------------------------------------------------------------- main loop hooks
    def on_ready(self, rt: "GatewayRuntime") -> None:
        self._rt = rt
        self._probe_since = None
        self._probe_seq += 1                # an answer from the previous gateway's writer no longer counts
        text = self._status_text()
        self._last_status = text
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(text)
            log.info("service manager told: ready (%s)", text)
        else:
            self.notifier.status(text)

    def stopping(self) -> None:
        self.notifier.stopping(f"{self._gateway_id()} stopping")

    async def async_run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.tick()
            except Exception:  # the keep-alive task must not die of a status glitch
                log.exception("service watchdog tick failed")

    # ---------------------------------------------------------------- one period
    def tick(self) -> None:
        if self._rt is None:
            return                          # not ready yet: the watchdog is not armed
        self._probe()
        problem = self.problem()
        if problem is None:
            if self.notifier.watchdog_interval_s is not None:
                self.notifier.watchdog()
                self.pings += 1
            if self._withheld:
                log.warning("service watchdog: healthy again, keep-alive resumed")
                self._withheld = False
            text = self._status_text()
        else:
            if not self._withheld:
                log.error("service watchdog: %s; keep-alive withheld (systemd restarts the daemon "
                          "after WatchdogSec)", problem)
                self._withheld = True
            text = f"UNHEALTHY: {problem}"
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    def problem(self) -> str | None:
        """None when healthy, else what is wrong (the event loop is running: we are on it)."""
        if self._probe_since is None:
            return None
        waited = self._loop.time() - self._probe_since
        if waited > self.writer_stall_s:
            return f"the journal writer has not answered for {waited:.0f} s (limit {self.writer_stall_s:.0f} s)"
        return None

    def _probe(self) -> None:
        if self._probe_since is not None:
            return                          # one probe at a time; the outstanding one is the measure
        rt = self._rt
        assert rt is not None
        self._probe_seq += 1
        seq = self._probe_seq
        self._probe_since = self._loop.time()

        def answered(_: Any = None) -> None:
            if seq == self._probe_seq:
                self._probe_since = None
        try:
            rt.writer.call(lambda journal: None, answered, on_error=answered)
        except JournalClosed:
            pass    # stopping or re-bootstrapping: counts as waiting until on_ready(new gateway)

    def _gateway_id(self) -> str:
        return self._rt.cfg.gateway.id if self._rt is not None else "gateway"

    def _status_text(self) -> str:
        rt = self._rt
        if rt is None:
            return f"gateway {__version__} starting"
        uplink = "uplink connected" if rt.uplink_connected() else "uplink down (working offline)"
        return (f"{rt.cfg.gateway.id} {__version__} running; {uplink}; "
                f"{len(rt.cfg.devices)} device(s) configured")
