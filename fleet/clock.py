"""The fleet's one clock port.

Every domain service reads the time through :class:`Clock` (epoch seconds, like
``time.time()``), so tests drive time with one fake (``fleet/tests/conftest.py``) instead of
patching ``time`` by its module path. The CLI keeps a plain callable (``cfg.clock``, which
``fleet.cli.main(clock=...)`` injects); :class:`FunctionClock` adapts it to this port.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Now, in epoch seconds."""


class SystemClock:
    """The wall clock."""

    def time(self) -> float:
        return time.time()


@dataclass(frozen=True)
class FunctionClock:
    """A ``() -> float`` function (the CLI's ``cfg.clock``) as a :class:`Clock`."""

    fn: Callable[[], float]

    def time(self) -> float:
        return self.fn()


@dataclass(frozen=True)
class FixedClock:
    """Always the same instant: one operation stamped with a caller-given ``at``."""

    at: float

    def time(self) -> float:
        return self.at


__all__ = ["Clock", "FixedClock", "FunctionClock", "SystemClock"]
