"""The health check a new gateway version must pass before its update commits
(docs/upgrades.md "Gateway A/B"): the uplink is connected, the journal opens, the status
endpoint answers for this gateway, and a ``wt.health/1`` with the new version is PUBACKed
by the broker (:func:`async_publish_acked`). Split from gateway/daemon/_upgrades.py, which
runs it on trial after a switch.
"""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Callable

from contracts.payloads import dumps
from contracts.topics import Topics
from gateway.adapters.status import StatusError, fetch_status, health_payload
from gateway.daemon._routes import Routes
from gateway.daemon._status import StatusEndpoint
from gateway.domain.ports import Clock
from gateway.domain.uplink_errors import UplinkError
from gateway.domain.uplink_ports import Publisher

class UpdateHealthCheck:
    """Is the updated gateway healthy? Uplink connected, journal opens, status endpoint
    answers for this gateway, and a ``wt.health/1`` with this version was acknowledged
    (PUBACK). ``uplink_connected`` is public so a test can cut it."""

    def __init__(self, *, gateway_id: str, uplink_connected: Callable[[], bool], journal_path: Path,
                 status: StatusEndpoint | None, clock: Clock, routes: Routes | None = None,
                 snapshot: Callable[[], dict[str, Any]] | None = None) -> None:
        self.gateway_id = gateway_id
        self.uplink_connected = uplink_connected
        self._journal_path = journal_path
        self._status = status
        self._clock = clock
        self._routes = routes
        self._snapshot = snapshot
        self._topic = Topics(gateway_id).health

    async def async_check(self, deadline_s: float) -> str | None:
        """None if healthy within ``deadline_s``, else what failed last."""
        t_end = self._clock.monotonic() + deadline_s
        while True:
            problem = await self._check_once()
            if problem is None or self._clock.monotonic() >= t_end:
                return problem
            await asyncio.sleep(min(0.5, max(0.05, t_end - self._clock.monotonic())))

    async def async_publish_health(self, timeout_s: float) -> str | None:
        """Publish ``wt.health/1`` now and wait for the broker's PUBACK; None when acknowledged."""
        if self._routes is None or self._snapshot is None:
            return None                    # nothing to publish with (a test wiring): the checks above decide
        payload = dumps(health_payload(self._snapshot()))
        problem = await async_publish_acked(self._routes, self._topic, payload, timeout_s)
        return None if problem is None else f"health not acknowledged: {problem}"

    async def _check_once(self) -> str | None:
        if not self.uplink_connected():
            return "uplink not connected"
        try:
            def probe() -> None:
                conn = sqlite3.connect(f"file:{self._journal_path}?mode=ro", uri=True, timeout=5)
                try:
                    conn.execute("SELECT count(*) FROM events").fetchone()
                finally:
                    conn.close()
            await asyncio.to_thread(probe)
        except sqlite3.Error as exc:
            return f"journal does not open: {exc}"
        if self._status is not None:
            url = self._status.url()
            if url is None:
                return "status endpoint not running"
            try:
                snap = await asyncio.to_thread(fetch_status, url, 3.0)
            except StatusError as exc:
                return f"status endpoint does not answer: {exc}"
            if snap.get("gateway") != self.gateway_id:
                return "status endpoint answers for another gateway"
        return None


async def async_publish_acked(routes: Routes, topic: str, payload: bytes, timeout_s: float) -> str | None:
    """QoS 1 on the first connected command route; None once PUBACKed, else the problem."""
    loop = asyncio.get_running_loop()
    route: Publisher | None = next((r for r in routes.command_routes if r.connected), None)
    if route is None:
        return "no uplink connected"
    fut: asyncio.Future[bool] = loop.create_future()

    def on_puback(ok: bool, _at: float) -> None:
        def done() -> None:
            if not fut.done():
                fut.set_result(ok)
        loop.call_soon_threadsafe(done)
    try:
        route.publish(topic, payload, qos=1, on_puback=on_puback)
    except UplinkError as exc:
        return str(exc)
    try:
        ok = await asyncio.wait_for(fut, timeout_s)
    except asyncio.TimeoutError:
        return f"no PUBACK within {timeout_s:g} s"
    return None if ok else "the broker refused it"
