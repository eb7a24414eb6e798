"""The SCAIP uplink route: domain tracker + heartbeat schedule driven over the SIP UA.

One :class:`ScaipRoute` per configured centre. It owns no policy: what to do with a
reply is :mod:`gateway.domain.scaip`'s table, what the rest of the gateway does about a
delivered, escalated or refused event is the :class:`ScaipListener`'s (the forwarder's
SCAIP leg, gateway/domain/centre_leg.py; the daemon builds both, gateway/daemon/_routes.py). This
module only turns the tracker's actions into SIP attempts and SIP outcomes back into
tracker inputs, and runs one timer for the nearest deadline.

- :meth:`submit` is non-blocking and never waits for disk: once the centre's address is
  known, an alarm's MESSAGE is on the wire before :meth:`submit` returns, and its answer
  is handled in the receive callback of the response (``SipUserAgent.send_message_now``:
  no task, no loop hop); the first attempt of all, a TCP/TLS (re)connect and a digest
  challenge go through a send task. The listener
  is never called from inside :meth:`submit` (an encoding failure is reported on the
  next loop iteration), so the forwarder's state machine is never re-entered.
- Every attempt of one report uses the report's own Call-ID (CSeq grows), so a centre
  and SIPp see one SIP "call" per report.
- The ``<mrs>`` may come in the 2xx body or as a separate MESSAGE from the centre; both
  go to the same place. A reply with an unknown ``ref`` is counted and logged.
- Heartbeats (``mty=PI``) run on their own schedule and never queue behind reports; a
  heartbeat's answer (or failure) also tells the tracker whether the centre is reachable
  (after an outage, parked reports go out in submission order: docs/scaip.md).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from gateway.adapters.sip._errors import SipError
from gateway.adapters.sip._message import SipRequest, SipResponse
from gateway.adapters.sip._transport import Peer
from gateway.adapters.sip._ua import SipUserAgent
from gateway.domain.model import Event, EventCode
from gateway.domain.ports import Clock
from gateway.domain.scaip import (
    CONTENT_TYPE,
    DEFAULT_HBI_INTERVALS_S,
    EVENT_MAP,
    Action,
    Do,
    HeartbeatOutcome,
    HeartbeatSchedule,
    ReportKind,
    ReportTracker,
    RetryPolicy,
    ScaipError,
    ScaipListener,
    ScaipRejection,
    ScaipReply,
    build_request,
    decode_reply,
    encode_request,
    heartbeat_request,
)

log = logging.getLogger(__name__)

_ACCEPTED_TYPES = (CONTENT_TYPE, "application/xml", "text/xml")


@dataclass(frozen=True)
class ScaipSettings:
    """Per-route SCAIP settings (from ``[scaip]``: gateway/daemon/_routes.py ``build_centre``)."""

    cid: str
    heartbeat_interval_s: float = 300.0
    heartbeat_adjustable: bool = False
    hbi_intervals_s: Mapping[int, float] = field(default_factory=lambda: dict(DEFAULT_HBI_INTERVALS_S))
    heartbeats: bool = True
    reply_timeout_s: float = 10.0
    escalate_after_s: float = 30.0
    window: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    send_info: bool = False


class ScaipRoute:
    route = "scaip"

    def __init__(self, ua: SipUserAgent, settings: ScaipSettings, *, listener: ScaipListener, clock: Clock,
                 rng: random.Random | None = None, name: str = "scaip") -> None:
        self.ua = ua
        self.settings = settings
        self.listener = listener
        self.clock = clock
        self.route = name
        self.tracker = ReportTracker(reply_timeout_s=settings.reply_timeout_s,
                                     escalate_after_s=settings.escalate_after_s, window=settings.window,
                                     retry=settings.retry, rng=rng or random.Random())
        self.heartbeat = HeartbeatSchedule(interval_s=settings.heartbeat_interval_s,
                                           adjustable=settings.heartbeat_adjustable,
                                           hbi_intervals_s=settings.hbi_intervals_s)
        self.counters: collections.Counter[str] = collections.Counter()
        self._call_ids: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self.last_send_ok: bool | None = None
        self.last_snu: int | None = None          # the centre's latest status number for a report
        self._rx_at: float | None = None          # when the datagram being handled reached our socket

    # ---- lifecycle ----------------------------------------------------------------------

    async def async_start(self) -> None:
        self.ua.set_request_handler(self._on_sip_request)
        await self.ua.async_start()
        self._running = True
        if self.settings.heartbeats:
            self.heartbeat.start(self.clock.monotonic())
        self._reschedule()

    async def async_close(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ua.async_close()

    # ---- reports ------------------------------------------------------------------------

    def carries(self, code: EventCode) -> bool:
        return EVENT_MAP[code].kind is not ReportKind.INFO or self.settings.send_info

    def submit(self, event: Event) -> str | None:
        """Track and send ``event``. Returns its ``ref``, or None when this route does not
        carry it (an information event with ``send_info`` off) or cannot encode it (then
        the listener hears ``refused`` at once: never dropped silently)."""
        row = EVENT_MAP[event.code]
        if row.kind is ReportKind.INFO and not self.settings.send_info:
            self.counters["info_skipped"] += 1
            return None
        try:
            req = build_request(event, cid=self.settings.cid)
            body = encode_request(req)
        except (ScaipError, ValueError) as exc:
            self.counters["encode_failed"] += 1
            log.error("scaip: cannot encode %s %s: %s", event.code.type_name, event.event_id, exc)
            asyncio.get_running_loop().call_soon(self._tell, "scaip_refused", event, None, f"cannot encode: {exc}")
            return None
        if req.ref not in self._call_ids:
            self._call_ids[req.ref] = self.ua.new_call_id()
        self._run(self.tracker.submit(event, body, ref=req.ref, kind=row.kind, now=self.clock.monotonic()))
        return req.ref

    def _run(self, actions: list[Action]) -> None:
        for a in actions:
            if a.do is Do.SEND:
                self._send(a.ref, a.attempt, a.body)
            elif a.do is Do.DELIVERED:
                self._forget(a.ref)
                self._tell("scaip_delivered", a.event, a.reply, escalated=a.escalated, at=self._rx_at)
            elif a.do is Do.ESCALATE:
                log.warning("scaip: escalating %s %s (%s)", a.event.code.type_name, a.event.event_id, a.reason)
                self._tell("scaip_escalate", a.event, a.reason)
            elif a.do is Do.REFUSED:
                self._forget(a.ref)
                ste = f" ({a.reply.ste})" if a.reply is not None and a.reply.ste else ""
                log.error("scaip: centre refused %s %s ref %s: %s%s", a.event.code.type_name, a.event.event_id,
                          a.ref, a.reason, ste)
                self._tell("scaip_refused", a.event, a.reply, a.reason)
        self._reschedule()

    def _tell(self, what: str, *args: Any, **kwargs: Any) -> None:
        try:
            getattr(self.listener, what)(*args, **kwargs)
        except Exception:                # the listener's bug must not stop the route
            log.exception("scaip: listener %s failed", what)

    def _forget(self, ref: str) -> None:
        self._call_ids.pop(ref, None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, ref: str, attempt: int, body: bytes) -> None:
        """Put an attempt on the wire now if the UA can (the alarm path), else in a task."""
        call_id = self._call_ids.get(ref) or self.ua.new_call_id()
        if self._running and self.ua.send_message_now(
                body, call_id=call_id, on_final=lambda resp, err: self._final(ref, attempt, body, resp, err)):
            return
        self._spawn(self._attempt(ref, attempt, body))

    def _final(self, ref: str, attempt: int, body: bytes, resp: SipResponse | None, err: SipError | None) -> None:
        if resp is not None:                      # called from the receive path: when it arrived
            self._rx_at = self.clock.time() - self.ua.rx_wait_s
            try:
                self._final_now(ref, attempt, body, resp, err)
            finally:
                self._rx_at = None
        else:
            self._final_now(ref, attempt, body, resp, err)

    def _final_now(self, ref: str, attempt: int, body: bytes, resp: SipResponse | None,
                   err: SipError | None) -> None:
        if err is not None:
            self._attempt_failed(ref, attempt, err)
        elif resp is not None and resp.status in (401, 407):
            self._spawn(self._attempt(ref, attempt, body))      # challenge learnt: answer it in a task
        elif resp is not None:
            self._attempt_ok(ref, attempt, resp)

    async def _attempt(self, ref: str, attempt: int, body: bytes) -> None:
        call_id = self._call_ids.get(ref) or self.ua.new_call_id()
        try:
            resp = await self.ua.async_send_message(body, call_id=call_id)
        except SipError as exc:
            self._attempt_failed(ref, attempt, exc)
            return
        self._attempt_ok(ref, attempt, resp)

    def _attempt_failed(self, ref: str, attempt: int, exc: SipError) -> None:
        self.last_send_ok = False
        self.counters["sip_failed"] += 1
        log.warning("scaip: attempt %d of %s failed: %s", attempt, ref, exc)
        self._run(self.tracker.on_sip_result(ref, attempt, accepted=False, now=self.clock.monotonic(),
                                             detail=str(exc)))

    def _attempt_ok(self, ref: str, attempt: int, resp: SipResponse) -> None:
        self.last_send_ok = True
        reply = self._reply_in(resp)
        now = self.clock.monotonic()
        if reply is not None:
            self._on_reply(reply)
            if reply.ref == ref:
                return
        self._run(self.tracker.on_sip_result(ref, attempt, accepted=True, now=now))

    # ---- replies ------------------------------------------------------------------------

    def _reply_in(self, resp: SipResponse) -> ScaipReply | None:
        if not resp.body.strip():
            return None
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype and ctype not in _ACCEPTED_TYPES:
            self.counters["reply_bad_content_type"] += 1
            return None
        reply = decode_reply(resp.body)
        if isinstance(reply, ScaipRejection):
            self._count_rejection(reply, "2xx body")
            return None
        return reply

    def _count_rejection(self, rej: ScaipRejection, where: str) -> None:
        self.counters[f"reply_rejected_{rej.reason.value}"] += 1
        n = sum(v for k, v in self.counters.items() if k.startswith("reply_rejected_"))
        if n <= 5 or n % 100 == 0:
            log.warning("scaip: refused a reply in a %s (%s: %s), %d so far", where, rej.reason.value, rej.detail, n)

    def _on_sip_request(self, req: SipRequest, peer: Peer) -> int:
        """A MESSAGE from the centre: the separate ``<mrs>``."""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in _ACCEPTED_TYPES:
            self.counters["message_bad_content_type"] += 1
            return 415
        reply = decode_reply(req.body)
        if isinstance(reply, ScaipRejection):
            self._count_rejection(reply, f"MESSAGE from {peer[0]}:{peer[1]}")
            return 400
        self.counters["replies_by_message"] += 1
        self._rx_at = self.clock.time() - self.ua.rx_wait_s
        try:
            self._on_reply(reply)
        finally:
            self._rx_at = None
        return 200

    def _on_reply(self, reply: ScaipReply) -> None:
        now = self.clock.monotonic()
        if reply.ignored:
            self.counters["reply_fields_ignored"] += 1
            log.info("scaip: reply %s: ignored %s", reply.ref, "; ".join(reply.ignored))
        if self.heartbeat.owns(reply.ref):
            outcome = self.heartbeat.on_reply(reply, now)
            if outcome is HeartbeatOutcome.INTERVAL_CHANGED:
                log.info("scaip: centre set hbi %s: heartbeat every %g s", reply.hbi, self.heartbeat.interval_s)
            elif outcome is HeartbeatOutcome.REFUSED:
                log.error("scaip: centre refused our heartbeat (snu %d)", int(reply.snu))
            self._run(self.tracker.centre_answered(now))     # reachable: parked reports go out in order
            return
        before = self.tracker.counters["unknown_ref"]
        self.last_snu = int(reply.snu)
        self._run(self.tracker.on_reply(reply, now))
        if self.tracker.counters["unknown_ref"] > before:
            log.warning("scaip: reply for unknown ref %s (snu %d)", reply.ref, int(reply.snu))

    # ---- time ---------------------------------------------------------------------------

    def _reschedule(self) -> None:
        if not self._running:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        times = [t for t in (self.tracker.next_deadline(), self.heartbeat.next_due) if t is not None]
        if not times:
            return
        delay = max(0.0, min(times) - self.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.clock.monotonic()
        if self.settings.heartbeats and self.heartbeat.due(now):
            self._send_heartbeat(now)
        self._run(self.tracker.poll(now))

    def _send_heartbeat(self, now: float) -> None:
        ref = self.heartbeat.next_ref(self.clock.time())
        body = encode_request(heartbeat_request(cid=self.settings.cid, ref=ref,
                                                adjustable=self.settings.heartbeat_adjustable))
        self.heartbeat.sent(ref, now)
        self._spawn(self._heartbeat_attempt(ref, body))

    async def _heartbeat_attempt(self, ref: str, body: bytes) -> None:
        try:
            resp = await self.ua.async_send_message(body)
        except SipError as exc:
            self.last_send_ok = False
            self.heartbeat.failed(ref, self.clock.monotonic())
            self.tracker.centre_unreachable()
            log.warning("scaip: heartbeat %s failed: %s", ref, exc)
            return
        self.last_send_ok = True
        reply = self._reply_in(resp)
        if reply is not None:
            self._on_reply(reply)
        else:
            self._run(self.tracker.centre_answered(self.clock.monotonic()))

    # ---- status -------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """The centre answered a heartbeat recently (phase 2: the route's ``connected``)."""
        return self.heartbeat.alive(self.clock.monotonic())

    def status(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        return {"route": self.route, "transport": self.ua.transport.value, "centre": str(self.ua.target),
                "proxy": str(self.ua.proxy) if self.ua.proxy else None, "healthy": self.healthy,
                "last_send_ok": self.last_send_ok, "last_snu": self.last_snu, "open": self.tracker.open_count,
                "reports": [asdict(v) for v in self.tracker.views(now)],
                "heartbeat": self.heartbeat.status(now),
                "counters": {**dict(self.tracker.counters), **dict(self.counters)},
                "sip": {**dict(self.ua.stats), **{f"rejected_{k}": v for k, v in self.ua.rejects.items()}},
                "auth": self.ua.auth_state}
