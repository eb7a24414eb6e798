"""Rule interface, the alarms rules raise, and the engine that turns them into events."""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol
from zoneinfo import ZoneInfo

from gateway.model import Event, EventCode, Role
from gateway.ports import Clock, EventSink

log = logging.getLogger("gateway.rules")


class RuleError(Exception):
    """Root exception of gateway.rules (``rule`` names the rule)."""

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


class GatewayCounter(Protocol):
    def next_gateway_counter(self) -> int: ...


def in_window(ts: float, start: _dt.time, end: _dt.time, tz: ZoneInfo) -> bool:
    """True if local wall time of ``ts`` is in [start, end); windows may cross midnight."""
    t = _dt.datetime.fromtimestamp(ts, tz).time()
    if start < end:
        return start <= t < end
    return t >= start or t < end


class RuleEngine:
    """Runs a table of rules; raised alarms become gateway events submitted to the sink.

    Event ids are ``<gateway>-g<counter:010d>`` from the journal's durable counter. A rule
    that raises an exception is logged and skipped for that call; the others still run.
    """

    def __init__(self, gateway_id: str, rules: Iterable[Rule], counter: GatewayCounter,
                 sink: EventSink, clock: Clock,
                 on_raised: Callable[[Event], None] | None = None) -> None:
        self.gateway_id = gateway_id
        self.rules = list(rules)
        self.counter = counter
        self.sink = sink
        self.clock = clock
        self.on_raised = on_raised
        self.raised = 0
        self.errors = 0

    def on_event(self, event: Event) -> list[Event]:
        if event.event_id.startswith(f"{self.gateway_id}-g"):
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
        return [self._emit(r) for r in raised]

    def _emit(self, r: Raised) -> Event:
        counter = self.counter.next_gateway_counter()
        event = Event(
            event_id=f"{self.gateway_id}-g{counter:010d}",
            device_id=r.device_id,
            code=r.code,
            occurred_at=r.occurred_at,
            received_at=self.clock.time(),
            role=r.role if r.role is not None else Role.GATEWAY,
            data=dict(r.data),
            test=r.test,
        )
        self.raised += 1
        log.info("rule raised %s %s for %s", event.code.type_name, event.event_id, event.device_id)
        if self.on_raised is not None:
            self.on_raised(event)
        self.sink.submit(event)
        return event
