"""Password login with back-off: per user name and per source address, unknown names alike.

:func:`login` needs two transactions (a unit of work): the refused attempt, its audit
record and the failure count must commit although the login is refused.

Rules (:class:`LoginPolicy`): ``user_limit`` failures of one user name, or ``address_limit``
from one source address, within ``window_s`` lock that key; the lock lasts ``base_lock_s``
and doubles with every further failure up to ``max_lock_s``. While a key is locked no
password is checked at all (a guesser learns nothing and costs no scrypt); the answer is
the same for a known and an unknown user name. A successful login clears the user key
(not the address key: one user's success must not reset a spray from that address).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..clock import Clock
from ..errors import NotAuthenticated
from ..store import Transactions
from ._model import AccessRepo
from ._service import SESSION_TTL_S, AccessService

MAX_KEY_LEN = 64


class LoginThrottled(NotAuthenticated):
    """Too many failed logins for this user name or source address; ``retry_after_s``."""

    code = "login_throttled"

    def __init__(self, retry_after_s: float) -> None:
        wait = max(1, math.ceil(retry_after_s))
        super().__init__(f"too many failed logins; wait {wait} s before trying again (an admin can reset the "
                         "password if it is forgotten)", retry_after_s=wait)
        self.retry_after_s = wait


@dataclass(frozen=True)
class LoginPolicy:
    window_s: float = 900.0
    user_limit: int = 5
    address_limit: int = 20
    base_lock_s: float = 30.0
    max_lock_s: float = 900.0

    def lock_s(self, failures: int, limit: int) -> float:
        if failures < limit:
            return 0.0
        return min(self.base_lock_s * 2 ** (failures - limit), self.max_lock_s)


def _keys(name: str, source: str | None) -> list[tuple[str, str]]:
    keys = [("user", "user:" + name[:MAX_KEY_LEN].lower())]
    if source:
        keys.append(("addr", "addr:" + source[:MAX_KEY_LEN]))
    return keys


def login(transactions: Transactions[AccessRepo], clock: Clock, name: str, password: str, *,
          ttl_s: float = SESSION_TTL_S, source: str | None = None,
          policy: LoginPolicy = LoginPolicy()) -> tuple[str, float]:
    """Check the password (the attempt is audited and committed either way), then open a session.

    Raises :class:`LoginThrottled` while the user name or ``source`` address is locked, and
    ``NotAuthenticated("wrong user name or password")`` for any other refusal.
    """
    keys = _keys(name, source)
    with transactions() as repo:
        now = clock.time()
        wait = max((st.locked_until - now for _, k in keys if (st := repo.throttle(k)) and st.locked_until),
                   default=0.0)
        if wait > 0:
            ok, locked = False, True
        else:
            locked = False
            ok = AccessService(repo, clock).check_password(name, password)
            if not ok:
                repo.throttle_expire(now - policy.window_s)
                for kind, k in keys:
                    n = repo.throttle_fail(k, at=now, window_start=now - policy.window_s)
                    lock = policy.lock_s(n, policy.user_limit if kind == "user" else policy.address_limit)
                    if lock:
                        repo.throttle_lock(k, now + lock)
            else:
                repo.throttle_clear(keys[0][1])
    if locked:
        raise LoginThrottled(wait)
    if not ok:
        raise NotAuthenticated("wrong user name or password", user=name)
    with transactions() as repo:
        return AccessService(repo, clock).issue_token(name, ttl_s=ttl_s)
