"""The small secrets of enrolment: one-time codes and the gateway's broker password hash.

* A code is 16 characters of Crockford base32 (80 random bits) in four groups,
  ``K7QF-3MZP-XW2D-9RTA``: typed by a technician, so case, dashes, spaces and the look-alikes
  O/0 and I/L/1 do not matter. Stored as SHA-256 only; shown once.
* The broker password is 32 random bytes (base64url), handed to the gateway once at
  redemption; the fleet keeps only its Mosquitto password-file hash (``$7$``: PBKDF2-SHA512,
  101 iterations, 12-byte salt — what ``mosquitto_passwd`` writes, checked against a real
  Mosquitto in fleet/tests/test_enrolment_broker.py).
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 16
_LOOKALIKE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(chars[i:i + 4] for i in range(0, CODE_CHARS, 4))


def normalise(code: str) -> str | None:
    """The code's 16 characters, or None if it cannot be a code."""
    s = "".join(code.split()).replace("-", "").upper().translate(_LOOKALIKE)
    return s if len(s) == CODE_CHARS and all(c in ALPHABET for c in s) else None


def code_hash(code: str) -> str:
    n = normalise(code)
    return hashlib.sha256((n or "").encode()).hexdigest()


def new_password() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    salt = os.urandom(12) if salt is None else salt
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"
