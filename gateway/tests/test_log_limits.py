"""The daemon's log limiter: noisy categories are rate-limited and summarised, nothing else is."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from gateway.daemon._logging import NOISY, LogLimiter, install_log_limits

ROOT = Path(__file__).resolve().parents[2]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def logged():
    """A private logger tree ('limtest.*' is not the daemon's) whose lines are captured,
    with a limiter on its handler driven by a hand-moved clock."""
    now = [100.0]
    cap = _Capture()
    root = logging.getLogger("limtest")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    root.addHandler(cap)
    categories = tuple(type(c)(c.name, tuple("limtest." + lg for lg in c.loggers), c.templates, c.burst, c.window_s)
                       for c in NOISY)
    limiter = LogLimiter(categories, clock=lambda: now[0], summary_logger="limtest.summary")
    cap.addFilter(limiter)
    yield root, cap, limiter, now
    root.removeHandler(cap)


def reject(root: logging.Logger, i: int) -> None:
    logging.getLogger(root.name + ".gateway.domain.ingress").warning(
        "rejected %s from %s on %s: %s%s", "unknown_device", f"dev{i:04d}", "ble", "not configured", "")


def test_noisy_category_is_cut_at_its_burst_and_summarised_after_the_window(logged):
    root, cap, limiter, now = logged
    for i in range(500):                              # a flood from 500 different neighbours' sensors
        reject(root, i)
        now[0] += 0.5                                 # 250 s
    assert len(cap.lines) == 10                       # the category's burst per 300 s
    assert limiter.suppressed_total == 490
    now[0] += 60                                      # the window is over; the next line brings the summary
    logging.getLogger("limtest.gateway.daemon").info("gateway gw-1 running")
    assert cap.lines[10] == 'limtest.summary: log limiter: 490 "rejected frames" lines suppressed in the last 310 s'
    assert cap.lines[11].endswith("gateway gw-1 running")
    reject(root, 9999)                                # a new window: passes again
    assert cap.lines[-1].endswith("dev9999 on ble: not configured")


def test_a_day_of_flooding_in_every_category_stays_bounded(logged):
    root, cap, limiter, now = logged
    lines = [(c, t) for c in NOISY for t in c.templates]
    for _ in range(24 * 3600 // 5):                   # every noisy message every 5 s, for a day
        for cat, template in lines:
            args = [1.0 if spec.endswith(("f", "d")) else "x" for spec in re.findall(r"%[-0-9.]*[sdf]", template)]
            logging.getLogger("limtest." + cat.loggers[0]).warning(template, *args)
        now[0] += 5
    written = sum(len(line) + 40 for line in cap.lines)   # + timestamp, level
    # 7 templates x 17280 = 120 960 lines offered; ~13 000 written (10 per window and
    # category + one summary per window), ~1.3 MB: the worst day if everything floods at once
    assert len(cap.lines) < 13_000 and written < 1_500_000, (len(cap.lines), written)


def test_a_full_day_of_reconnects_stays_bounded(logged):
    root, cap, limiter, now = logged
    mqtt = logging.getLogger("limtest.gateway.adapters.mqtt")
    for _ in range(24 * 3600 // 5):                   # a day's outage, a retry every 5 s
        mqtt.warning("mqtt route %s: %s; retrying in %.1fs", "primary", "connection refused", 5.0)
        now[0] += 5
    # 10 lines per 10 minutes plus one summary per window: 144 windows
    assert len(cap.lines) <= 144 * 11 and len(cap.lines) < 17280 // 10
    summaries = [s for s in cap.lines if "lines suppressed" in s]
    assert summaries and all('"uplink reconnects"' in s for s in summaries)


def test_a_line_seen_by_two_handlers_counts_once(logged):
    root, cap, limiter, now = logged
    second = _Capture()
    second.addFilter(limiter)
    root.addHandler(second)
    try:
        for i in range(30):
            reject(root, i)
    finally:
        root.removeHandler(second)
    assert len(cap.lines) == len(second.lines) == 10 and limiter.suppressed_total == 20


def test_other_lines_are_never_limited(logged):
    root, cap, limiter, now = logged
    fwd = logging.getLogger("limtest.gateway.domain.forwarder")
    for i in range(300):
        fwd.warning("alarm %s not acknowledged by the platform (step %d): re-sending on all routes", f"a{i}", 1)
        logging.getLogger("limtest.gateway.serial").error("%s: %s %s", "x", "other", "template")
    assert len(cap.lines) == 600 and limiter.suppressed_total == 0


def test_flush_writes_pending_summaries(logged):
    root, cap, limiter, now = logged
    ser = logging.getLogger("limtest.gateway.serial")
    for _ in range(15):
        ser.warning("%s: %s", "serial:/dev/ttyUSB0", "open failed: [Errno 2] No such file or directory")
    assert len(cap.lines) == 10
    now[0] += 3
    limiter.flush()                                   # at exit: what was suppressed is still said
    assert cap.lines[-1] == 'limtest.summary: log limiter: 5 "device link errors" lines suppressed in the last 3 s'
    limiter.flush()
    assert len(cap.lines) == 11                       # said once


def test_install_is_idempotent_and_daemon_logging_set_up_installs_it():
    lg = logging.Logger("limtest-install")          # not in the logging registry
    h1, h2 = _Capture(), _Capture()
    lg.addHandler(h1)
    lg.addHandler(h2)
    first = install_log_limits(lg)
    assert install_log_limits(lg) is first and h1.filters == [first] and h2.filters == [first]
    lg.warning("%s: %s", "serial:/dev/ttyUSB1", "open failed")   # not a daemon logger name: passes
    assert len(h1.lines) == len(h2.lines) == 1
    src = (ROOT / "gateway" / "daemon" / "_bootstrap.py").read_text()
    body = src[src.index("def configure_logging"):]
    assert "install_log_limits()" in body


def test_every_template_is_still_logged_by_its_module():
    """A renamed message would silently escape the limiter: each template must appear
    verbatim in a gateway module."""
    sources = "\n".join(p.read_text() for p in (ROOT / "gateway").rglob("*.py")
                        if "tests" not in p.parts and p.name != "_logging.py")
    missing = [(c.name, t) for c in NOISY for t in c.templates if f'"{t}"' not in sources]
    assert missing == []
