"""Staged rollout engine (pure): waves, thresholds, in-flight window, timeouts.

The engine decides; a runner (``_runner``) moves commands and reports between it and
a transport (in-process emulated gateways, or MQTT). After hawkBit: units are split in
waves (the first is the canary); a wave starts only when the previous one reached its
success threshold, and the rollout HALTS automatically as soon as the failures in the
current wave exceed its error threshold — queued units of that and later waves are
never sent.

A unit succeeds only when it reports the release's version after its ``committed``
(:meth:`RolloutEngine.observe_version`, fed by the runner from wt.health/1 and
wt.state/1): ``target_version`` is that version. A report that arrives before the
``committed`` (the new gateway publishes health, then commits) is remembered.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from fleet.clock import Clock
from fleet.upgrades._errors import RolloutError
from fleet.upgrades._states import (RolloutEvent, RolloutState, UnitEvent, UnitState, rollout_step, unit_step)


@dataclass(frozen=True, order=True)
class Unit:
    """What one update targets: a gateway (software) or a device behind a gateway (firmware)."""

    gateway_id: str
    device_id: str | None = None

    @property
    def key(self) -> str:
        return self.gateway_id if self.device_id is None else f"{self.gateway_id}/{self.device_id}"

    @classmethod
    def from_key(cls, key: str) -> "Unit":
        gw, _, dev = key.partition("/")
        return cls(gw, dev or None)


@dataclass(frozen=True)
class RolloutPlan:
    """Cumulative wave fractions, e.g. (0.01, 0.1, 0.5, 1.0): 1 % canary, then to 10 %, 50 %, all."""

    waves: tuple[float, ...] = (0.01, 0.10, 0.50, 1.0)
    canary_min: int = 1
    success_threshold: float = 0.95
    error_threshold: float = 0.02
    max_in_flight: int = 1000
    unit_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        w = self.waves
        if not w or any(not 0 < x <= 1 for x in w) or list(w) != sorted(w) or w[-1] != 1.0:
            raise RolloutError(f"waves {list(w)} must be increasing fractions ending at 1.0, e.g. 0.01,0.1,1.0",
                               waves=list(w))
        for name in ("success_threshold", "error_threshold"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise RolloutError(f"{name} {v} must be a fraction between 0 and 1 (e.g. 0.02 for 2 %)")
        if self.max_in_flight < 1:
            raise RolloutError("max_in_flight must be at least 1")


def assign_waves(units: Sequence[Unit], plan: RolloutPlan, *, seed: int = 0) -> list[list[Unit]]:
    """Shuffle (seeded, so re-planning is reproducible) and cut at the cumulative fractions."""
    order = sorted(set(units))
    random.Random(seed).shuffle(order)
    waves: list[list[Unit]] = []
    start = 0
    n = len(order)
    for i, frac in enumerate(plan.waves):
        end = n if frac >= 1.0 else max(int(round(n * frac)), start + (plan.canary_min if i == 0 else 1))
        end = min(end, n)
        if end > start:
            waves.append(order[start:end])
        start = end
    return waves


@dataclass
class UnitRecord:
    unit: Unit
    wave: int
    state: UnitState = UnitState.QUEUED
    sent_at: float | None = None
    updated_at: float | None = None
    error: str | None = None
    attempts: int = 0
    reported: str | None = None          # last version the unit reported after its command was sent


@dataclass
class RolloutEngine:
    rollout_id: str
    plan: RolloutPlan
    units: dict[Unit, UnitRecord]
    clock: Clock
    state: RolloutState = RolloutState.DRAFT
    wave: int = 0
    halt_reason: str | None = None
    dirty: set[Unit] = field(default_factory=set)
    target_version: str | None = None     # the release being installed (set by the runner)
    _by_wave: list[list[UnitRecord]] = field(default_factory=list, init=False, repr=False)
    _wave_counts: list[Counter] = field(default_factory=list, init=False, repr=False)
    _in_flight: set[Unit] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        n = 1 + max((r.wave for r in self.units.values()), default=-1)
        self._by_wave = [[] for _ in range(n)]
        self._wave_counts = [Counter() for _ in range(n)]
        for r in sorted(self.units.values(), key=lambda r: r.unit):
            self._by_wave[r.wave].append(r)
            self._wave_counts[r.wave][r.state] += 1
            if r.state.in_flight:
                self._in_flight.add(r.unit)

    @classmethod
    def create(cls, rollout_id: str, plan: RolloutPlan, units: Sequence[Unit], clock: Clock, *, seed: int = 0,
               current: Iterable[Unit] = ()) -> "RolloutEngine":
        waves = assign_waves(units, plan, seed=seed)
        recs = {u: UnitRecord(u, i) for i, w in enumerate(waves) for u in w}
        eng = cls(rollout_id, plan, recs, clock)
        for u in current:                       # already on the target version: nothing to send
            if u in recs:
                eng._apply(u, UnitEvent.ALREADY_CURRENT)
        return eng

    # -- queries ---------------------------------------------------------------
    @property
    def wave_count(self) -> int:
        return len(self._by_wave)

    def wave_units(self, wave: int) -> list[UnitRecord]:
        return list(self._by_wave[wave]) if 0 <= wave < len(self._by_wave) else []

    def counts(self, wave: int | None = None) -> Counter:
        if wave is not None:
            return +self._wave_counts[wave] if 0 <= wave < len(self._wave_counts) else Counter()
        total: Counter = Counter()
        for c in self._wave_counts:
            total.update(c)
        return +total

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def touched(self) -> int:
        """Units that received a command (anything but queued/cancelled/current)."""
        return sum(1 for r in self.units.values() if r.attempts > 0)

    def progress(self) -> dict:
        c = self.counts()
        done = sum(n for s, n in c.items() if s.terminal)
        return {"rollout": self.rollout_id, "state": self.state.value, "wave": self.wave + 1,
                "waves": self.wave_count, "total": len(self.units), "done": done,
                "touched": self.touched(), "halt_reason": self.halt_reason,
                "by_state": {s.value: n for s, n in sorted(c.items(), key=lambda kv: kv[0].value)}}

    @property
    def finished(self) -> bool:
        return self.state in (RolloutState.COMPLETED, RolloutState.HALTED, RolloutState.ABORTED,
                              RolloutState.ROLLED_BACK)

    # -- control ---------------------------------------------------------------
    def control(self, event: RolloutEvent) -> RolloutState:
        before = self.state
        self.state = rollout_step(self.state, event)
        if event is RolloutEvent.ABORT and self.state is RolloutState.ABORTED:
            for u, r in self.units.items():
                if r.state is UnitState.QUEUED:
                    self._apply(u, UnitEvent.CANCEL)
        if event is RolloutEvent.RESUME and before is RolloutState.HALTED:
            self.halt_reason = None
        if event is RolloutEvent.START or event is RolloutEvent.RESUME:
            self._evaluate()
        if event is RolloutEvent.ROLLBACK and before is not RolloutState.ROLLING_BACK:
            for u, r in self.units.items():
                if r.state is UnitState.QUEUED:
                    self._apply(u, UnitEvent.CANCEL)
            self._maybe_rollback_done()
        return self.state

    def retry_failed(self) -> int:
        """Queue the failed units again (``fleet rollout resume --retry-failed``, while halted or
        paused); the rollout then walks its waves again from the earliest wave that has one.
        The command goes out with a new ``cmd_id`` (the attempt number). Returns how many."""
        if self.state not in (RolloutState.HALTED, RolloutState.PAUSED):
            raise RolloutError(f"rollout is {self.state.value}; failed units are retried from halted or paused",
                               state=self.state.value)
        first: int | None = None
        n = 0
        for u, r in self.units.items():
            if r.state is UnitState.FAILED:
                self._apply(u, UnitEvent.RETRY)
                r.error = None
                n += 1
                first = r.wave if first is None else min(first, r.wave)
        if first is not None and first < self.wave:
            self.wave = first
        return n

    # -- driving ---------------------------------------------------------------
    def due(self) -> list[tuple[Unit, str]]:
        """Commands to send now: ``(unit, "update" | "revert")``; marks them sent."""
        now = self.clock.time()
        out: list[tuple[Unit, str]] = []
        room = self.plan.max_in_flight - len(self._in_flight)
        if room <= 0:
            return out
        if self.state is RolloutState.RUNNING:
            if not self._by_wave or not self._wave_counts[self.wave][UnitState.QUEUED]:
                return out
            for r in self._by_wave[self.wave]:
                if len(out) >= room:
                    break
                if r.state is UnitState.QUEUED:
                    self._apply(r.unit, UnitEvent.SEND, now)
                    r.sent_at, r.attempts, r.reported = now, r.attempts + 1, None
                    out.append((r.unit, "update"))
        elif self.state is RolloutState.ROLLING_BACK:
            for r in self.units.values():
                if len(out) >= room:
                    break
                if r.state is UnitState.SUCCEEDED:
                    self._apply(r.unit, UnitEvent.REVERT, now)
                    r.sent_at, r.attempts, r.reported = now, r.attempts + 1, None
                    out.append((r.unit, "revert"))
        return out

    def report(self, unit: Unit, event: UnitEvent, error: str | None = None) -> None:
        """A gateway reported progress or an outcome for ``unit`` (duplicates are no-ops)."""
        if unit not in self.units:
            return  # not part of this rollout (stale result): ignore
        rec = self.units[unit]
        if rec.state is UnitState.QUEUED or rec.state is UnitState.CANCELLED:
            return  # a result for a command we never sent in this rollout
        self._apply(unit, event, error=error)
        self._confirm(rec)
        self._evaluate()

    def observe_version(self, gateway_id: str, version: str | None, *, device_id: str | None = None) -> None:
        """``gateway_id`` (or its ``device_id``) reports that it runs ``version`` (wt.health/1, wt.state/1).
        Only reports after the unit's command was sent count; a committed unit on ``target_version``
        succeeds."""
        rec = self.units.get(Unit(gateway_id, device_id))
        if rec is None or version is None or rec.sent_at is None or not rec.state.in_flight:
            return
        rec.reported = version
        if self._confirm(rec):
            self._evaluate()

    def _confirm(self, rec: UnitRecord) -> bool:
        if (rec.state is UnitState.CONFIRMING and self.target_version is not None
                and rec.reported == self.target_version):
            self._apply(rec.unit, UnitEvent.VERSION_REPORTED)
            return True
        return False

    def tick(self) -> None:
        """Time out units that stayed in flight too long (counted as failures)."""
        now = self.clock.time()
        for u in list(self._in_flight):
            r = self.units[u]
            if r.sent_at is not None and now - r.sent_at > self.plan.unit_timeout_s:
                if r.state is UnitState.CONFIRMING:
                    error = (f"committed, but did not report version {self.target_version} within "
                             f"{self.plan.unit_timeout_s:.0f}s (last reported: {r.reported or 'nothing'})")
                else:
                    error = f"no result within {self.plan.unit_timeout_s:.0f}s"
                self._apply(r.unit, UnitEvent.ERROR, now, error=error)
                if r.state is UnitState.ROLLING_BACK:
                    self._apply(r.unit, UnitEvent.ROLLED_BACK, now)
        self._evaluate()

    # -- internals -------------------------------------------------------------
    def _apply(self, unit: Unit, event: UnitEvent, now: float | None = None, *, error: str | None = None) -> None:
        rec = self.units[unit]
        new = unit_step(rec.state, event)
        if new is not rec.state:
            counts = self._wave_counts[rec.wave]
            counts[rec.state] -= 1
            counts[new] += 1
            if new.in_flight:
                self._in_flight.add(unit)
            else:
                self._in_flight.discard(unit)
            rec.state = new
            rec.updated_at = self.clock.time() if now is None else now
            if error:
                rec.error = error
            self.dirty.add(unit)

    def _evaluate(self) -> None:
        if self.state is RolloutState.ROLLING_BACK:
            self._maybe_rollback_done()
            return
        if self.state is not RolloutState.RUNNING:
            return
        while self._by_wave:
            c = self._wave_counts[self.wave]
            n = len(self._by_wave[self.wave])
            size = n or 1
            failed = c[UnitState.FAILED] + c[UnitState.ROLLING_BACK]
            if failed > self.plan.error_threshold * size:
                self.state = rollout_step(self.state, RolloutEvent.HALT)
                self.halt_reason = (f"wave {self.wave + 1}: {failed} of {n} failed, above the error "
                                    f"threshold {self.plan.error_threshold:.0%}")
                return
            if sum(k for s, k in c.items() if s.terminal) < n:
                return
            ok = c[UnitState.SUCCEEDED] + c[UnitState.CURRENT]
            if ok < self.plan.success_threshold * size:
                self.state = rollout_step(self.state, RolloutEvent.HALT)
                self.halt_reason = (f"wave {self.wave + 1}: only {ok} of {n} succeeded, below the success "
                                    f"threshold {self.plan.success_threshold:.0%}")
                return
            if self.wave + 1 >= self.wave_count:
                self.state = rollout_step(self.state, RolloutEvent.FINISH)
                return
            self.wave += 1

    def _maybe_rollback_done(self) -> None:
        c = self.counts()
        if not self._in_flight and not c[UnitState.SUCCEEDED]:
            self.state = rollout_step(self.state, RolloutEvent.ROLLBACK_DONE)
