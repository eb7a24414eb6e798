"""Password hashing (scrypt), the password rule, and bearer-token hashing.

:func:`verify_password` does the same work whatever it is given: a user without a password,
an unknown user (``stored=None``) and a malformed hash are checked against a dummy hash, so
the time a login takes does not tell whether the user name exists.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

from ..errors import ValidationError

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024      # scrypt cost grows with the input: refuse novels before hashing


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash nobody knows the password of (computed once per process)."""
    return hash_password(base64.b64encode(os.urandom(24)).decode())


def _parse(stored: str | None) -> tuple[bytes, bytes] | None:
    if not stored or not stored.startswith("scrypt$") or stored.count("$") != 2:
        return None
    _, salt_b64, digest_b64 = stored.split("$")
    try:
        return base64.b64decode(salt_b64, validate=True), base64.b64decode(digest_b64, validate=True)
    except ValueError:
        return None


def verify_password(password: str, stored: str | None) -> bool:
    """True if ``password`` matches ``stored``. Runs scrypt exactly once in every case."""
    parsed = _parse(stored)
    usable = parsed is not None
    salt, want = parsed if parsed is not None else _parse(_dummy_hash())  # type: ignore[misc]
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, want) and usable


def check_password_rule(name: str, password: str | None, *, field: str = "password") -> str:
    """The password rule for new passwords: given, 8..1024 characters, not the user name."""
    if not password:
        raise ValidationError(f"a password is required for {name!r}; give one of at least {MIN_PASSWORD_LEN} "
                              "characters", field=field)
    if len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(f"the password is too short ({len(password)} characters); use at least "
                              f"{MIN_PASSWORD_LEN}, a passphrase of a few words is easiest", field=field)
    if len(password) > MAX_PASSWORD_LEN:
        raise ValidationError(f"the password is longer than {MAX_PASSWORD_LEN} characters; use a shorter one",
                              field=field)
    if password.strip().lower() == name.lower():
        raise ValidationError("the password must not be the user name; choose another", field=field)
    return password


def token_hash(token: str) -> str:
    """Only this hash of a bearer token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
