"""The fake clocks of the gateway test kit: both implement the domain's Clock port.

:class:`gateway.domain.ports.Clock` has two readings and nothing else (no sleep: the
daemon waits on its event loop, which a test drives itself):

- ``time()``: wall-clock epoch seconds. It may jump, in either direction (NTP steps it).
- ``monotonic()``: seconds for timeouts and intervals. It never goes back.

Two fakes, because tests need two kinds of time:

- :class:`FakeClock` stands still until the test moves it (``advance``/``set``). For unit
  tests of the domain: rules, ingress, the forwarder, the BLE watchdog.
- :class:`OffsetClock` runs at real speed and can jump forward ("31 minutes later" in
  one call). For whole gateways on a real event loop: the demo, HIL care scenarios.

Use these; do not write another clock class in a test file.
"""
from __future__ import annotations

import threading
import time as _time

DEFAULT_EPOCH = 1_790_000_000.0    # 2026-09-21T14:13:20Z: a fixed, recent wall time
DEFAULT_MONOTONIC = 1000.0         # far from 0, so "monotonic minus a timeout" stays positive


class FakeClock:
    """A clock that stands still until the test moves it.

    ``t`` (wall) and ``mono`` (monotonic) are plain attributes a test may read.
    ``advance(s)`` moves both together (time passes); ``set(t=..., mono=...)`` puts one or
    both at an absolute reading (a wall-clock step; monotonic only forward).
    """

    def __init__(self, t: float = DEFAULT_EPOCH, mono: float = DEFAULT_MONOTONIC) -> None:
        self.t = float(t)
        self.mono = float(mono)

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        """``seconds`` pass: wall and monotonic time both move forward by it."""
        if seconds < 0:
            raise ValueError(f"advance({seconds}): time does not pass backwards; use set(t=...) for a wall step")
        self.t += seconds
        self.mono += seconds

    def set(self, t: float | None = None, *, mono: float | None = None) -> None:
        """Put the wall clock at ``t`` (any direction) and/or the monotonic clock at ``mono``."""
        if mono is not None:
            if mono < self.mono:
                raise ValueError(f"set(mono={mono}): monotonic time never goes back (now {self.mono})")
            self.mono = float(mono)
        if t is not None:
            self.t = float(t)

    def __repr__(self) -> str:
        return f"FakeClock(t={self.t!r}, mono={self.mono!r})"


class OffsetClock:
    """Real time plus an offset the test (or the demo script) moves forward.

    Both readings run at real speed. ``start_epoch`` sets where wall time starts (default:
    now). ``advance(s)`` jumps both ahead by ``s``; with ``monotonic=False`` only wall time
    jumps (timeouts and device supervision then see no gap). Thread-safe: a gateway may
    read it from its loop thread while the test advances it from another.
    """

    def __init__(self, start_epoch: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0 if start_epoch is None else start_epoch - _time.time()
        self._mono_offset = 0.0

    def time(self) -> float:
        with self._lock:
            return _time.time() + self._offset

    def monotonic(self) -> float:
        with self._lock:
            return _time.monotonic() + self._mono_offset

    def advance(self, seconds: float, *, monotonic: bool = True) -> None:
        if seconds < 0:
            raise ValueError(f"advance({seconds}): the clock only jumps forward")
        with self._lock:
            self._offset += seconds
            if monotonic:
                self._mono_offset += seconds


__all__ = ["DEFAULT_EPOCH", "DEFAULT_MONOTONIC", "FakeClock", "OffsetClock"]
