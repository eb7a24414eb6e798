"""Domain forwarder: journal + MQTT routes -> "an alarm arrives once, fast, and never gets lost".

Runs on the daemon's event loop (no paho import; routes are :class:`Publisher` ports).

- Alarms are published at once on the first connected route (primary, else fallback),
  *while* the journal write proceeds on the writer thread; they never queue behind
  telemetry or the backlog, and never wait for an fsync.
- Telemetry goes to the journal first; once stored it is published live if there is no
  backlog, otherwise the replay pump sends it in journal order.
- Replay: the pump reads undelivered rows in journal order and keeps at most
  ``replay_window`` telemetry publications un-PUBACKed (optionally also capped at
  ``replay_rate_per_s``), so an alarm never has more than a window of small messages in
  front of it on the socket.
- PUBACK marks an event delivered (coalesced journal writes).
- Platform acks (``wt.ack/1`` on ``wt/v1/gw/{gw}/ack``): an alarm without a
  ``received`` ack within ``ack_timeout_s`` is re-sent (same event_id, attempt+1) on
  every connected route (primary and fallback), the resident is signalled locally
  (:class:`LocalSignal`) and a technical alarm ``alarm_unacknowledged`` is raised; the
  re-send repeats every ``resend_interval_s`` until acknowledged.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from gateway.domain.journal_codec import decode_event
from gateway.domain.journal_types import AppendOutcome, AppendResult, Recovery
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import Clock

from gateway.domain.uplink_errors import NotConnected, UplinkError
from gateway.domain.payload import Ack, AckStatus, Rejected, Topics, decode_ack, encode_event
from gateway.domain.uplink_ports import JournalFront, LocalSignal, Publisher

log = logging.getLogger(__name__)

StoredCallback = Callable[[Event, bool], None]
PlatformAckHook = Callable[[str, AckStatus, "Event | None"], None]
EscalationHook = Callable[[Event, int], None]

#: Code of the technical alarm raised when the journal cannot store (disk full / I/O
#: error). gateway.domain.model has no dedicated code yet; ``data.reason`` = ``write_failed``.
JOURNAL_FAULT_CODE = EventCode.JOURNAL_FAULT


@dataclass
class AlarmRecord:
    """One alarm as shown by ``gateway status`` (latency = PUBACK time - received_at)."""

    event_id: str
    type: str
    received_at: float
    attempts: int = 0
    route: str | None = None
    latency_ms: float | None = None
    ack: str | None = None
    escalations: int = 0


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_alarms"] = [asdict(a) for a in self.last_alarms]
        return d


@dataclass
class _Alarm:
    event: Event
    record: AlarmRecord
    on_stored: StoredCallback | None = None
    attempt: int = 0
    stored: bool = False
    store_failed: bool = False
    stored_reported: bool = False
    puback: bool = False
    held: bool = False
    ack: AckStatus | None = None
    deadline: float | None = None       # monotonic; platform ack expected before this
    escalations: int = 0
    restored: bool = False
    sent_on: Any = None                 # the Publisher that carries the latest copy


@dataclass
class _TokenBucket:
    rate: float
    burst: float = 1.0        # at least what accrues between two polls, or the cap would bite early
    tokens: float = 0.0
    last: float | None = None

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        if self.last is None:
            self.last, self.tokens = now, self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Inflight:
    rowid: int
    sent_mono: float


class Forwarder:
    """EventSink of the gateway (see module doc). All keyword arguments:

    - ``gateway_id``: topic and event-id prefix.
    - ``journal``: :class:`JournalFront` (``gateway.adapters.journal.JournalWriter``).
    - ``primary`` / ``fallback`` (optional): :class:`Publisher` routes.
    - ``alarm_lane`` (optional): a separate connection to the primary broker used for
      alarms first (``gateway.adapters.mqtt.alarm_lane_link``); alarms fall back to
      ``primary`` and then ``fallback`` when it is down.
    - ``clock``: injected clock.
    - ``local_signal``: resident signal (default :class:`gateway.uplink.LoggingLocalSignal`).
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
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        journal: JournalFront,
        primary: Publisher,
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
    ) -> None:
        from gateway.domain.signal import LoggingLocalSignal

        if ack_timeout_s <= 0 or replay_window < 1 or replay_batch < 1:
            raise UplinkError("ack_timeout_s must be > 0, replay_window and replay_batch at least 1")
        self.gateway_id = gateway_id
        self.topics = Topics(gateway_id)
        self._journal = journal
        self._primary = primary
        self._fallback = fallback
        self._lane = alarm_lane
        self._clock = clock
        self._signal = local_signal or LoggingLocalSignal()
        self.ack_timeout_s = ack_timeout_s
        self.resend_interval_s = resend_interval_s or ack_timeout_s
        self.replay_window = replay_window
        self.replay_batch = replay_batch
        self.puback_timeout_s = puback_timeout_s
        self._bucket = _TokenBucket(replay_rate_per_s, burst=max(1.0, replay_rate_per_s * tick_s * 2))
        self._on_platform_ack = on_platform_ack
        self._on_escalated = on_alarm_escalated
        self._recovery = journal_recovery
        self.tick_s = tick_s
        # alarm state
        self._alarms: dict[str, _Alarm] = {}
        self._recent: collections.OrderedDict[str, Event] = collections.OrderedDict()
        self._records: collections.deque[AlarmRecord] = collections.deque(maxlen=last_alarms)
        # telemetry / replay state
        self._inflight: dict[str, _Inflight] = {}
        self._queue: collections.deque[tuple[int, str, bool]] = collections.deque()   # (rowid, body, alarm)
        self._read_pos = 0
        self._end_reached = False
        self._reading = False
        self._end_pos = 0
        self._delivered: list[str] = []
        self._started = False
        self._journal_fault_raised = False
        self._last_store_retry = 0.0
        self.stats = collections.Counter()

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
        if self._recovery is not None:
            self.raise_technical(EventCode.JOURNAL_RECOVERED, {
                "reason": "corrupt_journal_quarantined", "detail": self._recovery.reason,
                "quarantined_to": str(self._recovery.quarantined_to)})
        self._kick()

    async def async_run(self) -> None:
        """Start, then :meth:`poll` every ``tick_s`` until cancelled."""
        self.start()
        while True:
            self.poll()
            await asyncio.sleep(self.tick_s)

    def flush(self) -> None:
        """Queue the coalesced delivered-marks now (also done by :meth:`poll`)."""
        if self._delivered:
            ids, self._delivered = self._delivered, []
            self._journal.mark_delivered(ids)

    def poll(self) -> None:
        """Periodic work: ack deadlines, held alarms, puback timeouts, delivered marks, pump."""
        now = self._clock.monotonic()
        for a in list(self._alarms.values()):
            if a.ack is None and a.deadline is not None and now >= a.deadline:
                self._escalate(a, now)
            elif a.held:
                self._send_alarm(a)
        if now - self._last_store_retry >= 5.0:
            self._last_store_retry = now
            for a in self._alarms.values():
                if a.store_failed and not a.stored:
                    self._journal.submit(a.event, lambda e, r, a=a: self._alarm_stored(a, r, retry=True))
        stale = [i for i, f in self._inflight.items() if now - f.sent_mono > self.puback_timeout_s]
        if stale and self._primary.connected:
            for i in stale:
                self._rewind(self._inflight.pop(i).rowid)
        self.flush()
        self._drain()

    # ---- EventSink --------------------------------------------------------------------
    def submit(self, event: Event, on_stored: StoredCallback | None = None) -> None:
        if event.is_alarm:
            if event.event_id in self._alarms or event.event_id in self._recent:
                # the device repeated an alarm we are handling or the platform already
                # acknowledged: no new publication, only the journal's duplicate check
                self._journal.submit(event, lambda e, r: self._repeat_stored(e, r, on_stored))
                return
            a = _Alarm(event=event, record=AlarmRecord(event.event_id, event.code.type_name, event.received_at),
                       on_stored=on_stored)
            self._alarms[event.event_id] = a
            self._records.append(a.record)
            self._send_alarm(a)
            self._journal.submit(event, lambda e, r: self._alarm_stored(a, r))
        else:
            self._journal.submit(event, lambda e, r: self._telemetry_stored(e, r, on_stored))

    def raise_technical(self, code: EventCode, data: dict[str, Any] | None = None) -> None:
        """Raise a gateway technical alarm (id ``<gw>-g<counter:010d>``), submitted like any alarm."""
        def make(counter: int | None) -> None:
            now = self._clock.time()
            event_id = (f"{self.gateway_id}-g{counter:010d}" if counter is not None
                        else f"{self.gateway_id}-t{int(now * 1000):013d}")
            self.submit(Event(event_id=event_id, device_id=self.gateway_id, code=code, occurred_at=now,
                              received_at=now, role=Role.GATEWAY, data=dict(data or {})))

        # The counter comes from the block already reserved (memory): a technical alarm is
        # published at once, not after the journal writer's queue and a commit's fsync.
        try:
            counter: int | None = self._journal.next_gateway_counter()
        except Exception as exc:  # noqa: BLE001 - hwm file unwritable and the block used up
            log.error("gateway counter unavailable (%s); using a time-based event id", exc)
            counter = None
        make(counter)

    # ---- alarms --------------------------------------------------------------------------
    def _routes(self) -> list[Publisher]:
        return [p for p in (self._primary, self._fallback) if p is not None]

    def _alarm_routes(self) -> list[Publisher]:
        return [p for p in (self._lane, self._primary, self._fallback) if p is not None]

    def _send_alarm(self, a: _Alarm, *, all_routes: bool = False) -> bool:
        up = [p for p in self._alarm_routes() if p.connected]
        if all_routes:   # one publication per route label: the lane and primary are the same broker
            seen: set[str] = set()
            up = [p for p in up if not (p.route in seen or seen.add(p.route))]  # type: ignore[func-returns-value]
        else:
            up = up[:1]
        a.attempt += 1
        sent = False
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
            sent = True
            a.record.route = p.route
            a.sent_on = p
        if not sent:
            a.attempt -= 1
            a.held = True
            return False
        a.held = False
        a.record.attempts = a.attempt
        if a.deadline is None:
            a.deadline = self._clock.monotonic() + self.ack_timeout_s
        self.stats["alarm_publications"] += 1
        return True

    def _alarm_puback(self, a: _Alarm, route: str, ok: bool, at: float) -> None:
        if not ok:
            log.error("broker refused alarm %s on %s; re-sending", a.event.event_id, route)
            a.held = True
            return
        a.puback = True
        if a.record.latency_ms is None:
            a.record.latency_ms = round((at - a.event.received_at) * 1000.0, 3)
        self._delivered.append(a.event.event_id)
        if a.store_failed and not a.stored_reported and a.on_stored is not None:
            a.stored_reported = True      # not on disk, but safe at the broker
            a.on_stored(a.event, True)
        self._maybe_forget(a)

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
        if event.event_id in self._recent or (held is not None and (held.stored or held.puback)):
            on_stored(event, False)
            return
        log.warning("repeated alarm %s neither stored nor at the broker: no ACK, the device keeps it",
                    event.event_id)

    def _alarm_stored(self, a: _Alarm, r: AppendResult, retry: bool = False) -> None:
        if r.outcome in (AppendOutcome.STORED, AppendOutcome.DUPLICATE):
            a.stored = True
            if a.store_failed:
                a.store_failed = False
                self._journal_fault_raised = False
                log.warning("alarm %s stored after an earlier journal failure", a.event.event_id)
                if a.puback:
                    self._delivered.append(a.event.event_id)
                if a.ack is not None:
                    self._journal.mark_acknowledged(a.event.event_id, a.ack.value)
            if not a.stored_reported and a.on_stored is not None:
                a.stored_reported = True
                a.on_stored(a.event, r.outcome is AppendOutcome.STORED or retry)
            self._maybe_forget(a)
            return
        # FAILED (full or broken disk): keep the alarm in memory, it is being published anyway
        a.store_failed = True
        self.stats["alarms_not_stored"] += 1
        if a.puback and not a.stored_reported and a.on_stored is not None:
            a.stored_reported = True
            a.on_stored(a.event, True)
        if not self._journal_fault_raised and a.event.code is not JOURNAL_FAULT_CODE:
            self._journal_fault_raised = True
            self.raise_technical(JOURNAL_FAULT_CODE, {"reason": "write_failed", "detail": r.error or ""})

    def _escalate(self, a: _Alarm, now: float) -> None:
        a.escalations += 1
        a.record.escalations = a.escalations
        a.deadline = now + self.resend_interval_s
        self.stats["escalations"] += 1
        log.warning("alarm %s not acknowledged by the platform (step %d): re-sending on all routes",
                    a.event.event_id, a.escalations)
        self._send_alarm(a, all_routes=True)
        if a.escalations == 1:
            self._signal.alarm_unacknowledged(a.event)
            if a.event.code is not EventCode.ALARM_UNACKNOWLEDGED:
                self.raise_technical(EventCode.ALARM_UNACKNOWLEDGED, {
                    "event_id": a.event.event_id, "device": a.event.device_id, "type": a.event.code.type_name})
        if self._on_escalated is not None:
            self._on_escalated(a.event, a.escalations)

    def _maybe_forget(self, a: _Alarm) -> None:
        """The platform has the alarm: nothing is left to re-send or escalate."""
        if a.ack is not None:
            self._alarms.pop(a.event.event_id, None)
            self._remember(a.event)

    def _remember(self, event: Event) -> None:
        self._recent[event.event_id] = event
        self._recent.move_to_end(event.event_id)
        while len(self._recent) > 1024:
            self._recent.popitem(last=False)

    def _restore_pending(self, rows: list[tuple[int, Event, bool]]) -> None:
        for _rowid, ev, delivered in rows:
            if ev.event_id in self._alarms or ev.event_id in self._recent:
                continue
            a = _Alarm(event=ev, record=AlarmRecord(ev.event_id, ev.code.type_name, ev.received_at),
                       stored=True, stored_reported=True, puback=delivered, restored=True, attempt=1)
            self._alarms[ev.event_id] = a
            self._records.append(a.record)
            if delivered:   # at the broker before the restart; wait for the platform ack
                a.deadline = self._clock.monotonic() + self.ack_timeout_s
            else:
                self._send_alarm(a)

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
            first = a.ack is None
            a.ack = ack.status
            a.record.ack = ack.status.value
            a.deadline = None
            a.held = False
            if first and a.escalations:
                self._signal.alarm_acknowledged(a.event)
            if not a.puback:   # the ack proves the platform has it
                a.puback = True
            self._maybe_forget(a)
        if self._on_platform_ack is not None:
            self._on_platform_ack(ack.event_id, ack.status, event)

    # ---- telemetry / replay ----------------------------------------------------------------
    def _telemetry_stored(self, e: Event, r: AppendResult, on_stored: StoredCallback | None) -> None:
        if r.outcome is AppendOutcome.FAILED:
            self.stats["telemetry_not_stored"] += 1
            return          # not ACKed to the device: it will retransmit
        if on_stored is not None:
            on_stored(e, r.outcome is not AppendOutcome.DUPLICATE)
        if r.outcome is not AppendOutcome.STORED or r.rowid is None:
            return
        if (self._end_reached and not self._queue and not self._reading and r.rowid > self._read_pos
                and len(self._inflight) < self._window() and self._primary.connected):
            if self._publish_telemetry(r.rowid, e):
                self._read_pos = r.rowid
                self.stats["live"] += 1
                return
        self._end_reached = False
        self._kick()

    def _window(self) -> int:
        """Replay window, kept below the broker's Receive Maximum (room left for alarms)."""
        rm = getattr(self._primary, "receive_maximum", 65535)
        return max(1, min(self.replay_window, rm - 4))

    def _publish_telemetry(self, rowid: int, e: Event) -> bool:
        if e.event_id in self._inflight:
            return True
        payload = encode_event(e, gateway_id=self.gateway_id, attempt=1, route=self._primary.route,
                               sent_at=self._clock.time())
        try:
            self._primary.publish(self.topics.event, payload, qos=1,
                                  on_puback=lambda ok, at, i=e.event_id: self._telemetry_puback(i, ok))
        except NotConnected:
            return False
        except UplinkError as exc:
            log.error("event %s not published: %s", e.event_id, exc)
            return False
        self._inflight[e.event_id] = _Inflight(rowid, self._clock.monotonic())
        return True

    def _telemetry_puback(self, event_id: str, ok: bool) -> None:
        f = self._inflight.pop(event_id, None)
        if f is None:
            return
        if ok:
            self._delivered.append(event_id)
            self.stats["telemetry_delivered"] += 1
            if len(self._delivered) >= 256:
                self.flush()
        else:
            self._rewind(f.rowid)
        # Refill the window in bursts: fewer write flushes and less bookkeeping per event
        # than one publication per PUBACK. With a rate cap (the default) bursts stay small
        # (16) so no loop callback runs long enough to hold up the alarm lane; uncapped
        # (replay_rate_per_s=0: drain as fast as possible) half a window at a time.
        w = self._window()
        burst = max(1, w // 2) if self._bucket.rate <= 0 else min(16, max(1, w // 2))
        if len(self._inflight) <= w - burst:
            self._drain()

    def _rewind(self, rowid: int) -> None:
        self._read_pos = min(self._read_pos, rowid - 1)
        self._queue.clear()
        self._end_reached = False
        self._end_pos = 0

    def _kick(self) -> None:
        if self._reading or self._end_reached or not self._primary.connected:
            return
        if len(self._queue) >= self.replay_batch:
            return
        self._reading = True
        after = self._queue[-1][0] if self._queue else self._read_pos
        batch = self.replay_batch
        self._journal.call(lambda j: (j.undelivered_rows(batch, after), j.max_rowid()),
                           lambda res, after=after: self._on_read(after, res),
                           on_error=self._on_read_error)

    def _on_read_error(self, exc: BaseException) -> None:
        self._reading = False
        log.error("journal read for replay failed: %s", exc)

    def _on_read(self, after: int, res: tuple[list[tuple[int, str, bool]], int]) -> None:
        self._reading = False
        rows, max_rowid = res
        tail = self._queue[-1][0] if self._queue else self._read_pos
        if after != tail:
            self._kick()      # rewound meanwhile: this read is stale
            return
        self._queue.extend(rows)
        if len(rows) < self.replay_batch:
            self._end_reached = True
            end = max(max_rowid, rows[-1][0] if rows else 0)
            if not self._queue:
                self._read_pos = max(self._read_pos, end)
            self._end_pos = end
        self._drain()

    def _drain(self) -> None:
        now = self._clock.monotonic()
        while self._queue and self._primary.connected:
            rowid, body, alarm = self._queue[0]
            if not alarm and (len(self._inflight) >= self._window() or not self._bucket.take(now)):
                break
            try:
                ev = decode_event(body)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("journal row %d undecodable (%s); skipped", rowid, exc)
                self._queue.popleft()
                continue
            if alarm:
                self._queue.popleft()
                self._read_pos = max(self._read_pos, rowid)
                if ev.event_id not in self._alarms and ev.event_id not in self._recent:
                    self._restore_pending([(rowid, ev, False)])
                continue
            if ev.event_id in self._inflight:
                self._queue.popleft()
                continue
            if not self._publish_telemetry(rowid, ev):
                break
            self._queue.popleft()
            self._read_pos = max(self._read_pos, rowid)
            self.stats["replayed"] += 1
        if not self._queue and self._end_reached:
            self._read_pos = max(self._read_pos, self._end_pos)
        if len(self._queue) < self.replay_batch // 2:
            self._kick()

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
                stranded = (not a.puback and a.ack is None and a.sent_on is not None
                            and a.sent_on is not route and not a.sent_on.connected)
                if a.held or stranded:
                    self._send_alarm(a)
            self._kick()
            self._drain()

    # ---- status ----------------------------------------------------------------------------
    def status(self) -> UplinkStatus:
        depth = self._journal.depth()
        routes = {p.route: p.connected for p in self._routes()}
        up = next((p.route for p in self._routes() if p.connected), None)
        return UplinkStatus(
            connected=self._primary.connected, route=up, routes=routes, backlog=depth.undelivered,
            inflight=len(self._inflight) + sum(1 for a in self._alarms.values() if not a.puback and not a.held),
            alarms_unacknowledged=sum(1 for a in self._alarms.values() if a.ack is None),
            alarms_held=sum(1 for a in self._alarms.values() if a.held),
            shed=depth.shed, journal_total=depth.total, last_alarms=tuple(self._records))
