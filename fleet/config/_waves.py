"""A configuration push to many gateways in waves with a halt threshold — the rollout machinery
(fleet/upgrades ``RolloutEngine``: seeded waves, error and success thresholds, timeouts)
driven by config reports instead of update results (docs/fleet-config.md "Group pushes").

A push that strands a gateway (wrong host, port, password or CA) is rolled back by the
gateway itself and reported ``rejected`` (gateway/daemon/_config_push.py); here that
report, like any rejection, a push the fleet could not version, or no report within
``timeout_s``, fails the gateway's unit. As soon as a wave's failures exceed
``error_threshold`` of the wave the push **halts**: no further gateway gets the push.

Unit events: pushed → ``send`` (downloading); the gateway's ``wt.config-applied/1`` for the
pushed version ``applied`` → ``committed`` + ``version_reported`` (succeeded);
``rejected`` (including a roll-back) → ``error`` (failed, with the gateway's reason).
Pure: ``push(gateway) -> version`` and ``reports() -> {gateway: (version, status, error)}``
are the caller's (the fleet service API in the CLI, a store and broker in tests).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from fleet.clock import Clock
from fleet.config._errors import ConfigError
from fleet.upgrades._rollout import RolloutEngine, RolloutPlan, Unit
from fleet.upgrades._states import RolloutEvent, UnitEvent

Report = tuple[int | None, str | None, str | None]        # (applied version, "applied" | "rejected", error)


def wave_plan(n: int, wave_size: int, error_threshold: float, timeout_s: float) -> RolloutPlan:
    """Waves of ``wave_size`` gateways (the last may be smaller); success needs all but the threshold."""
    if wave_size < 1:
        raise ConfigError(f"wave size {wave_size} must be at least 1", key="wave_size", value=wave_size,
                          fix="e.g. --wave-size 10")
    if not 0 <= error_threshold < 1:
        raise ConfigError(f"error threshold {error_threshold} must be a fraction in [0, 1)", key="error_threshold",
                          value=error_threshold, fix="e.g. --error-threshold 0.1 (halt when over 10 % of a wave fail)")
    k = max(1, math.ceil(n / wave_size))
    fractions = tuple(min(1.0, (i + 1) * wave_size / n) if n else 1.0 for i in range(k))
    return RolloutPlan(waves=fractions[:-1] + (1.0,), canary_min=1, error_threshold=error_threshold,
                       success_threshold=1.0 - error_threshold, max_in_flight=wave_size, unit_timeout_s=timeout_s)


@dataclass
class WaveOutcome:
    engine: RolloutEngine
    pushed: dict[str, int]                     # gateway -> version pushed

    @property
    def halted(self) -> bool:
        return self.engine.halt_reason is not None

    def rows(self) -> list[dict]:
        out = []
        for u, r in sorted(self.engine.units.items(), key=lambda kv: (kv[1].wave, kv[0].gateway_id)):
            out.append({"gateway": u.gateway_id, "wave": r.wave + 1, "state": r.state.value,
                        "version": self.pushed.get(u.gateway_id), "error": r.error})
        return out


def push_in_waves(gateways: Sequence[str], *, push: Callable[[str], int], reports: Callable[[], Mapping[str, Report]],
                  clock: Clock, wave_size: int, error_threshold: float, timeout_s: float = 300.0,
                  poll_s: float = 0.5, seed: int = 0, push_id: str = "config-push",
                  sleep: Callable[[float], None] = time.sleep,
                  on_progress: Callable[[dict], None] | None = None) -> WaveOutcome:
    """Push ``gateways`` wave by wave until done or halted; the engine says which and why."""
    plan = wave_plan(len(gateways), wave_size, error_threshold, timeout_s)
    engine = RolloutEngine.create(push_id, plan, [Unit(g) for g in gateways], clock, seed=seed)
    engine.control(RolloutEvent.START)
    pushed: dict[str, int] = {}
    while not engine.finished:
        for unit, _kind in engine.due():
            gw = unit.gateway_id
            try:
                pushed[gw] = push(gw)
            except Exception as exc:      # not versioned / not sent: this gateway fails, nothing went out
                engine.report(unit, UnitEvent.ERROR, f"not pushed: {getattr(exc, 'message', exc)}")
        got = reports()
        for gw, version in list(pushed.items()):
            rec = engine.units[Unit(gw)]
            if not rec.state.in_flight:
                continue
            v, status, error = got.get(gw, (None, None, None))
            if v != version or status is None:
                continue
            if status == "applied":
                engine.report(Unit(gw), UnitEvent.COMMITTED)
                engine.report(Unit(gw), UnitEvent.VERSION_REPORTED)
            else:
                engine.report(Unit(gw), UnitEvent.ERROR, error or "rejected")
        engine.tick()
        if on_progress is not None:
            on_progress(engine.progress())
        if not engine.finished:
            sleep(poll_s)
    return WaveOutcome(engine, pushed)
