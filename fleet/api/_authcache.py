"""Verified bearer tokens of one worker process, for a few seconds (``FLEET_AUTH_CACHE_S``).

Checking a token costs a database transaction (session or API token, user, scope) and a hop
to a worker thread; a client sending many requests with one token would pay it on every
request. :class:`AuthCache` remembers a token that checked out, for at most ``ttl_s`` seconds
(default 5) and never past the token's own expiry:

* **keyed by the token's SHA-256** (as the database stores it), never the token itself;
* **revocation** (logout, ``DELETE /tokens/{id}``, a password reset, deactivation, a role or
  scope change) takes effect at once in the worker that handled it — every committed write
  transaction of a request clears the cache — and within ``ttl_s`` in the other workers and
  for changes made outside the service (the CLI on the database);
* a lookup that started before a clear is not stored (generation check), so a check that
  raced a revocation cannot put the revoked token back;
* refused tokens are never cached (each refusal is checked against the database);
* bounded: at most ``max_entries`` tokens; the oldest entry goes first.

``ttl_s = 0`` turns it off (every request checks the database, as before).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Callable

from ..access import Actor

MAX_ENTRIES = 4096


def token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AuthCache:
    def __init__(self, ttl_s: float, now: Callable[[], float], *, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self._now = now
        self._max = max_entries
        self._entries: dict[bytes, tuple[Actor, float]] = {}     # key -> (actor, valid until)
        self._lock = threading.Lock()
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: bytes) -> Actor | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        actor, until = hit
        if self._now() < until:
            return actor
        with self._lock:
            if self._entries.get(key) is hit:
                del self._entries[key]
        return None

    def put(self, key: bytes, actor: Actor, expires_at: float | None, generation: int) -> None:
        """Remember ``actor`` for ``key`` unless the cache was cleared since ``generation`` was read."""
        if not self.enabled:
            return
        until = self._now() + self.ttl_s
        if expires_at is not None:
            until = min(until, expires_at)
        with self._lock:
            if generation != self.generation:
                return
            if key not in self._entries and len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (actor, until)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries = {}

    def __len__(self) -> int:
        return len(self._entries)
