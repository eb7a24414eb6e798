"""Digest authentication state of the SIP user agent: the challenges answered so far.

A 401/407 challenge (MD5, SHA-256, ``qop=auth``; :mod:`._digest`) is learnt once and then
answered pre-emptively in every later MESSAGE (next ``nc``), so an alarm does not pay a
401 round trip. Invariant: at most one answered challenge per (proxy?, realm); its ``nc``
grows by one with every request that carries it. Within one message's rounds
(``answered``), a stale or new challenge is answered once more, but a second non-stale
one for the same realm means the credentials are wrong: it is forgotten and
:class:`~._errors.SipAuthError` is raised, as for a challenge we cannot answer (no account,
no usable algorithm, a realm the account is not for).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable

from gateway.adapters.sip._config import SipAccount
from gateway.adapters.sip._digest import Challenge, authorization, choose, parse_challenge
from gateway.adapters.sip._errors import SipAuthError
from gateway.adapters.sip._message import SipResponse

__all__ = ["DigestAuth"]

#: A challenge's key: (from a proxy (407)?, realm).
AuthKey = tuple[bool, str]


@dataclass
class _AuthState:
    challenge: Challenge
    cnonce: str
    nc: int = 0


class DigestAuth:
    """See the module doc. ``where``: the URI named in errors (the proxy, else the centre);
    ``token``: a fresh random token (cnonce)."""

    def __init__(self, account: SipAccount | None, *, where: str, token: Callable[[], str],
                 stats: collections.Counter[str]) -> None:
        self.account = account
        self.where = where
        self._token = token
        self.stats = stats
        self._auth: dict[AuthKey, _AuthState] = {}

    @property
    def state(self) -> list[dict[str, object]]:
        """The digest challenges answered so far (for status): realm, algorithm, proxy, nc."""
        return [{"realm": st.challenge.realm, "algorithm": st.challenge.algorithm, "proxy": st.challenge.proxy,
                 "nc": st.nc} for st in self._auth.values()]

    def learn(self, resp: SipResponse, answered: set[AuthKey]) -> None:
        """Learn the challenge of a 401/407 so the next request answers it; raises
        :class:`SipAuthError` when it cannot or must not be answered (module doc)."""
        proxy = resp.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        offered = [c for c in (parse_challenge(v, proxy=proxy) for v in resp.headers.get_all(name)) if c]
        self.stats["challenges"] += 1
        acct = self.account
        where = self.where
        if acct is None:
            raise SipAuthError(f"{where} demands digest authentication ({resp.status}) but no account is configured",
                               target=where, status=resp.status, reason=resp.reason)
        ch = choose(offered)
        if ch is None:
            what = ", ".join(f"{c.algorithm}/qop={','.join(c.qop) or '-'}" for c in offered) or "nothing readable"
            raise SipAuthError(f"{where}: no digest challenge we can answer (offered {what}; we do MD5 and "
                               f"SHA-256 with qop=auth)", target=where, status=resp.status, reason=resp.reason)
        if acct.realm is not None and ch.realm != acct.realm:
            raise SipAuthError(f"{where} asks for realm {ch.realm!r}; the account is for {acct.realm!r}",
                               target=where, status=resp.status, reason=resp.reason)
        key = (ch.proxy, ch.realm)
        if key in answered and not ch.stale:
            self.stats["auth_refused"] += 1
            self._auth.pop(key, None)
            raise SipAuthError(f"{where} refused the credentials of {acct.username!r} for realm {ch.realm!r}",
                               target=where, status=resp.status, reason=resp.reason)
        answered.add(key)
        self._auth[key] = _AuthState(ch, cnonce=self._token())

    def headers(self, uri: str) -> list[tuple[str, str]]:
        """The Authorization / Proxy-Authorization headers of the next MESSAGE to ``uri``."""
        acct = self.account
        if acct is None:
            return []
        out = []
        for st in self._auth.values():
            st.nc += 1
            out.append((st.challenge.header_name, authorization(
                st.challenge, username=acct.username, password=acct.password, method="MESSAGE", uri=uri,
                nc=st.nc, cnonce=st.cnonce)))
        return out
