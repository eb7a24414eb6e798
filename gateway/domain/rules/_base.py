"""Rule interface, the alarms rules raise, and the engine that turns them into events.

Time
----
A rule reads two clocks through the injected :class:`~gateway.domain.ports.Clock`:

- wall time (``tick(now)``, an event's ``occurred_at``) says *when*: the time of day a
  window is about (local time in ``gateway.timezone``) and the timestamps an alarm carries;
- ``clock.monotonic()`` says *how long*: every deadline, debounce and repeat interval. Wall
  time may step either way (an NTP correction, a wrong RTC at boot); a duration measured on
  it would delay, suppress or fire an alarm early.

An event's timer starts at :func:`event_mono` (now, less the frame's age). Monotonic time
does not survive a reboot, so persisted timers are **wall-clock anchors**:
:func:`wall_anchor` writes the start as today's wall clock reads it (re-written when a wall
step moves that reading: the engine persists whenever the snapshot changes), and
:func:`restored_mono` converts back on restore with one rule: *time already spent = wall now
− anchor, never negative*. A wall clock behind the anchor after a reboot (a Raspberry Pi has
no RTC; NTP not synced yet) restarts the wait in full — the alarm comes late by at most the
time spent before the restart, it is never suppressed; a clock ahead fires it at the next tick.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol
from zoneinfo import ZoneInfo

from gateway.domain.event_ids import GatewayCounter, GatewayEventIds, is_gateway_event_id
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import Clock, EventSink
from gateway.errors import GatewayError

log = logging.getLogger("gateway.domain.rules")


class RuleError(GatewayError):
    """Root exception of gateway.domain.rules (``rule`` names the rule)."""

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Raised:
    """An event a rule wants the gateway to raise (the engine assigns the event id)."""

    code: EventCode
    device_id: str
    occurred_at: float
    data: dict[str, Any] = field(default_factory=dict)
    role: Role | None = None
    test: bool = False


class Rule(Protocol):
    name: str

    def on_event(self, event: Event) -> Iterable[Raised]:
        """React to a newly stored device event (never called twice for one event id)."""

    def tick(self, now: float) -> Iterable[Raised]:
        """Time-driven checks; ``now`` is epoch seconds from the injected clock."""


class StateStore(Protocol):
    """Small durable key-value store (the journal's ``get_state``/``set_state``)."""

    def get_state(self, key: str) -> bytes | None: ...

    def set_state(self, key: str, value: bytes) -> None: ...


class StatefulRule(Protocol):
    """A rule whose pending timers must survive a gateway restart."""

    name: str

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def event_mono(clock: Clock, event: Event) -> float:
    """When ``event`` happened on the monotonic clock: now less its age at reception.

    ``received_at - occurred_at`` is the frame's own age field (both stamps come from the
    same wall reading), so a wall step cannot fall between them; a negative age counts as 0.
    """
    age = event.received_at - event.occurred_at
    return clock.monotonic() - (age if age > 0.0 else 0.0)


def wall_anchor(clock: Clock, mono: float) -> int:
    """Monotonic instant ``mono`` as the wall clock reads it now, in whole seconds (whole, so
    that a slewing clock does not rewrite the persisted state on every tick)."""
    return round(clock.time() - (clock.monotonic() - mono))


def restored_mono(clock: Clock, anchor: float) -> float:
    """A persisted wall ``anchor`` as a monotonic instant: spent = wall now − anchor, never negative."""
    spent = clock.time() - anchor
    return clock.monotonic() - (spent if spent > 0.0 else 0.0)


def in_window(ts: float, start: _dt.time, end: _dt.time, tz: ZoneInfo) -> bool:
    """True if local wall time of ``ts`` is in [start, end); windows may cross midnight."""
    t = _dt.datetime.fromtimestamp(ts, tz).time()
    if start < end:
        return start <= t < end
    return t >= start or t < end


class RuleEngine:
    """Runs a table of rules; raised alarms become gateway events submitted to the sink.

    Event ids are ``<gateway>-g<counter:010d>`` from the journal's durable counter; when no
    counter can be reserved (disk full) the id is time-based, ``<gateway>-t<epoch ms>``, and
    the alarm is submitted all the same (gateway/domain/event_ids.py: pass the gateway's one
    ``ids`` issuer, shared with the forwarder's technical alarms; without it the engine builds
    its own on ``counter``). A rule that raises an exception, or an alarm the sink refuses,
    is logged and counted in ``errors``; the other alarms and rules still run.
    Rules with ``snapshot``/``restore`` (pending bed exits, due doses) are persisted in
    ``state`` (key ``rules.<name>``) whenever their snapshot changes (a new timer, a cleared
    one, or a wall step that moves an anchor), and restored at construction, so a restart
    during a 30-minute wait does not forget the timer (wall anchors: "Time" above).
    """

    def __init__(self, gateway_id: str, rules: Iterable[Rule], counter: GatewayCounter,
                 sink: EventSink, clock: Clock,
                 on_raised: Callable[[Event], None] | None = None,
                 state: StateStore | None = None, ids: GatewayEventIds | None = None) -> None:
        self.gateway_id = gateway_id
        self.rules = list(rules)
        self.counter = counter
        self.sink = sink
        self.clock = clock
        self.on_raised = on_raised
        self.state = state
        self.raised = 0
        self.errors = 0
        self._persisted: dict[str, bytes] = {}
        # share one issuer with the forwarder so rule and technical fallback ids cannot collide
        self.ids = ids if ids is not None else GatewayEventIds(gateway_id, counter)
        if state is not None:
            for rule in self.rules:
                if hasattr(rule, "restore"):
                    self._persisted[f"rules.{rule.name}"] = b"{}"   # nothing stored = nothing pending
                    self._restore(rule, state)

    def _restore(self, rule: Any, state: StateStore) -> None:
        key = f"rules.{rule.name}"
        raw = state.get_state(key)
        if not raw:
            return
        try:
            rule.restore(json.loads(raw.decode()))
            self._persisted[key] = raw
            log.info("rule %s: restored pending state %s", rule.name, raw.decode())
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            log.warning("rule %s: stored state unreadable, starting empty: %r", rule.name, raw[:200])

    def _persist(self, rule: Any) -> None:
        if self.state is None or not hasattr(rule, "snapshot"):
            return
        key = f"rules.{rule.name}"
        raw = json.dumps(rule.snapshot(), sort_keys=True).encode()
        if self._persisted.get(key) != raw:
            self.state.set_state(key, raw)
            self._persisted[key] = raw

    def on_event(self, event: Event) -> list[Event]:
        if is_gateway_event_id(self.gateway_id, event.event_id):
            return []  # our own events never feed back into rules
        out: list[Event] = []
        for rule in self.rules:
            out += self._run(rule, rule.on_event, event)
        return out

    def tick(self, now: float | None = None) -> list[Event]:
        now = self.clock.time() if now is None else now
        out: list[Event] = []
        for rule in self.rules:
            out += self._run(rule, rule.tick, now)
        return out

    def _run(self, rule: Rule, call: Callable[[Any], Iterable[Raised]], arg: Any) -> list[Event]:
        try:
            raised = list(call(arg) or ())
        except Exception:  # a buggy rule must not stop supervision by the others
            self.errors += 1
            log.exception("rule %s failed", getattr(rule, "name", rule))
            return []
        out: list[Event] = []
        for r in raised:
            try:
                out.append(self._emit(r))
            except Exception:  # the sink refused it: log, count, and let the other alarms and rules run
                self.errors += 1
                log.exception("rule %s: raised %s for %s not submitted", getattr(rule, "name", rule),
                              r.code.type_name, r.device_id)
        try:
            self._persist(rule)
        except Exception:  # storage trouble: the rule keeps working from memory
            log.exception("rule %s: persisting pending state failed", getattr(rule, "name", rule))
        return out

    def _emit(self, r: Raised) -> Event:
        now = self.clock.time()
        event = Event(
            event_id=self.ids.next(now),
            device_id=r.device_id,
            code=r.code,
            occurred_at=r.occurred_at,
            received_at=now,
            role=r.role if r.role is not None else Role.GATEWAY,
            data=dict(r.data),
            test=r.test,
        )
        self.raised += 1
        log.info("rule raised %s %s for %s", event.code.type_name, event.event_id, event.device_id)
        if self.on_raised is not None:
            try:
                self.on_raised(event)
            except Exception:  # an observer must not keep the alarm from the platform
                log.exception("on_raised observer failed for %s", event.event_id)
        self.sink.submit(event)
        return event
