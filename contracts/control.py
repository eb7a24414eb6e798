"""Signed control messages (``wt.signed/1``, docs/mqtt.md "Signed control messages"): one
implementation for the fleet that signs and the gateway that checks.

Everything that steers a gateway — a configuration push (``wt.config/1``) and every command
(``wt.cmd/1``: ping, test_mode, pair, ota, update, …) — travels inside an envelope signed by
the fleet's control key (ed25519)::

    {"schema": "wt.signed/1", "gateway": "gw-0001", "seq": 1732341600123456,
     "expires_at": "2026-11-23T06:10:00.000Z", "kind": "wt.cmd/1",
     "body": "{\\"schema\\":\\"wt.cmd/1\\",\\"cmd_id\\":\\"c1\\",\\"cmd\\":\\"ping\\",\\"args\\":{}}",
     "key_id": "<16 hex>", "signature": "<base64, 64 bytes>"}

The signature covers :func:`signed_bytes`: the canonical JSON (sorted keys, no spaces, ASCII)
of ``schema``, ``gateway``, ``seq``, ``expires_at``, ``kind`` and ``body``. ``body`` is the
inner payload's exact text (a string, so no canonical form of the inner JSON is needed: the
bytes that were signed are the bytes that are decoded). The target gateway, the sequence and
the expiry are inside the signature, so a message cannot be redirected to another gateway,
replayed or kept for later.

:func:`open_envelope` never raises: it returns the :class:`Opened` message or a
:class:`ControlRejected` with one reason of :data:`REASONS` (checked in this order):
``unsigned`` (a bare ``wt.cmd/1``/``wt.config/1``), ``malformed``, ``no_fleet_key`` (the
receiver has no trust anchor), ``unknown_key``, ``bad_signature``, ``other_gateway``,
``wrong_kind`` (a config on the command topic or the reverse), ``expired``,
``expiry_too_far``. ``replayed`` (``seq`` at or below the highest accepted one) is the
receiver's decision, which keeps that number durably.

Uses ``cryptography`` (ed25519); imports neither ``gateway`` nor ``fleet``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.payloads import CMD_SCHEMA, CONFIG_SCHEMA, encode_cmd, encode_config, parse_time, rfc3339

ENVELOPE_SCHEMA = "wt.signed/1"
KINDS = (CMD_SCHEMA, CONFIG_SCHEMA)

# The longest lifetime a gateway accepts (expires_at - now): a signed message that was
# withheld cannot be delivered later than this. A config push lives longer than a command
# (it is retained and waits for a gateway that is offline).
CMD_TTL_S = 3600.0
CONFIG_TTL_S = 7 * 86400.0
MAX_LIFETIME_S = 31 * 86400.0

REASONS = ("unsigned", "malformed", "no_fleet_key", "unknown_key", "bad_signature", "other_gateway", "wrong_kind",
           "expired", "expiry_too_far", "replayed")
MAX_SEQ = 2 ** 63 - 1


class ControlKeyError(ValueError):
    """A control key file cannot be used (missing, unreadable, not ed25519)."""


@dataclass(frozen=True)
class ControlRejected:
    """Why a control message was refused: ``reason`` one of :data:`REASONS`, ``detail`` for the log."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class Opened:
    """A control message whose signature, target and expiry were checked."""

    gateway: str
    seq: int
    expires_at: float          # epoch seconds
    kind: str                  # wt.cmd/1 | wt.config/1
    body: bytes                # the inner payload, exactly as signed
    key_id: str
    digest: str                # SHA-256 of the signature (hex): identifies this very message


# ---------------------------------------------------------------- keys

def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key (as for release keys)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new ed25519 control key pair."""
    priv = Ed25519PrivateKey.generate()
    return (priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()),
            public_pem(priv.public_key()))


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ControlKeyError(f"cannot read the control private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ControlKeyError("the control private key is not ed25519")
    return key


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ControlKeyError(f"cannot read the control public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ControlKeyError("the control public key is not ed25519")
    return key


def load_public_file(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    try:
        return load_public(Path(path).read_bytes())
    except OSError as exc:
        raise ControlKeyError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_private_file(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        return load_private(Path(path).read_bytes())
    except OSError as exc:
        raise ControlKeyError(f"cannot read {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- the sequence

def next_seq(last: int, now: float) -> int:
    """The sequence after ``last`` at wall time ``now``: ``max(last + 1, now in µs)``.

    Strictly increasing by construction (given the previous value, whoever keeps it: a
    database row per gateway in the fleet, a counter in a test kit). The wall-clock floor
    makes a number that a rolled-back transaction handed out unlikely to come again, and
    lets senders that keep separate counters (the fleet and a bench) interleave on one
    gateway as long as their clocks agree.
    """
    return max(int(last) + 1, int(now * 1_000_000))


# ---------------------------------------------------------------- the envelope

def signed_bytes(*, gateway: str, seq: int, expires_at: str, kind: str, body: str) -> bytes:
    """The exact bytes the signature covers."""
    return json.dumps({"schema": ENVELOPE_SCHEMA, "gateway": gateway, "seq": seq, "expires_at": expires_at,
                       "kind": kind, "body": body}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def seal(body: bytes, *, kind: str, gateway_id: str, seq: int, expires_at: float,
         key: Ed25519PrivateKey) -> bytes:
    """The ``wt.signed/1`` envelope of ``body`` (the inner ``wt.cmd/1`` / ``wt.config/1`` bytes)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
        raise ValueError(f"seq {seq!r} must be an integer in [1, 2**63-1]")
    text = body.decode("utf-8")
    exp = rfc3339(expires_at)
    sig = key.sign(signed_bytes(gateway=gateway_id, seq=seq, expires_at=exp, kind=kind, body=text))
    return json.dumps({"schema": ENVELOPE_SCHEMA, "gateway": gateway_id, "seq": seq, "expires_at": exp,
                       "kind": kind, "body": text, "key_id": key_id(key.public_key()),
                       "signature": base64.b64encode(sig).decode()},
                      sort_keys=True, separators=(",", ":")).encode()


def seal_cmd(cmd_id: str, cmd: str, args: Mapping[str, Any], *, gateway_id: str, seq: int, expires_at: float,
             key: Ed25519PrivateKey) -> bytes:
    return seal(encode_cmd(cmd_id, cmd, dict(args)), kind=CMD_SCHEMA, gateway_id=gateway_id, seq=seq,
                expires_at=expires_at, key=key)


def seal_config(*, version: int, config: Mapping[str, Any], hash: str | None, gateway_id: str, seq: int,
                expires_at: float, key: Ed25519PrivateKey) -> bytes:
    return seal(encode_config(version=version, config=config, hash=hash), kind=CONFIG_SCHEMA,
                gateway_id=gateway_id, seq=seq, expires_at=expires_at, key=key)


def _bare_schema(obj: Any) -> str | None:
    s = obj.get("schema") if isinstance(obj, dict) else None
    return s if s in KINDS else None


def open_envelope(payload: bytes, *, gateway_id: str, keys: Iterable[Ed25519PublicKey], now: float,
                  kind: str | None = None, max_lifetime_s: float = MAX_LIFETIME_S) -> Opened | ControlRejected:
    """Check one control message addressed to ``gateway_id`` at wall time ``now``. Never raises."""
    try:
        obj = json.loads(payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload)
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError, AttributeError) as exc:
        return ControlRejected("malformed", f"not UTF-8 JSON ({str(exc)[:80]})")
    if not isinstance(obj, dict):
        return ControlRejected("malformed", "not a JSON object")
    bare = _bare_schema(obj)
    if bare is not None:
        return ControlRejected("unsigned", f"a bare {bare} without the {ENVELOPE_SCHEMA} signature envelope")
    if obj.get("schema") != ENVELOPE_SCHEMA:
        return ControlRejected("malformed", f"schema {str(obj.get('schema'))[:40]!r} is not {ENVELOPE_SCHEMA}")
    gw, seq, exp, k, body = obj.get("gateway"), obj.get("seq"), obj.get("expires_at"), obj.get("kind"), obj.get("body")
    kid, sig_b64 = obj.get("key_id"), obj.get("signature")
    if not (isinstance(gw, str) and isinstance(exp, str) and isinstance(k, str) and isinstance(body, str)
            and isinstance(kid, str) and isinstance(sig_b64, str)):
        return ControlRejected("malformed", "gateway, expires_at, kind, body, key_id and signature must be strings")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
        return ControlRejected("malformed", f"seq {str(seq)[:24]} is not an integer in [1, 2**63-1]")
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        return ControlRejected("malformed", "signature is not base64")
    trusted = {key_id(pk): pk for pk in keys}
    if not trusted:
        return ControlRejected("no_fleet_key", "no fleet control key is configured ([trust] fleet_key)")
    pk = trusted.get(kid)
    if pk is None:
        return ControlRejected("unknown_key", f"signed by unknown key {kid[:16]!r}")
    try:
        pk.verify(sig, signed_bytes(gateway=gw, seq=seq, expires_at=exp, kind=k, body=body))
    except (InvalidSignature, ValueError):
        return ControlRejected("bad_signature", "the signature does not match the message")
    if gw != gateway_id:
        return ControlRejected("other_gateway", f"addressed to {gw[:64]!r}, this is {gateway_id!r}")
    if k not in KINDS or (kind is not None and k != kind):
        return ControlRejected("wrong_kind", f"a {k[:32]!r} message where {kind or ' or '.join(KINDS)} belongs")
    t_exp = parse_time(exp)
    if t_exp is None:
        return ControlRejected("malformed", f"expires_at {exp[:40]!r} is not an RFC 3339 time")
    if t_exp <= now:
        return ControlRejected("expired", f"expired at {exp} (now {rfc3339(now)})")
    if t_exp - now > max_lifetime_s:
        return ControlRejected("expiry_too_far", f"expires at {exp}, more than {max_lifetime_s:.0f} s ahead")
    try:
        raw = body.encode("utf-8")
    except UnicodeEncodeError:      # a lone surrogate (\ud800) in the JSON string
        return ControlRejected("malformed", "body is not valid UTF-8 text")
    return Opened(gw, seq, t_exp, k, raw, kid, hashlib.sha256(sig).hexdigest())


__all__ = ["CMD_TTL_S", "CONFIG_TTL_S", "ENVELOPE_SCHEMA", "KINDS", "MAX_LIFETIME_S", "MAX_SEQ", "REASONS",
           "ControlKeyError", "ControlRejected", "Opened", "generate_key", "key_id", "load_private",
           "load_private_file", "load_public", "load_public_file", "next_seq", "open_envelope", "public_pem", "seal", "seal_cmd",
           "seal_config", "signed_bytes"]
