"""Signed release manifests (``wt.release/1``, docs/upgrades.md): one implementation for both sides.

The fleet signs (``fleet release sign``) and checks a release when it is stored; the gateway
checks it again before it flashes a sensor or switches its own A/B slot. Both use this
module, so the canonical form that is signed and the form that is verified cannot drift.

The signature is ed25519 over the *canonical* manifest JSON (sorted keys, no spaces),
which carries the artifact's size and SHA-256: one check proves both the publisher and the
bytes. Verification order: trusted key -> signature -> size -> hash; the first failure
raises :class:`ReleaseRejected` with a machine-readable ``reason``:

``malformed``, ``no_trusted_key``, ``unknown_key``, ``bad_signature``, ``size_mismatch``,
``hash_mismatch`` (and ``bad_key``, ``bad_version`` for the signing side). The signature
alone (:func:`verify_signature`) can be checked before the artifact is fetched; the
artifact against the signed size and hash (:func:`check_artifact`) once it is in memory.

Where it may go (:func:`check_install`, the receiving unit's decision): ``wrong_target``
(a sensor firmware for the gateway or the reverse), ``wrong_role`` (a firmware for another
sensor role), ``downgrade``: a version below the highest the unit has installed (its
*floor*, kept durably by the unit) is refused unless the fleet's signed command says it
is a rollout rollback; a release whose signed ``security_counter`` is below the floor's
is refused always (a release that fixes a vulnerability raises the counter, so no
rollback can bring the hole back). ``security_counter`` is optional in the manifest (0
when absent) and signed when present.

The exception states *what* is wrong; each side adds *how to fix it* in its own words (the
fleet names its CLI, the gateway its ``[upgrades] trusted_keys`` setting).

Uses the ``cryptography`` package (ed25519); imports neither ``gateway`` nor ``fleet``.
"""
from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.payloads import Command

MANIFEST_SCHEMA = "wt.release/1"
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")

REASONS = ("malformed", "no_trusted_key", "unknown_key", "bad_signature", "size_mismatch", "hash_mismatch",
           "bad_key", "bad_version", "wrong_target", "wrong_role", "downgrade")


class ReleaseRejected(ValueError):
    """A release (or a key) is not acceptable. ``reason`` is one of :data:`REASONS`;
    ``problem`` says what is wrong, without a fix (the caller knows its own remedy)."""

    def __init__(self, problem: str, *, reason: str, key_id: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.reason = reason
        self.key_id = key_id


class Target(str, enum.Enum):
    """What a release updates: the gateway software or one sensor firmware role.

    A ``Target`` *is* its wire string (``Target.FW_BED == "fw-bed"``); ``str()``, ``repr()``
    and JSON all give that string, so messages read ``release target 'fw-bed'``.
    """

    GATEWAY = "gateway"
    FW_BUTTON = "fw-button"
    FW_FALL = "fw-fall"
    FW_BED = "fw-bed"
    FW_DOOR = "fw-door"
    FW_MOTION = "fw-motion"
    FW_GPS = "fw-gps"
    FW_DISPENSER = "fw-dispenser"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def role(self) -> str | None:
        return None if self is Target.GATEWAY else self.value[3:]


def parse_version(text: str) -> tuple[int, int, int]:
    """``MAJOR.MINOR.PATCH`` (with an optional ``-pre``/``+build`` tail) -> its three numbers."""
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise ReleaseRejected(f"version {text!r} is not MAJOR.MINOR.PATCH", reason="bad_version")
    a, b, c = re.split(r"[.+-]", text)[:3]
    return int(a), int(b), int(c)


@dataclass(frozen=True)
class Manifest:
    """What is signed. ``target`` accepts the wire string and is stored as a :class:`Target`."""

    target: Target
    version: str
    artifact: str          # file name
    size: int
    sha256: str            # hex
    security_counter: int | None = None    # signed when present; None = 0 (a manifest from before counters)

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            object.__setattr__(self, "target", Target(self.target))   # ValueError for an unknown target
        sc = self.security_counter
        if sc is not None and (isinstance(sc, bool) or not isinstance(sc, int) or not 0 <= sc < 2 ** 31):
            raise ValueError(f"security_counter {sc!r} is not an integer in [0, 2**31)")

    @property
    def counter(self) -> int:
        return self.security_counter or 0

    def as_dict(self) -> dict[str, Any]:
        d = {"schema": MANIFEST_SCHEMA, "target": self.target.value, "version": self.version,
             "artifact": self.artifact, "size": self.size, "sha256": self.sha256}
        if self.security_counter is not None:
            d["security_counter"] = self.security_counter
        return d

    def canonical(self) -> bytes:
        """The exact bytes the signature covers."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def release_id(self) -> str:
        return f"{self.target.value}@{self.version}"


@dataclass(frozen=True)
class SignedManifest:
    """A manifest, the id of the key that signed it and the 64-byte signature.

    Wire form (the ``.sig`` file, and the ``release`` object of a ``wt.cmd/1``)::

        {"manifest": {...}, "key_id": "<16 hex>", "signature": "<base64>"}
    """

    manifest: Manifest
    key_id: str
    signature: bytes

    def as_obj(self) -> dict[str, Any]:
        return {"manifest": self.manifest.as_dict(), "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode()}

    def to_json(self) -> str:
        return json.dumps(self.as_obj(), indent=2, sort_keys=True)

    @classmethod
    def from_obj(cls, doc: Any) -> "SignedManifest":
        """From a parsed object; :class:`ReleaseRejected` (``malformed``) if it is not one."""
        try:
            m = doc["manifest"]
            if m.get("schema") != MANIFEST_SCHEMA:
                raise ValueError(f"manifest schema {m.get('schema')!r} is not {MANIFEST_SCHEMA}")
            sc = m.get("security_counter")
            if sc is not None and (isinstance(sc, bool) or not isinstance(sc, int)):
                raise ValueError(f"security_counter {sc!r} is not an integer")
            manifest = Manifest(Target(m["target"]), str(m["version"]), str(m["artifact"]), int(m["size"]),
                                str(m["sha256"]), sc)
            parse_version(manifest.version)
            sig = base64.b64decode(doc["signature"], validate=True)
            return cls(manifest, str(doc["key_id"]), sig)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ReleaseRejected(f"not a {MANIFEST_SCHEMA} signed manifest ({exc})", reason="malformed") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "SignedManifest":
        try:
            doc = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ReleaseRejected(f"not a {MANIFEST_SCHEMA} signed manifest ({exc})", reason="malformed") from None
        return cls.from_obj(doc)


# ---------------------------------------------------------------- keys

def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new ed25519 key pair."""
    priv = Ed25519PrivateKey.generate()
    return (priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()),
            priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseRejected(f"cannot read the private key ({exc})", reason="bad_key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseRejected("the private key is not ed25519", reason="bad_key")
    return key


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ReleaseRejected(f"cannot read the public key ({exc})", reason="bad_key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseRejected("the public key is not ed25519", reason="bad_key")
    return key


def load_key_spec(spec: str) -> Ed25519PublicKey:
    """A public key given as PEM text, a PEM file path, or the raw 32-byte key in base64 or hex."""
    text = spec.strip()
    raw: bytes | None = None
    if not text.startswith("-----BEGIN"):
        try:
            raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raw = None
        if raw is not None and len(raw) != 32:
            raw = None
    key: object
    try:
        if raw is not None:
            key = Ed25519PublicKey.from_public_bytes(raw)
        else:
            pem = text.encode() if text.startswith("-----BEGIN") else Path(text).read_bytes()
            key = serialization.load_pem_public_key(pem)
    except (OSError, ValueError, TypeError) as exc:
        raise ReleaseRejected(f"key {spec[:40]!r} unreadable ({exc})", reason="bad_key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseRejected(f"key {spec[:40]!r} is not ed25519", reason="bad_key")
    return key


# ---------------------------------------------------------------- sign / verify

def sign(artifact: bytes, name: str, target: Target | str, version: str, private_pem: bytes, *,
         security_counter: int | None = None) -> SignedManifest:
    """Sign ``artifact`` (file ``name``) as release ``target@version`` (with a security counter if given)."""
    parse_version(version)
    key = load_private(private_pem)
    m = Manifest(Target(target), version, name, len(artifact), hashlib.sha256(artifact).hexdigest(), security_counter)
    return SignedManifest(m, key_id(key.public_key()), key.sign(m.canonical()))


def verify(artifact: bytes, signed: SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """The manifest if ``artifact`` is exactly what a trusted key signed; :class:`ReleaseRejected` otherwise."""
    return check_artifact(artifact, verify_signature(signed, trusted))


def verify_signature(signed: SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """The manifest if a trusted key signed it (before the artifact is fetched); :class:`ReleaseRejected` otherwise."""
    keys = {key_id(k): k for k in trusted}
    if not keys:
        raise ReleaseRejected("no trusted release key", reason="no_trusted_key")
    key = keys.get(signed.key_id)
    if key is None:
        raise ReleaseRejected(f"signed by unknown key {signed.key_id}", reason="unknown_key", key_id=signed.key_id)
    m = signed.manifest
    try:
        key.verify(signed.signature, m.canonical())
    except InvalidSignature:
        raise ReleaseRejected(f"bad signature on {m.release_id}: the manifest was altered or signed with "
                              "another key", reason="bad_signature") from None
    return m


def check_artifact(artifact: bytes, m: Manifest) -> Manifest:
    """``m`` if ``artifact`` has its signed size and SHA-256; :class:`ReleaseRejected` otherwise."""
    if len(artifact) != m.size:
        raise ReleaseRejected(f"artifact is {len(artifact)} bytes but the signed manifest says {m.size}: "
                              "the file is truncated or tampered", reason="size_mismatch")
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != m.sha256:
        raise ReleaseRejected(f"artifact SHA-256 {digest[:16]}… does not match the signed {m.sha256[:16]}…: "
                              "the file was tampered with", reason="hash_mismatch")
    return m


# ---------------------------------------------------------------- may it go on this unit?

@dataclass(frozen=True)
class Floor:
    """The highest release a unit has installed (kept durably by the unit): version and security counter."""

    version: str | None = None
    counter: int = 0

    def raised(self, m: Manifest) -> "Floor":
        v = self.version
        if v is None or _vkey(m.version) > _vkey(v):
            v = m.version
        return Floor(v, max(self.counter, m.counter))


def _vkey(v: str) -> tuple[int, int, int]:
    try:
        return parse_version(v)
    except ReleaseRejected:
        return (-1, -1, -1)


def check_install(m: Manifest, *, target: Target | str, floor: Floor, rollback: bool = False) -> None:
    """May ``m`` go on a unit of ``target`` (``gateway`` or the sensor's ``fw-<role>``) whose
    highest installed release is ``floor``? :class:`ReleaseRejected` (``wrong_target``,
    ``wrong_role``, ``downgrade``) if not. ``rollback``: the fleet's signed command reinstalls
    an older release (a rollout rollback) — allowed below the floor's version, never below
    its security counter."""
    want = Target(target)
    if m.target is not want:
        if m.target is not Target.GATEWAY and want is not Target.GATEWAY:
            raise ReleaseRejected(f"release {m.release_id} is firmware for {m.target.role!r} sensors; this device "
                                  f"is a {want.role!r}", reason="wrong_role")
        raise ReleaseRejected(f"release {m.release_id} is for {m.target}, not for {want}", reason="wrong_target")
    if m.counter < floor.counter:
        raise ReleaseRejected(f"release {m.release_id} has security counter {m.counter}, below {floor.counter} "
                              f"of the highest release installed ({floor.version}): a downgrade past a security "
                              "fix is never installed", reason="downgrade")
    if floor.version is not None and _vkey(m.version) < _vkey(floor.version) and not rollback:
        raise ReleaseRejected(f"release {m.release_id} is older than {floor.version}, the highest installed: "
                              "a downgrade is refused (a rollout rollback may reinstall it)", reason="downgrade")


# ---------------------------------------------------------------- the command that installs a release

def install_cmd_id(deployment: str, gateway_id: str, device: str | None = None, *, rollback: bool = False) -> str:
    """Deterministic: the same deployment to the same unit is the same ``cmd_id``, which the gateway
    answers with the result it already has instead of installing again."""
    unit = gateway_id if device is None else f"{gateway_id}/{device}"
    return f"{deployment}:{unit}:{'r' if rollback else 'u'}"


def install_command(signed: SignedManifest, *, deployment: str, gateway_id: str, artifact_url: str,
                    device: str | None = None, artifact: bytes | None = None,
                    rollback: bool = False) -> Command:
    """The ``wt.cmd/1`` that installs ``signed`` (docs/upgrades.md); encode it with
    ``contracts.payloads.encode_cmd(*command)`` and publish it on the gateway's ``cmd`` topic.

    ``update`` for the gateway software (A/B slots), ``ota`` for sensor firmware the gateway
    relays to ``device``. ``args.release`` is :meth:`SignedManifest.as_obj`, which the gateway
    checks with :func:`verify` before anything is written; ``artifact`` goes inline
    (``artifact_b64``) when given, otherwise the gateway fetches ``artifact_url``.
    """
    name = "update" if signed.manifest.target is Target.GATEWAY else "ota"
    args: dict[str, Any] = {"deployment": deployment, "device": device, "release": signed.as_obj(),
                            "artifact_url": artifact_url, "rollback": rollback}
    if artifact is not None:
        args["artifact_b64"] = base64.b64encode(artifact).decode()
    return Command(install_cmd_id(deployment, gateway_id, device, rollback=rollback), name, args)


__all__ = ["MANIFEST_SCHEMA", "REASONS", "VERSION_RE", "Floor", "Manifest", "ReleaseRejected", "SignedManifest",
           "Target", "check_artifact", "check_install", "generate_key", "install_cmd_id", "install_command", "key_id",
           "load_key_spec", "load_private", "load_public", "parse_version", "sign", "verify", "verify_signature"]
