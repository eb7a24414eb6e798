"""Reconnect backoff: capped exponential with full jitter (randomness injected)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """``next_delay_s()`` = uniform(initial_s/2, min(cap_s, initial_s * factor**n)); reset on success.

    Defaults: ``initial_s`` 0.5, ``factor`` 2.0, ``cap_s`` 30.0; ``rng`` a ``random.Random``.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next_delay_s(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * (self.factor ** self._attempt))
        self._attempt += 1
        return self.rng.uniform(min(self.initial_s / 2, ceiling), ceiling)

    def reset(self) -> None:
        self._attempt = 0
