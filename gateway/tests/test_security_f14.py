"""F14 (issue 10): reject counters grew without bound (200k rotating advert identities =
34 MB) and the log rate limit was per device, so rotating identities also flooded the log.

Now: per-device counts are an LRU (at most ``max_sources`` devices, older ones folded into
an ``other`` bucket, per-reason totals exact) and reject logging has ONE global budget.
"""
from __future__ import annotations

import logging
import tracemalloc

import pytest

from gateway.codec import RejectCounters, RejectReason, Rejection, bthome, encode_advert
from gateway.domain.ingress import Ingress, RejectLog
from gateway.testing.stimuli import TEST_DEVICE as DEV, TEST_KEY as KEY

pytestmark = pytest.mark.security

N_IDENTITIES = 200_000


def _mac(i: int) -> str:
    return f"{0xC0_0000_0000 + i:012x}"


class _Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def reject_lines():
    handler = _Counting()
    logger = logging.getLogger("gateway.domain.ingress")
    old_level, logger.level = logger.level, logging.DEBUG
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.slow
def test_F14_rotating_advert_identities_keep_memory_and_log_bounded(journal, clock, reject_lines):
    """200k rotating identities: unknown devices (a configured gateway) and, with no device
    list, undecodable adverts each from a new identity. Memory growth stays under a small
    fixed bound (was ~34 MB), totals stay exact, the log writes at most the global budget
    per interval plus one summary line."""
    known = Ingress("gw", {DEV: KEY}, journal, clock, known_devices=[DEV])
    anyone = Ingress("gw", {DEV: KEY}, journal, clock, counters=known.counters)
    garbage = bytes([bthome.BTHOME_VERSION << bthome.INFO_VERSION_SHIFT | bthome.INFO_ENCRYPTED]) + b"\x01\x02"
    plain = encode_advert([(bthome.BATTERY, 80)])
    for i in range(2_000):   # warm up (interned strings, caches, first LRU fill)
        known.advert(_mac(i), plain, -70)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        base, _ = tracemalloc.get_traced_memory()
        for i in range(N_IDENTITIES // 2):
            known.advert(_mac(10_000 + i), plain, -70)
            anyone.advert(_mac(500_000 + i), garbage, -70)
            if i % 20_000 == 0:
                clock.advance(61)      # log intervals go by during the flood
        current, _ = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = current - base
    top = "\n".join(str(s) for s in after.compare_to(before, "lineno")[:5])
    assert growth < 2 * 1024 * 1024, f"grew {growth} bytes over {N_IDENTITIES} identities:\n{top}"
    counters = known.counters
    assert counters["unknown_device"] == N_IDENTITIES // 2 + 2_000           # exact
    assert counters.total == N_IDENTITIES + 2_000
    assert counters.sources_tracked <= counters.max_sources == 1024
    tails = [*range(10_000 + N_IDENTITIES // 2 - 1024, 10_000 + N_IDENTITIES // 2),
             *range(500_000 + N_IDENTITIES // 2 - 1024, 500_000 + N_IDENTITIES // 2)]
    per_device = sum(sum(counters.for_device(_mac(i)).values()) for i in tails)
    assert per_device + sum(counters.other().values()) == counters.total   # nothing lost, just folded
    # the log: 6 intervals (the flood advances the clock 5 times), two ingresses (one
    # budget each): at most 20 lines + 1 summary per interval each
    rejected = [line for line in reject_lines if "reject" in line]
    assert len(rejected) <= 2 * 6 * 21, len(rejected)
    assert any("not logged (limit 20 lines per 60 s across all sources)" in line for line in rejected)


def test_F14_reject_counters_lru_folds_into_other():
    c = RejectCounters(max_sources=3)
    for dev in ("a", "b", "c"):
        c.count(Rejection(RejectReason.REPLAY, "", dev))
    c.count(Rejection(RejectReason.REPLAY, "", "a"))        # a is now the most recent
    c.count(Rejection(RejectReason.CRC, "", "d"))           # evicts b
    c.count(Rejection(RejectReason.CRC))                    # no device: reason total only
    assert c.for_device("b") == {} and c.other() == {"replay": 1}
    assert c.for_device("a") == {"replay": 2} and c.for_device("d") == {"crc": 1}
    assert c.snapshot() == {"crc": 2, "replay": 4} and c.total == 6 and c.sources_folded == 1
    with pytest.raises(ValueError):
        RejectCounters(max_sources=0)


def test_F14_one_global_log_budget_with_suppressed_summary(clock, reject_lines):
    rl = RejectLog(clock, 60, max_lines=5)
    written = [rl(Rejection(RejectReason.UNKNOWN_DEVICE, "x", _mac(i)), "ble") for i in range(1000)]
    assert written.count(True) == 5 and written[:5] == [True] * 5
    assert len(reject_lines) == 5
    clock.advance(60)
    assert rl(Rejection(RejectReason.UNKNOWN_DEVICE, "x", _mac(5000)), "ble")
    assert reject_lines[5] == ("995 more rejections not logged (limit 5 lines per 60 s across all sources): "
                               "unknown_device 995")
    assert len(reject_lines) == 7
    assert not rl.flush()     # nothing suppressed since the summary
