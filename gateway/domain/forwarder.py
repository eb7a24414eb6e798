"""Domain forwarder: journal + MQTT routes -> "an alarm arrives once, fast, and never gets lost".

Runs on the daemon's event loop (no paho import; routes are :class:`Publisher` ports). It
composes the alarm lifecycle (:mod:`gateway.domain.alarms`: one :class:`Alarm` per alarm,
its delivery and journal states as tables) and the telemetry replay pump
(:mod:`gateway.domain.replay`).

- Alarms are published at once on the first connected route (alarm lane, primary, else
  fallback), *while* the journal write proceeds on the writer thread; they never queue
  behind telemetry or the backlog, and never wait for an fsync.
- Telemetry goes to the journal first; once stored it is published live if there is no
  backlog, otherwise the replay pump sends it in journal order, at most ``replay_window``
  un-PUBACKed (optionally capped at ``replay_rate_per_s``), so an alarm never has more
  than a window of small messages in front of it on the socket.
- PUBACK marks an event delivered (coalesced journal writes).
- Platform acks (``wt.ack/1`` on ``wt/v1/gw/{gw}/ack``): an alarm without a
  ``received`` ack within ``ack_timeout_s`` is escalated: re-sent (same event_id,
  attempt+1) on every connected route (primary and fallback), the resident is signalled
  locally (:class:`LocalSignal`) and a technical alarm ``alarm_unacknowledged`` is raised;
  the re-send repeats every ``resend_interval_s`` until acknowledged.
- A device's alarm is ACKed to the device (``on_stored``) only once the alarm is in
  someone's custody: stored in the journal, PUBACKed by a broker or acked by the platform.
- On a (re)connect, alarms stranded un-PUBACKed on a route that is still down are re-sent
  first, then the held ones, in submission order (the platform's first arrivals stay in
  the order the alarms happened).

A SCAIP alarm receiving centre (docs/scaip.md) is one more route for alarms, given as
``centre`` (a factory: the route reports back to this forwarder, its
:class:`~gateway.domain.scaip.ScaipListener`). With ``centre_first`` (``[scaip] role =
"primary"``) an alarm goes to the centre alone; otherwise to the first connected MQTT
route, and to the centre when no broker is up. Either way the centre gets it on an
escalation. The SCAIP route re-sends (same ``ref``) until the centre answers ``snu`` 0,
which acknowledges the alarm exactly like the platform's ``received`` ack (journal,
FEEDBACK, local signal off); its escalation (no ``snu`` 0 in time, or ``snu`` 5) is the
forwarder's escalation: every MQTT route, the local signal, ``alarm_unacknowledged``; a
refusal (``snu`` 1/2/3/7) also raises ``alarm_unacknowledged`` (``data.reason``
``scaip_refused``, ``data.snu``) on the other routes — never silently dropped. The alarm's
leg at the centre is a table of its own (:class:`~gateway.domain.alarms.CentreState`).
Follow-ups (cancels, restorals) reach the centre in journal order through
:class:`~gateway.domain.scaip.CentreFeed`. Without MQTT (``primary=None``) the centre is
the only route and the feed owns the journal's delivered marks.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

from gateway.domain.alarms import (Alarm, AlarmEvent, AlarmRecord, AlarmState, CentreEvent, CentreState, StoreEvent,
                                   StoreState, StoredCallback)
from gateway.domain.event_ids import GatewayEventIds
from gateway.domain.journal_types import AppendOutcome, AppendResult, Recovery
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.payload import Ack, AckStatus, Rejected, Topics, decode_ack, encode_event
from gateway.domain.ports import Clock
from gateway.domain.replay import ReplayPump
from gateway.domain.scaip import CentreFeed, CentreRoute, ScaipListener, ScaipReply
from gateway.domain.uplink_errors import NotConnected, UplinkError
from gateway.domain.uplink_ports import JournalFront, LocalSignal, Publisher

__all__ = ["AlarmRecord", "CentreFactory", "Forwarder", "JOURNAL_FAULT_CODE", "NoRoute", "UplinkStatus"]

log = logging.getLogger(__name__)

PlatformAckHook = Callable[[str, AckStatus, "Event | None"], None]
EscalationHook = Callable[[Event, int], None]
CentreFactory = Callable[[ScaipListener], CentreRoute]

#: Code of the technical alarm raised when the journal cannot store (disk full / I/O
#: error); ``data.reason`` = ``write_failed``. Raised once until an alarm is stored again.
JOURNAL_FAULT_CODE = EventCode.JOURNAL_FAULT

#: Alarms whose journal write failed are submitted again this often (seconds).
STORE_RETRY_S = 5.0
#: Acknowledged alarm ids remembered (a device's late repeat is not published again).
RECENT_ALARMS = 1024


@dataclass(frozen=True)
class UplinkStatus:
    connected: bool
    route: str | None
    routes: dict[str, bool]
    backlog: int
    inflight: int
    alarms_unacknowledged: int
    alarms_held: int
    shed: int
    journal_total: int
    last_alarms: tuple[AlarmRecord, ...] = ()
    scaip: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_alarms"] = [asdict(a) for a in self.last_alarms]
        return d


class NoRoute:
    """The MQTT route of a gateway without MQTT (``uplink.enabled = false``): never connected,
    takes nothing. Given to whatever needs *a* primary route (health, replies, the pump)."""

    route = "none"
    connected = False
    receive_maximum = 65535

    def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        raise NotConnected("MQTT is off on this gateway (uplink.enabled = false)", route=self.route)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        pass

    def add_connection_listener(self, listener: Callable[[bool], None]) -> None:
        pass


class Forwarder:
    """EventSink of the gateway (see module doc). All keyword arguments:

    - ``gateway_id``: topic and event-id prefix.
    - ``journal``: :class:`JournalFront` (``gateway.adapters.journal.JournalWriter``).
    - ``primary`` / ``fallback`` (optional): :class:`Publisher` routes; ``primary=None``
      (or a :class:`NoRoute`): no MQTT at all, the SCAIP ``centre`` is the only route.
    - ``alarm_lane`` (optional): a separate connection to the primary broker used for
      alarms first (``gateway.adapters.mqtt.alarm_lane_link``); alarms fall back to
      ``primary`` and then ``fallback`` when it is down.
    - ``clock``: injected clock.
    - ``local_signal``: resident signal (default :class:`gateway.domain.signal.LoggingLocalSignal`).
    - ``ack_timeout_s`` (30): platform ``received`` ack expected within this after the
      first publication; ``resend_interval_s`` (default = ack_timeout_s) between re-sends.
    - ``replay_window`` (64): un-PUBACKed telemetry publications at most;
      ``replay_batch`` (256): rows per journal read; ``replay_rate_per_s`` (500; 0 = no
      cap): the replay's share of the CPU is bounded so alarms stay fast while a backlog
      drains (measured on a shared 2-core box: alarm p99 5-7 ms at 500/s vs 17-19 ms
      uncapped, bench/alarm_latency.py).
    - ``puback_timeout_s`` (60): a telemetry publication without PUBACK this long is re-read.
    - ``on_platform_ack(event_id, status, event | None)``: e.g. send FEEDBACK to the device.
    - ``on_alarm_escalated(event, step)``: e.g. FEEDBACK state 3 to the device.
    - ``journal_recovery``: ``SqliteJournal.recovery``; raises ``journal_recovered`` on start.
    - ``tick_s`` (0.2): period of :meth:`poll` in :meth:`async_run`.
    - ``last_alarms`` (20): alarm records kept for :meth:`status`.
    - ``centre``: factory of the SCAIP route (given this forwarder as its listener);
      ``centre_first``: alarms to the centre before MQTT (``[scaip] role = "primary"``);
      ``centre_window`` (8): follow-ups open at the centre at once.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        journal: JournalFront,
        primary: Publisher | None,
        clock: Clock,
        fallback: Publisher | None = None,
        alarm_lane: Publisher | None = None,
        local_signal: LocalSignal | None = None,
        ack_timeout_s: float = 30.0,
        resend_interval_s: float | None = None,
        replay_window: int = 64,
        replay_batch: int = 256,
        replay_rate_per_s: float = 500.0,
        puback_timeout_s: float = 60.0,
        on_platform_ack: PlatformAckHook | None = None,
        on_alarm_escalated: EscalationHook | None = None,
        journal_recovery: Recovery | None = None,
        tick_s: float = 0.2,
        last_alarms: int = 20,
        centre: CentreFactory | None = None,
        centre_first: bool = True,
        centre_window: int = 8,
    ) -> None:
        from gateway.domain.signal import LoggingLocalSignal

        if ack_timeout_s <= 0 or replay_window < 1 or replay_batch < 1:
            raise UplinkError("ack_timeout_s must be > 0, replay_window and replay_batch at least 1")
        self.gateway_id = gateway_id
        self.topics = Topics(gateway_id)
        self._journal = journal
        self.event_ids = GatewayEventIds(gateway_id, journal)   # shared with the rule engine (bootstrap)
        self._primary: Publisher = primary if primary is not None else NoRoute()
        self._fallback = fallback
        self._lane = alarm_lane
        self._clock = clock
        self._signal = local_signal or LoggingLocalSignal()
        self.ack_timeout_s = ack_timeout_s
        self.resend_interval_s = resend_interval_s or ack_timeout_s
        self.puback_timeout_s = puback_timeout_s
        self._on_platform_ack = on_platform_ack
        self._on_escalated = on_alarm_escalated
        self._recovery = journal_recovery
        self.tick_s = tick_s
        self.stats: collections.Counter = collections.Counter()
        self._alarms: dict[str, Alarm] = {}                 # in submission order (dicts keep it)
        self._recent: collections.OrderedDict[str, Event] = collections.OrderedDict()
        self._records: collections.deque[AlarmRecord] = collections.deque(maxlen=last_alarms)
        self._pump = ReplayPump(gateway_id=gateway_id, topic=self.topics.event, journal=journal, primary=self._primary,
                                clock=clock, window=replay_window, batch=replay_batch,
                                rate_per_s=replay_rate_per_s, tick_s=tick_s, stats=self.stats,
                                on_alarm_row=self._alarm_row)
        self._started = False
        self._journal_fault_raised = False
        self._last_store_retry = 0.0
        self.centre: CentreRoute | None = centre(self) if centre is not None else None
        self._centre_first = centre_first
        self._feed = (CentreFeed(journal=journal, route=self.centre, window=centre_window,  # type: ignore[arg-type]
                                 owns_delivery=not self._routes(), stats=self.stats)
                      if self.centre is not None else None)

    @property
    def replay_window(self) -> int:
        return self._pump.window

    @property
    def replay_batch(self) -> int:
        return self._pump.batch

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Register ack subscriptions and connection listeners, restore pending alarms."""
        if self._started:
            return
        self._started = True
        for route in self._routes():        # the alarm lane does not subscribe: one ack, once
            route.subscribe(self.topics.ack, self.on_ack_message)
        for route in self._alarm_routes():
            route.add_connection_listener(lambda up, r=route: self._on_connection(r, up))
        self._journal.call(lambda j: j.pending_alarms(), self._restore_pending)
        if self._feed is not None:
            self._feed.start()
        if self._recovery is not None:
            self.raise_technical(EventCode.JOURNAL_RECOVERED, {
                "reason": "corrupt_journal_quarantined", "detail": self._recovery.reason,
                "quarantined_to": str(self._recovery.quarantined_to)})
        self._pump.kick()

    async def async_run(self) -> None:
        """Start, then :meth:`poll` every ``tick_s`` until cancelled."""
        self.start()
        while True:
            self.poll()
            await asyncio.sleep(self.tick_s)

    def flush(self) -> None:
        """Queue the coalesced delivered-marks now (also done by :meth:`poll`)."""
        self._pump.flush()
        if self._feed is not None:
            self._feed.flush(self._clock.monotonic())

    def poll(self) -> None:
        """Periodic work: ack deadlines, held alarms, journal retries, puback timeouts, marks, pump."""
        now = self._clock.monotonic()
        for a in list(self._alarms.values()):
            if a.state is not AlarmState.ACKNOWLEDGED and a.deadline is not None and now >= a.deadline:
                self._escalate(a, now)
            elif a.state is AlarmState.HELD:
                self._send_alarm(a)
        if now - self._last_store_retry >= STORE_RETRY_S:
            self._last_store_retry = now
            for a in self._alarms.values():
                if a.store is StoreState.FAILED:
                    self._journal.submit(a.event, lambda e, r, a=a: self._alarm_stored(a, r, retry=True))
        self._pump.expire(now, self.puback_timeout_s)
        self._pump.flush()
        self._pump.drain()
        if self._feed is not None:
            self._feed.poll(now)

    # ---- EventSink --------------------------------------------------------------------
    def submit(self, event: Event, on_stored: StoredCallback | None = None) -> None:
        self._submit(event, on_stored)

    def _submit(self, event: Event, on_stored: StoredCallback | None = None,
                centre: CentreState = CentreState.NONE) -> None:
        if event.is_alarm:
            if event.event_id in self._alarms or event.event_id in self._recent:
                # the device repeated an alarm we are handling or the platform already
                # acknowledged: no new publication, only the journal's duplicate check
                self._journal.submit(event, lambda e, r: self._repeat_stored(e, r, on_stored))
                return
            a = Alarm(event, on_stored, centre=centre)
            self._track(a)
            self._send_alarm(a)
            self._journal.submit(event, lambda e, r: self._alarm_stored(a, r))
        else:
            self._journal.submit(event, lambda e, r: self._telemetry_stored(e, r, on_stored))

    def _telemetry_stored(self, e: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        self._pump.telemetry_stored(e, r, on_stored)
        if self._feed is not None:
            self._feed.stored(e, r)

    def raise_technical(self, code: EventCode, data: dict[str, Any] | None = None, *,
                        avoid_centre: bool = False) -> None:
        """Raise a gateway technical alarm (id ``<gw>-g<counter:010d>``, time-based if no counter
        can be reserved: gateway/domain/event_ids.py), submitted like any alarm.
        ``avoid_centre``: it is about the SCAIP centre, so only the MQTT routes carry it
        (unless there are none)."""
        # The counter comes from the block already reserved (memory): a technical alarm is
        # published at once, not after the journal writer's queue and a commit's fsync.
        now = self._clock.time()
        leg = CentreState.SKIPPED if avoid_centre and self._routes() else CentreState.NONE
        self._submit(Event(event_id=self.event_ids.next(now), device_id=self.gateway_id, code=code, occurred_at=now,
                           received_at=now, role=Role.GATEWAY, data=dict(data or {})), centre=leg)

    # ---- alarms: publication -------------------------------------------------------------
    def _routes(self) -> list[Publisher]:
        return [p for p in (self._primary, self._fallback) if p is not None and not isinstance(p, NoRoute)]

    def _alarm_routes(self) -> list[Publisher]:
        return [p for p in (self._lane, self._primary, self._fallback) if p is not None and not isinstance(p, NoRoute)]

    def _track(self, a: Alarm) -> None:
        self._alarms[a.event.event_id] = a
        self._records.append(a.record)

    def _send_alarm(self, a: Alarm, *, all_routes: bool = False) -> bool:
        """Publish the next copy: on the first connected route, or (escalation) on every
        connected route label (the lane and the primary are the same broker). The SCAIP
        centre takes it first (``centre_first``), else when no broker is up, and on every
        escalation — once: its route re-sends by itself until the centre answers."""
        up = [p for p in self._alarm_routes() if p.connected]
        if all_routes:
            seen: set[str] = set()
            up = [p for p in up if not (p.route in seen or seen.add(p.route))]  # type: ignore[func-returns-value]
        else:
            up = up[:1]
        to_centre = (self.centre is not None and a.centre is CentreState.NONE
                     and (all_routes or self._centre_first or not up))
        if to_centre and self._centre_first and not all_routes:
            up = []
        if not up and not to_centre:
            a.fire(AlarmEvent.NO_ROUTE)
            return False
        a.attempt += 1
        a.fire(AlarmEvent.PUBLISHED)     # before publish(): a PUBACK may come back inside it
        sent = False
        if to_centre:
            assert self.centre is not None
            a.centre_fire(CentreEvent.HANDED)
            self.centre.submit(a.event)      # non-blocking; the route reports back (never from inside)
            self.stats["centre_submissions"] += 1
            a.record.route = self.centre.route
            sent = True
        mqtt_sent = False
        for p in up:
            payload = encode_event(a.event, gateway_id=self.gateway_id, attempt=a.attempt, route=p.route,
                                   sent_at=self._clock.time())
            try:
                p.publish(self.topics.alarm, payload, qos=1, user_properties={"event_id": a.event.event_id},
                          on_puback=lambda ok, at, a=a, r=p.route: self._alarm_puback(a, r, ok, at),
                          urgent=True)
            except NotConnected:
                continue
            except UplinkError as exc:
                log.error("alarm %s not published on %s: %s", a.event.event_id, p.route, exc)
                continue
            sent = mqtt_sent = True
            a.record.route = p.route
            a.sent_on = p
        if not sent:
            a.attempt -= 1
            a.fire(AlarmEvent.REFUSED)
            return False
        a.record.attempts = a.attempt
        if a.deadline is None and mqtt_sent:     # the centre's own timer escalates a copy it carries
            a.deadline = self._clock.monotonic() + self.ack_timeout_s
        self.stats["alarm_publications"] += 1
        return True

    def _alarm_puback(self, a: Alarm, route: str, ok: bool, at: float) -> None:
        if not ok:
            log.error("broker refused alarm %s on %s; re-sending", a.event.event_id, route)
            a.fire(AlarmEvent.REFUSED)
            return
        a.fire(AlarmEvent.PUBACK)
        if a.record.latency_ms is None:
            a.record.latency_ms = round((at - a.event.received_at) * 1000.0, 3)
        self._pump.delivered.append(a.event.event_id)
        if a.store is StoreState.FAILED:
            a.answer_device(True)         # not on disk, but safe at the broker
        self._maybe_forget(a)

    def _escalate(self, a: Alarm, now: float, cause: dict[str, Any] | None = None) -> None:
        """No ack in time (``cause`` None: the platform's; else what the SCAIP centre did)."""
        a.fire(AlarmEvent.ACK_TIMEOUT)
        a.escalations += 1
        a.record.escalations = a.escalations
        a.deadline = now + self.resend_interval_s
        self.stats["escalations"] += 1
        log.warning("alarm %s not acknowledged by the %s (step %d): re-sending on all routes",
                    a.event.event_id, "platform" if cause is None else f"centre: {cause.get('reason')}",
                    a.escalations)
        self._send_alarm(a, all_routes=True)
        if a.escalations == 1:
            self._signal.alarm_unacknowledged(a.event)
            if a.event.code is not EventCode.ALARM_UNACKNOWLEDGED:
                self.raise_technical(EventCode.ALARM_UNACKNOWLEDGED, {
                    "event_id": a.event.event_id, "device": a.event.device_id, "type": a.event.code.type_name,
                    **(cause or {})}, avoid_centre=cause is not None)
        if self._on_escalated is not None:
            self._on_escalated(a.event, a.escalations)

    def _on_connection(self, route: Publisher, up: bool) -> None:
        log.info("uplink route %s %s", route.route, "connected" if up else "lost")
        if up:
            # In submission order: alarms held while no route was up, and alarms whose only
            # copy sits unacknowledged in the session of a route that is still down (e.g. the
            # alarm lane died mid-publish and the primary came back first). Re-sending the
            # stranded ones here keeps the platform's arrival order equal to the order the
            # alarms happened; the dead route's session copy arrives later as a duplicate
            # event_id, which the platform drops.
            for a in list(self._alarms.values()):
                if a.state is AlarmState.HELD or (a.stranded and a.sent_on is not route):
                    self._send_alarm(a)
            self._pump.kick()
            self._pump.drain()

    # ---- alarms: journal -------------------------------------------------------------------
    def _alarm_stored(self, a: Alarm, r: AppendResult, retry: bool = False) -> None:
        if r.outcome in (AppendOutcome.STORED, AppendOutcome.DUPLICATE):
            if a.store is StoreState.FAILED:
                self._journal_fault_raised = False
                log.warning("alarm %s stored after an earlier journal failure", a.event.event_id)
                if a.custody.upstream:
                    self._pump.delivered.append(a.event.event_id)
                if a.ack is not None:
                    self._journal.mark_acknowledged(a.event.event_id, a.ack.value)
            a.stored(StoreEvent.WRITTEN)
            a.answer_device(r.outcome is AppendOutcome.STORED or retry)
            self._maybe_forget(a)
            return
        # FAILED (full or broken disk): keep the alarm in memory, it is being published anyway
        a.stored(StoreEvent.WRITE_FAILED)
        self.stats["alarms_not_stored"] += 1
        if a.custody.upstream:
            a.answer_device(True)
        if not self._journal_fault_raised and a.event.code is not JOURNAL_FAULT_CODE:
            self._journal_fault_raised = True
            self.raise_technical(JOURNAL_FAULT_CODE, {"reason": "write_failed", "detail": r.error or ""})

    def _repeat_stored(self, event: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        """A repeated alarm's journal outcome. ACK it (duplicate) only if it is safe somewhere:
        this append or an earlier one stored it, or the broker PUBACKed the copy we hold. A
        failed append of an alarm held only in memory is NOT acknowledged: the device keeps it
        (and re-sends) until the disk or the broker has it — a kill -9 would lose it otherwise."""
        if on_stored is None:
            return
        if r.outcome in (AppendOutcome.STORED, AppendOutcome.DUPLICATE):
            on_stored(event, False)
            return
        held = self._alarms.get(event.event_id)
        if event.event_id in self._recent or (held is not None and bool(held.custody)):
            on_stored(event, False)
            return
        log.warning("repeated alarm %s neither stored nor at the broker: no ACK, the device keeps it",
                    event.event_id)

    def _restore_pending(self, rows: list[tuple[int, Event, bool]]) -> None:
        for _rowid, ev, delivered in rows:
            if ev.event_id in self._alarms or ev.event_id in self._recent:
                continue
            a = Alarm.restored(ev, delivered=delivered)
            self._track(a)
            if delivered:   # at the broker before the restart; wait for the platform ack
                a.deadline = self._clock.monotonic() + self.ack_timeout_s
            else:
                self._send_alarm(a)

    def _alarm_row(self, ev: Event) -> None:
        """The replay pump met an alarm row in the journal: restore it unless known."""
        if ev.event_id not in self._alarms and ev.event_id not in self._recent:
            self._restore_pending([(0, ev, False)])

    def _maybe_forget(self, a: Alarm) -> None:
        """The platform has the alarm: nothing is left to re-send or escalate."""
        if a.state is AlarmState.ACKNOWLEDGED:
            self._alarms.pop(a.event.event_id, None)
            self._remember(a.event)

    def _remember(self, event: Event) -> None:
        self._recent[event.event_id] = event
        self._recent.move_to_end(event.event_id)
        while len(self._recent) > RECENT_ALARMS:
            self._recent.popitem(last=False)

    # ---- platform acks -------------------------------------------------------------------
    def on_ack_message(self, topic: str, payload: bytes) -> None:
        ack = decode_ack(payload)
        if isinstance(ack, Rejected):
            self.stats["acks_rejected"] += 1
            log.warning("ignoring malformed platform ack on %s: %s", topic, ack.reason)
            return
        self.on_platform_ack(ack)

    def on_platform_ack(self, ack: Ack) -> None:
        self.stats["acks"] += 1
        a = self._alarms.get(ack.event_id)
        event = a.event if a is not None else self._recent.get(ack.event_id)
        self._journal.mark_acknowledged(ack.event_id, ack.status.value)
        if a is not None:
            first = a.state is not AlarmState.ACKNOWLEDGED
            a.fire(AlarmEvent.PLATFORM_ACK)     # the ack proves the platform has it
            a.ack = ack.status
            a.record.ack = ack.status.value
            a.deadline = None
            if first and a.escalations:
                self._signal.alarm_acknowledged(a.event)
            self._maybe_forget(a)
        if self._on_platform_ack is not None:
            self._on_platform_ack(ack.event_id, ack.status, event)

    # ---- the SCAIP centre (ScaipListener) -------------------------------------------------
    def scaip_delivered(self, event: Event, reply: ScaipReply | None, *, escalated: bool,
                        at: float | None = None) -> None:
        """``snu`` 0: an alarm is acknowledged as by the platform's ``received``; a follow-up is
        done. ``at``: when the answer reached the gateway's socket (latency, like a PUBACK's)."""
        if not event.is_alarm:
            self.stats["centre_followups_delivered"] += 1
            if self._feed is not None:
                self._feed.finished(event.event_id)
            return
        self.stats["centre_acks"] += 1
        a = self._alarms.get(event.event_id)
        if a is None and event.event_id in self._recent:
            return                        # the platform acknowledged it first: nothing changes
        self._journal.mark_acknowledged(event.event_id, AckStatus.RECEIVED.value)
        self._pump.delivered.append(event.event_id)
        if a is not None:
            if a.centre is CentreState.OPEN:
                a.centre_fire(CentreEvent.SNU_OK)
            a.fire(AlarmEvent.CENTRE_ACK)
            a.ack = AckStatus.RECEIVED
            a.deadline = None
            rec = a.record
            rec.ack, rec.snu = AckStatus.RECEIVED.value, 0
            rec.centre_latency_ms = round(((at if at is not None else self._clock.time()) - event.received_at)
                                          * 1000.0, 3)
            if rec.latency_ms is None:
                rec.latency_ms = rec.centre_latency_ms
            if a.escalations:
                self._signal.alarm_acknowledged(a.event)
            if a.store is StoreState.FAILED:
                a.answer_device(True)         # not on disk, but the centre has it
            self._maybe_forget(a)
        if self._on_platform_ack is not None:
            self._on_platform_ack(event.event_id, AckStatus.RECEIVED, event)

    def scaip_escalate(self, event: Event, reason: str) -> None:
        """The centre did not answer ``snu`` 0 in time (or said 5): the forwarder's escalation."""
        a = self._alarms.get(event.event_id)
        if a is None or a.escalations or a.state is AlarmState.ACKNOWLEDGED:
            self.stats["centre_escalations_ignored"] += 1     # acknowledged meanwhile, or escalated already
            return
        self.stats["centre_escalations"] += 1
        self._escalate(a, self._clock.monotonic(), cause={"reason": "scaip_no_answer", "detail": reason,
                                                          "route": "scaip"})

    def scaip_refused(self, event: Event, reply: ScaipReply | None, reason: str) -> None:
        """``snu`` 1/2/3/7 (or not encodable): the centre never takes this message. A technical
        alarm on the other routes, the alarm itself there too; never dropped silently."""
        self.stats["centre_refused"] += 1
        snu = int(reply.snu) if reply is not None else None
        detail = reason + (f" ({reply.ste})" if reply is not None and reply.ste else "")
        log.error("the alarm centre refused %s %s: %s", event.code.type_name, event.event_id, detail)
        cause = {"reason": "scaip_refused", "snu": snu, "detail": detail, "route": "scaip"}
        a = self._alarms.get(event.event_id) if event.is_alarm else None
        if a is not None:
            if a.centre is CentreState.OPEN:
                a.centre_fire(CentreEvent.SNU_WRONG)
            a.record.snu = snu
            if not a.escalations:
                self._escalate(a, self._clock.monotonic(), cause=cause)   # other routes, signal, technical alarm
                return
        if not event.is_alarm and self._feed is not None:
            self._feed.finished(event.event_id)           # MQTT carries it as telemetry (if there is MQTT)
        if event.code is EventCode.ALARM_UNACKNOWLEDGED:
            self.stats["centre_refused_technical"] += 1   # never a technical alarm about a technical alarm
            return
        self.raise_technical(EventCode.ALARM_UNACKNOWLEDGED, {
            "event_id": event.event_id, "device": event.device_id, "type": event.code.type_name, **cause},
            avoid_centre=True)

    # ---- status ----------------------------------------------------------------------------
    def status(self) -> UplinkStatus:
        depth = self._journal.depth()
        routes = {p.route: p.connected for p in self._routes()}
        up = next((p.route for p in self._routes() if p.connected), None)
        connected = self._primary.connected
        scaip = None
        if self.centre is not None:
            healthy = self.centre.healthy
            routes[self.centre.route] = healthy
            if up is None and healthy:
                up = self.centre.route
            if not self._routes():
                connected = healthy
            scaip = self.centre.status()
            if self._feed is not None:
                scaip["feed"] = self._feed.status()
        alarms = self._alarms.values()
        return UplinkStatus(
            connected=connected, route=up, routes=routes, backlog=depth.undelivered, scaip=scaip,
            inflight=self._pump.inflight + sum(1 for a in alarms if a.in_flight),
            alarms_unacknowledged=sum(1 for a in alarms if a.state is not AlarmState.ACKNOWLEDGED),
            alarms_held=sum(1 for a in alarms if a.state is AlarmState.HELD),
            shed=depth.shed, journal_total=depth.total, last_alarms=tuple(self._records))
