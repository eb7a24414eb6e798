"""Bounded log volume: one rate limiter for the daemon's noisy log categories.

The daemon logs to stdout, i.e. the systemd journal, which lives on the same SD card as
the event journal. Most lines are rare, but some repeat for as long as a fault lasts: a
neighbour's sensor or a jammed radio produces rejected frames every second, an unplugged
serial adapter or an unreachable broker a reconnect attempt every few seconds. Left
alone, a week's outage writes hundreds of thousands of lines (journald rotates, but it
writes first) and buries the line that matters.

:data:`NOISY` is the table of those categories: which logger and which message template
(the unformatted ``record.msg``, so a category never depends on the values), and a budget
of lines per window. Within a window a category's first ``burst`` lines pass; the rest are
counted and dropped, and once the window is over the next log line (of any kind, or
:meth:`LogLimiter.flush` at exit) is preceded by one summary::

    log limiter: 1841 "rejected frames" lines suppressed in the last 300 s

Everything not in the table passes untouched: alarms, escalations, journal faults are
never rate-limited. Ingress already limits its reject lines per (reason, device) and
counts every reject in ``gateway status``; this limiter bounds the total across devices.
A test keeps the templates in sync with the modules that log them.

Wiring: :func:`install_log_limits` adds one :class:`LogLimiter` to the root handlers
(``configure_logging``, the daemon's logging set-up). One limiter, no module-level state.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

SUMMARY_LOGGER = "gateway.daemon.log_limits"


@dataclass(frozen=True)
class NoisyCategory:
    """A family of repetitive log lines and its budget: ``burst`` lines per ``window_s``."""

    name: str
    loggers: tuple[str, ...]       # logger names (a child logger matches its parent's entry)
    templates: tuple[str, ...]     # unformatted messages (record.msg), exact
    burst: int
    window_s: float


#: Budgets: at most ~3200 lines a day per category under a permanent fault (10 per 5 or
#: 10 minutes, plus one summary per window); ~13 000 lines, ~1.3 MB, on a day when every
#: category floods at once (gateway/tests/test_log_limits.py).
NOISY: tuple[NoisyCategory, ...] = (
    NoisyCategory("rejected frames", ("gateway.domain.ingress",),
                  ("rejected %s from %s on %s: %s%s",), burst=10, window_s=300.0),
    NoisyCategory("uplink reconnects", ("gateway.adapters.mqtt",),
                  ("mqtt route %s: %s; retrying in %.1fs", "mqtt route %s: %s"), burst=10, window_s=600.0),
    NoisyCategory("device link errors", ("gateway.serial", "gateway.adapters.transports.ble_links"),
                  ("%s: %s", "%s: %s (retry in %.0f s)", "%s: link lost (%s)"), burst=10, window_s=600.0),
    NoisyCategory("telemetry publish failures", ("gateway.domain.replay",),
                  ("event %s not published: %s",), burst=10, window_s=300.0),
    NoisyCategory("malformed platform acks", ("gateway.domain.forwarder",),
                  ("ignoring malformed platform ack on %s: %s",), burst=10, window_s=300.0),
)


@dataclass
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


class LogLimiter(logging.Filter):
    """A :class:`logging.Filter` applying :data:`NOISY` (see module doc). Thread-safe.

    ``clock`` is a monotonic seconds function (injected by tests). ``summary_logger``
    receives the "N lines suppressed" summaries (marked so the limiter lets them through).
    """

    def __init__(self, categories: tuple[NoisyCategory, ...] = NOISY, *,
                 clock: Callable[[], float] = time.monotonic, summary_logger: str = SUMMARY_LOGGER) -> None:
        super().__init__()
        self._categories = categories
        self._clock = clock
        self._summary = logging.getLogger(summary_logger)
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self.suppressed_total = 0

    def _category(self, record: logging.LogRecord) -> NoisyCategory | None:
        for cat in self._categories:
            if record.msg in cat.templates and any(
                    record.name == lg or record.name.startswith(lg + ".") for lg in cat.loggers):
                return cat
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "log_limiter_summary", False):
            return True
        decided = getattr(record, "log_limiter_verdict", None)
        if decided is not None:         # the same record at the next handler: counted once
            return bool(decided)
        verdict = self._decide(record)
        record.log_limiter_verdict = verdict
        return verdict

    def _decide(self, record: logging.LogRecord) -> bool:
        cat = self._category(record)
        with self._lock:
            now = self._clock()
            due = self._take_due(now)
            verdict = True
            if cat is not None:
                w = self._windows.get(cat.name)
                if w is None or now - w.started >= cat.window_s:
                    w = self._windows[cat.name] = _Window(now)
                if w.passed < cat.burst:
                    w.passed += 1
                else:
                    w.suppressed += 1
                    self.suppressed_total += 1
                    verdict = False
        self._emit(due)
        return verdict

    def flush(self) -> None:
        """Write the summaries of every window with suppressed lines now (e.g. at exit)."""
        with self._lock:
            due = self._take_due(None)
        self._emit(due)

    def _take_due(self, now: float | None) -> list[tuple[str, int, float]]:
        """(category, count, seconds) of ended windows (all windows if ``now`` is None) that
        suppressed lines; those windows are closed."""
        due = []
        for cat in self._categories:
            w = self._windows.get(cat.name)
            if w is None or not w.suppressed:
                continue
            span = (now if now is not None else self._clock()) - w.started
            if now is None or span >= cat.window_s:
                due.append((cat.name, w.suppressed, span))
                del self._windows[cat.name]
        return due

    def _emit(self, due: list[tuple[str, int, float]]) -> None:
        for name, n, span in due:
            self._summary.warning('log limiter: %d "%s" lines suppressed in the last %.0f s', n, name, span,
                                  extra={"log_limiter_summary": True})


def install_log_limits(logger: logging.Logger | None = None, *, limiter: LogLimiter | None = None) -> LogLimiter:
    """Add one :class:`LogLimiter` to every handler of ``logger`` (the root logger), once;
    its pending summaries are written at interpreter exit. Returns the limiter in use."""
    logger = logger if logger is not None else logging.getLogger()
    for h in logger.handlers:
        for f in h.filters:
            if isinstance(f, LogLimiter):
                return f
    limiter = limiter or LogLimiter()
    for h in logger.handlers:
        h.addFilter(limiter)
    atexit.register(limiter.flush)
    return limiter
