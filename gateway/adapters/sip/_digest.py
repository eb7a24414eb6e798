"""SIP digest authentication, client side (RFC 3261 §22, RFC 7616 / RFC 8760).

Algorithms: SHA-256 and MD5 (and their ``-sess`` forms); ``qop=auth`` (or no qop, the
RFC 2069 form old servers still send). ``auth-int`` only is refused (we would have to
hash the body into every retry; no centre we know asks for it). When a server offers
several challenges (RFC 8760 lets it offer SHA-256 and MD5 side by side) the strongest
usable one wins. Parsing never raises: a challenge we cannot read is None.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

_ALGORITHMS = {"SHA-256": "sha256", "SHA-256-SESS": "sha256", "MD5": "md5", "MD5-SESS": "md5"}
#: preference order, strongest first
PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"          # upper case, one of PREFERENCE
    qop: tuple[str, ...] = ()       # offered qop values, lower case
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False             # from Proxy-Authenticate (407), answered in Proxy-Authorization

    @property
    def usable(self) -> bool:
        return self.algorithm in _ALGORITHMS and (not self.qop or "auth" in self.qop)

    @property
    def header_name(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"


def _auth_params(text: str) -> dict[str, str] | None:
    """``k=v, k="quoted \\" v", …`` → dict (keys lower case). None on a syntax error."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and (text[j].isalnum() or text[j] in "-_."):
            j += 1
        key = text[i:j].lower()
        if not key:
            return None
        while j < n and text[j] in " \t":
            j += 1
        if j >= n or text[j] != "=":
            return None
        j += 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == '"':
            j += 1
            val = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                val.append(text[j])
                j += 1
            if j >= n:
                return None
            value = "".join(val)
            j += 1
        else:
            k = j
            while j < n and text[j] not in " \t,":
                j += 1
            value = text[k:j]
        if len(out) >= 32:
            return None
        out[key] = value
        i = j
    return out


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge | None:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` value. Never raises."""
    if not isinstance(value, str) or len(value) > 2048:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = _auth_params(rest)
    if params is None or "realm" not in params or "nonce" not in params:
        return None
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(realm=params["realm"], nonce=params["nonce"],
                     algorithm=params.get("algorithm", "MD5").strip().upper() or "MD5",
                     qop=qop, opaque=params.get("opaque"), stale=params.get("stale", "").lower() == "true",
                     proxy=proxy)


def choose(challenges: list[Challenge]) -> Challenge | None:
    usable = [c for c in challenges if c.usable]
    if not usable:
        return None
    return min(usable, key=lambda c: PREFERENCE.index(c.algorithm))


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(_ALGORITHMS[algorithm], text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def digest_response(ch: Challenge, *, username: str, password: str, method: str, uri: str,
                    nc: int = 1, cnonce: str = "") -> str:
    """The ``response`` value (hex)."""
    alg = ch.algorithm
    ha1 = _h(alg, f"{username}:{ch.realm}:{password}")
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{ch.nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    if "auth" in ch.qop:
        return _h(alg, f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(alg, f"{ha1}:{ch.nonce}:{ha2}")


def authorization(ch: Challenge, *, username: str, password: str, method: str, uri: str,
                  nc: int, cnonce: str) -> str:
    """The value of the ``Authorization`` / ``Proxy-Authorization`` header."""
    if not ch.usable:
        raise ValueError(f"challenge with algorithm {ch.algorithm} / qop {ch.qop} cannot be answered")
    resp = digest_response(ch, username=username, password=password, method=method, uri=uri, nc=nc, cnonce=cnonce)
    parts = [f"username={_quote(username)}", f"realm={_quote(ch.realm)}", f"nonce={_quote(ch.nonce)}",
             f"uri={_quote(uri)}", f"response={_quote(resp)}", f"algorithm={ch.algorithm}"]
    if "auth" in ch.qop:
        parts += [f"cnonce={_quote(cnonce)}", "qop=auth", f"nc={nc:08x}"]
    elif ch.algorithm.endswith("-SESS"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    return "Digest " + ", ".join(parts)
