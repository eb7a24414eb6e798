"""Waiting for a condition in tests and benches, on real time (never on an injected clock).

- :func:`wait_until`: poll from a plain thread (HIL benches, tests that drive a
  :class:`~gateway.testing.platform.LoopThread`).
- :func:`async_wait_until`: the same on the running event loop (tests of the daemon, the
  BLE stack, serial links), yielding to the loop between polls.
- :func:`run_async`: ``asyncio.run`` a scenario with an overall time limit, so a hung
  scenario fails with a timeout instead of hanging the suite.

Both waits return the predicate's first truthy value and raise ``AssertionError`` naming
``what`` (or the predicate's source) when it is not reached within ``timeout_s``.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")


def _describe(pred: Callable[[], Any], what: str) -> str:
    if what:
        return what
    try:
        return inspect.getsource(pred).strip()
    except (OSError, TypeError):
        return repr(pred)


def wait_until(pred: Callable[[], T], timeout_s: float, what: str = "", step_s: float = 0.02) -> T:
    """Poll ``pred`` every ``step_s`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {_describe(pred, what)}")
        time.sleep(step_s)


async def async_wait_until(pred: Callable[[], T], timeout_s: float = 30.0, what: str = "", *,
                           step_s: float = 0.02, before: Callable[[], Any] | None = None) -> T:
    """Poll ``pred`` on the event loop; ``before`` runs ahead of every poll (pump a fake device)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if before is not None:
            before()
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {_describe(pred, what)}")
        await asyncio.sleep(step_s)


def run_async(scenario: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
    """``asyncio.run(scenario())``, failing with ``TimeoutError`` after ``timeout_s``."""
    async def guarded() -> T:
        return await asyncio.wait_for(scenario(), timeout_s)

    return asyncio.run(guarded())


__all__ = ["async_wait_until", "run_async", "wait_until"]
