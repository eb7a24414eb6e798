"""Reconnect backoff: capped, jittered, reset on success (randomness injected)."""
from __future__ import annotations

import random

from gateway.domain.backoff import Backoff


def test_backoff_grows_is_jittered_capped_and_resets():
    b = Backoff(initial_s=0.5, factor=2.0, cap_s=4.0, rng=random.Random(1))
    delays = [b.next_delay_s() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0.25 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert len(set(delays)) == len(delays)          # jittered: no synchronised reconnect storms
    assert max(delays) <= 4.0
    b.reset()
    assert b.next_delay_s() <= 0.5


def test_backoff_is_deterministic_with_a_seeded_rng():
    a = [Backoff(rng=random.Random(7)).next_delay_s() for _ in range(3)]
    assert a[0] == a[1] == a[2]
