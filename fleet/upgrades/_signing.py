"""Release manifests signed with ed25519 (the `cryptography` package).

The signature covers the canonical JSON of the manifest, which carries the artifact's
SHA-256 and size, so one check verifies both the publisher and the bytes. Verification
order: manifest shape -> trusted key -> signature -> size -> hash; the first failure
raises :class:`ArtifactRejected` naming what is wrong.
"""
from __future__ import annotations

import base64
import enum
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet.upgrades._errors import ArtifactRejected, UpgradeError

MANIFEST_SCHEMA = "wt.release/1"
_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


class Target(enum.Enum):
    """What a release updates: the gateway software or one sensor firmware role."""

    GATEWAY = "gateway"
    FW_BUTTON = "fw-button"
    FW_FALL = "fw-fall"
    FW_BED = "fw-bed"
    FW_DOOR = "fw-door"
    FW_MOTION = "fw-motion"
    FW_GPS = "fw-gps"
    FW_DISPENSER = "fw-dispenser"

    @property
    def role(self) -> str | None:
        return None if self is Target.GATEWAY else self.value[3:]

    @classmethod
    def parse(cls, text: str) -> "Target":
        try:
            return cls(text)
        except ValueError:
            raise UpgradeError(f"target {text!r} is not known; use one of: " + ", ".join(t.value for t in cls),
                               target=text) from None


def parse_version(text: str) -> tuple[int, int, int]:
    if not isinstance(text, str) or not _VERSION.match(text):
        raise UpgradeError(f"version {text!r} is not MAJOR.MINOR.PATCH; write e.g. 1.4.0", version=text)
    a, b, c = re.split(r"[.+-]", text)[:3]
    return int(a), int(b), int(c)


@dataclass(frozen=True)
class Manifest:
    target: Target
    version: str
    artifact: str          # file name
    size: int
    sha256: str            # hex

    def as_dict(self) -> dict[str, Any]:
        return {"schema": MANIFEST_SCHEMA, "target": self.target.value, "version": self.version,
                "artifact": self.artifact, "size": self.size, "sha256": self.sha256}

    def canonical(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def release_id(self) -> str:
        return f"{self.target.value}@{self.version}"


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    key_id: str
    signature: bytes       # 64 bytes

    def to_json(self) -> str:
        return json.dumps({"manifest": self.manifest.as_dict(), "key_id": self.key_id,
                           "signature": base64.b64encode(self.signature).decode()}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "SignedManifest":
        try:
            doc = json.loads(text)
            m = doc["manifest"]
            if m.get("schema") != MANIFEST_SCHEMA:
                raise ValueError(f"manifest schema {m.get('schema')!r} is not {MANIFEST_SCHEMA}")
            manifest = Manifest(Target(m["target"]), str(m["version"]), str(m["artifact"]), int(m["size"]),
                                str(m["sha256"]))
            sig = base64.b64decode(doc["signature"], validate=True)
            return cls(manifest, str(doc["key_id"]), sig)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactRejected(f"signature file is not a wt.release/1 signed manifest ({exc}); "
                                   "create it with: fleet release sign", reason="malformed") from None


def key_id(public: Ed25519PublicKey) -> str:
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
        raise UpgradeError(f"cannot read the private key ({exc}); generate one with: fleet release keygen") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UpgradeError("the private key is not ed25519; generate one with: fleet release keygen")
    return key


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise UpgradeError(f"cannot read the public key ({exc}); export it with: fleet release keygen") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UpgradeError("the public key is not ed25519")
    return key


def sign(artifact: bytes, name: str, target: Target, version: str, private_pem: bytes) -> SignedManifest:
    parse_version(version)
    key = load_private(private_pem)
    m = Manifest(target, version, name, len(artifact), hashlib.sha256(artifact).hexdigest())
    return SignedManifest(m, key_id(key.public_key()), key.sign(m.canonical()))


def verify(artifact: bytes, signed: SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """Return the manifest if ``artifact`` is exactly what a trusted key signed; raise otherwise."""
    keys = {key_id(k): k for k in trusted}
    if not keys:
        raise ArtifactRejected("no trusted release key; add one with: fleet release key-add PUBLIC.pem",
                               reason="no_trusted_key")
    key = keys.get(signed.key_id)
    if key is None:
        raise ArtifactRejected(f"signed by unknown key {signed.key_id}; trust it with fleet release key-add "
                               "or re-sign with a trusted key", reason="unknown_key", key_id=signed.key_id)
    try:
        key.verify(signed.signature, signed.manifest.canonical())
    except InvalidSignature:
        raise ArtifactRejected(f"bad signature on {signed.manifest.release_id}: the manifest was altered or "
                               "signed with another key; re-sign it with fleet release sign",
                               reason="bad_signature") from None
    m = signed.manifest
    if len(artifact) != m.size:
        raise ArtifactRejected(f"artifact is {len(artifact)} bytes but the signed manifest says {m.size}: "
                               "the file is truncated or tampered; fetch the original", reason="size_mismatch")
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != m.sha256:
        raise ArtifactRejected(f"artifact SHA-256 {digest[:16]}… does not match the signed {m.sha256[:16]}…: "
                               "the file was tampered with; fetch the original", reason="hash_mismatch")
    return m
