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
- Platform acks (``wt.ack/1`` on the gateway's ack topic, ``Topics(gw).ack``): an alarm without a
  ``received`` ack within ``ack_timeout_s`` is escalated: re-sent (same event_id,
  attempt+1) on every connected route (primary and fallback), the resident is signalled
  locally (:class:`LocalSignal`) and a technical alarm ``alarm_unacknowledged`` is raised;
  the re-send repeats every ``resend_interval_s`` until acknowledged.
- A device's alarm is ACKed to the device (``on_stored``) only once the alarm is in
  someone's custody: stored in the journal, PUBACKed by a broker or acked by the platform.
- On a (re)connect, alarms stranded un-PUBACKed on a route that is still down are re-sent
  first, then the held ones, in submission order (the platform's first arrivals stay in
  the order the alarms happened).

A SCAIP alarm receiving centre (docs/scaip.md) is one more alarm route, given as ``centre``
(a factory of the route). With ``centre_first`` (``[scaip] role = "primary"``) an alarm
goes to the centre alone; otherwise to the first connected MQTT route, and to the centre
when no broker is up; on an escalation, always (once: the route re-sends by itself). The
centre's ``snu`` 0 acknowledges the alarm exactly like the platform's ``received`` ack; no
answer in time, or a refusal, is this forwarder's escalation (never silently dropped).
Follow-ups reach the centre in journal order (``CentreFeed``). Without MQTT
(``primary=None``) the centre is the only route.

Where each part lives (this module is the entry point; it wires the others):

- here: :class:`Forwarder` — submission, publication on the routes, PUBACKs, journal
  outcomes, deadlines and escalation, platform acks, and :meth:`Forwarder.acknowledge`,
  the one "acknowledge an alarm" step shared by the platform's ack and the centre's snu 0.
- :mod:`gateway.domain.alarm_book`: :class:`~gateway.domain.alarm_book.AlarmBook`, the
  live alarms in submission order, the recently acknowledged ids, the status records.
- :mod:`gateway.domain.centre_leg`: :class:`~gateway.domain.centre_leg.CentreLeg`, the
  SCAIP route's :class:`~gateway.domain.scaip.ScaipListener` (``snu`` 0, escalation,
  refusal; the centre leg's table) and owner of the route and its ``CentreFeed``; it calls
  back only :meth:`Forwarder.acknowledge`, :meth:`Forwarder.escalate`, :meth:`Forwarder.raise_technical`.
- :mod:`gateway.domain.uplink_status`: :class:`UplinkStatus`, :class:`NoRoute` and the
  status snapshot (re-exported here).
- :mod:`gateway.domain.alarms` (the state tables) and :mod:`gateway.domain.replay` (the pump).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable

from gateway.domain.alarm_book import AlarmBook
from gateway.domain.alarm_journal import JOURNAL_FAULT_CODE, AlarmJournal
from gateway.domain.alarms import Alarm, AlarmEvent, AlarmRecord, AlarmState, CentreState, StoreState, StoredCallback
from gateway.domain.centre_leg import CentreFactory, CentreLeg
from gateway.domain.event_ids import GatewayEventIds
from gateway.domain.journal_types import AppendResult, Recovery
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.payload import Ack, AckStatus, Rejected, Topics, decode_ack, encode_event
from gateway.domain.ports import Clock
from gateway.domain.replay import ReplayPump
from gateway.domain.scaip import CentreFeed, CentreRoute
from gateway.domain.uplink_errors import NotConnected, UplinkError
from gateway.domain.uplink_ports import JournalFront, LocalSignal, Publisher
from gateway.domain.uplink_status import NoRoute, UplinkStatus, build_status, mqtt_routes

__all__ = ["AlarmRecord", "CentreFactory", "Forwarder", "JOURNAL_FAULT_CODE", "NoRoute", "UplinkStatus"]

log = logging.getLogger(__name__)

PlatformAckHook = Callable[[str, AckStatus, "Event | None"], None]
EscalationHook = Callable[[Event, int], None]


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
    - ``centre``: factory of the SCAIP route (given the forwarder's :class:`CentreLeg` as its listener);
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
        self._alarms = AlarmBook(last_alarms=last_alarms)
        self._pump = ReplayPump(gateway_id=gateway_id, topic=self.topics.event, journal=journal, primary=self._primary,
                                clock=clock, window=replay_window, batch=replay_batch,
                                rate_per_s=replay_rate_per_s, tick_s=tick_s, stats=self.stats,
                                on_alarm_row=self._alarm_row)
        self._started = False
        self._store = AlarmJournal(journal=journal, book=self._alarms, technical=self, stats=self.stats,
                                   mark_delivered=self._mark_delivered)
        self._centre = (CentreLeg(centre, desk=self, book=self._alarms, journal=journal, clock=clock,
                                  stats=self.stats, first=centre_first, window=centre_window,
                                  owns_delivery=not self._routes())
                        if centre is not None else None)
        self.centre: CentreRoute | None = self._centre.route if self._centre is not None else None

    @property
    def replay_window(self) -> int:
        return self._pump.window

    @property
    def replay_batch(self) -> int:
        return self._pump.batch

    @property
    def _feed(self) -> CentreFeed | None:
        """The SCAIP leg's follow-up feed (the daemon tests watch it drain)."""
        return self._centre.feed if self._centre is not None else None

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
        if self._centre is not None:
            self._centre.start()
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
        if self._centre is not None:
            self._centre.flush(self._clock.monotonic())

    def poll(self) -> None:
        """Periodic work: ack deadlines, held alarms, journal retries, puback timeouts, marks, pump."""
        now = self._clock.monotonic()
        for a in self._alarms.live():
            if a.state is not AlarmState.ACKNOWLEDGED and a.deadline is not None and now >= a.deadline:
                self._escalate(a, now)
            elif a.state is AlarmState.HELD:
                self._send_alarm(a)
        self._store.retry_failed(now)
        self._pump.expire(now, self.puback_timeout_s)
        self._pump.flush()
        self._pump.drain()
        if self._centre is not None:
            self._centre.poll(now)

    def _mark_delivered(self, event_id: str) -> None:
        """Queue the journal's delivered mark (coalesced by the pump, written on :meth:`flush`)."""
        self._pump.delivered.append(event_id)

    # ---- EventSink --------------------------------------------------------------------
    def submit(self, event: Event, on_stored: StoredCallback | None = None) -> None:
        self._submit(event, on_stored)

    def _submit(self, event: Event, on_stored: StoredCallback | None = None,
                centre: CentreState = CentreState.NONE) -> None:
        if event.is_alarm:
            if self._alarms.known(event.event_id):
                # the device repeated an alarm we are handling or the platform already
                # acknowledged: no new publication, only the journal's duplicate check
                self._store.write_repeat(event, on_stored)
                return
            a = Alarm(event, on_stored, centre=centre)
            self._alarms.track(a)
            self._send_alarm(a)
            self._store.write(a)
        else:
            self._journal.submit(event, lambda e, r: self._telemetry_stored(e, r, on_stored))

    def _telemetry_stored(self, e: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        self._pump.telemetry_stored(e, r, on_stored)
        if self._centre is not None:
            self._centre.stored(e, r)

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
        return mqtt_routes(self._primary, self._fallback)

    def _alarm_routes(self) -> list[Publisher]:
        return mqtt_routes(self._lane, self._primary, self._fallback)

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
        leg = self._centre           # the SCAIP leg, when this copy goes to the centre
        if leg is not None and not leg.takes(a, all_routes=all_routes, mqtt_up=bool(up)):
            leg = None
        if leg is not None and leg.first and not all_routes:
            up = []
        if not up and leg is None:
            a.fire(AlarmEvent.NO_ROUTE)
            return False
        a.attempt += 1
        a.fire(AlarmEvent.PUBLISHED)     # before publish(): a PUBACK may come back inside it
        sent = False
        if leg is not None:
            leg.hand(a)                  # non-blocking; the route reports back (never from inside)
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
        self._mark_delivered(a.event.event_id)
        if a.store is StoreState.FAILED:
            a.answer_device(True)         # not on disk, but safe at the broker
        self._alarms.forget_if_done(a)

    def escalate(self, a: Alarm, cause: dict[str, Any]) -> None:
        """Escalate ``a`` now for what the SCAIP centre did (``cause``: the technical alarm's data)."""
        self._escalate(a, self._clock.monotonic(), cause=cause)

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
            for a in self._alarms.live():
                if a.state is AlarmState.HELD or (a.stranded and a.sent_on is not route):
                    self._send_alarm(a)
            self._pump.kick()
            self._pump.drain()

    # ---- alarms: restored from the journal ---------------------------------------------------
    def _restore_pending(self, rows: list[tuple[int, Event, bool]]) -> None:
        for _rowid, ev, delivered in rows:
            if self._alarms.known(ev.event_id):
                continue
            a = Alarm.restored(ev, delivered=delivered)
            self._alarms.track(a)
            if delivered:   # at the broker before the restart; wait for the platform ack
                a.deadline = self._clock.monotonic() + self.ack_timeout_s
            else:
                self._send_alarm(a)

    def _alarm_row(self, ev: Event) -> None:
        """The replay pump met an alarm row in the journal: restore it unless known."""
        if not self._alarms.known(ev.event_id):
            self._restore_pending([(0, ev, False)])

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
        self.acknowledge(ack.event_id, ack.status)

    def acknowledge(self, event_id: str, status: AckStatus, *, by: AlarmEvent = AlarmEvent.PLATFORM_ACK,
                    event: Event | None = None) -> None:
        """The one "acknowledge an alarm" step: the platform's ack (``by`` PLATFORM_ACK) and the
        SCAIP centre's ``snu`` 0 (``by`` CENTRE_ACK, ``status`` received; the
        :class:`~gateway.domain.centre_leg.CentreLeg` calls it). The journal's ack mark (the
        centre's answer is also the row's delivery, like a PUBACK); a live alarm is
        acknowledged, the resident's signal stops if it had been escalated, a device still
        waiting is answered if the centre holds it but the disk does not, and the alarm is
        forgotten; then ``on_platform_ack`` (e.g. FEEDBACK to the device)."""
        a = self._alarms.get(event_id)
        if event is None:
            event = self._alarms.event(event_id)
        self._journal.mark_acknowledged(event_id, status.value)
        by_centre = by is AlarmEvent.CENTRE_ACK
        if by_centre:
            self._mark_delivered(event_id)
        if a is not None:
            a.fire(by)                    # the ack proves the platform (or the centre) has it
            a.ack = status
            a.record.ack = status.value
            a.deadline = None
            if a.escalations:
                self._signal.alarm_acknowledged(a.event)
            if by_centre and a.store is StoreState.FAILED:
                a.answer_device(True)     # not on disk, but the centre has it
            self._alarms.forget_if_done(a)
        if self._on_platform_ack is not None:
            self._on_platform_ack(event_id, status, event)

    # ---- status ----------------------------------------------------------------------------
    def status(self) -> UplinkStatus:
        return build_status(depth=self._journal.depth(), primary=self._primary, routes=self._routes(),
                            centre=self._centre, pump_inflight=self._pump.inflight, book=self._alarms)
