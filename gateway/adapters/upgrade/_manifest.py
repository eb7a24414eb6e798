"""Signed release manifests (``wt.release/1``, docs/upgrades.md): ed25519 over the canonical
manifest JSON, then size and SHA-256 of the artifact. The gateway's only ``cryptography`` use."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.adapters.upgrade._errors import UpgradeError

MANIFEST_SCHEMA = "wt.release/1"


@dataclass(frozen=True)
class Manifest:
    target: str            # "gateway" or "fw-<role>"
    version: str
    artifact: str
    size: int
    sha256: str

    def canonical(self) -> bytes:
        return json.dumps({"schema": MANIFEST_SCHEMA, "target": self.target, "version": self.version,
                           "artifact": self.artifact, "size": self.size, "sha256": self.sha256},
                          sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedRelease:
    manifest: Manifest
    key_id: str
    signature: bytes

    @classmethod
    def from_obj(cls, doc: Any) -> "SignedRelease":
        """From the ``release`` object of a ``wt.cmd/1`` (or a parsed ``.sig`` file)."""
        try:
            m = doc["manifest"]
            if m.get("schema") != MANIFEST_SCHEMA:
                raise ValueError(f"manifest schema {m.get('schema')!r} is not {MANIFEST_SCHEMA}")
            manifest = Manifest(str(m["target"]), str(m["version"]), str(m["artifact"]), int(m["size"]),
                                str(m["sha256"]))
            sig = base64.b64decode(doc["signature"], validate=True)
            return cls(manifest, str(doc["key_id"]), sig)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise UpgradeError(f"release is not a wt.release/1 signed manifest ({exc}); sign it with: fleet release sign",
                               reason="malformed") from None


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_trusted_key(spec: str) -> Ed25519PublicKey:
    """A trusted release key from config: a PEM file path, or the raw 32-byte key in base64/hex."""
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
        raise UpgradeError(f"trusted key {spec[:40]!r} unreadable ({exc}); give a PEM file (fleet release keygen) "
                           "or the raw 32-byte key in base64", reason="no_trusted_key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UpgradeError(f"trusted key {spec[:40]!r} is not ed25519", reason="no_trusted_key")
    return key


def verify(artifact: bytes, signed: SignedRelease, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """The manifest if ``artifact`` is exactly what a trusted key signed; UpgradeError otherwise
    (reasons as the fleet's: no_trusted_key, unknown_key, bad_signature, size_mismatch, hash_mismatch)."""
    keys = {key_id(k): k for k in trusted}
    if not keys:
        raise UpgradeError("no trusted release key on this gateway; set [upgrades] trusted_keys", reason="no_trusted_key")
    key = keys.get(signed.key_id)
    if key is None:
        raise UpgradeError(f"release signed by unknown key {signed.key_id}; add its public key to "
                           "[upgrades] trusted_keys or re-sign with a trusted key", reason="unknown_key")
    m = signed.manifest
    try:
        key.verify(signed.signature, m.canonical())
    except InvalidSignature:
        raise UpgradeError(f"bad signature on {m.target}@{m.version}: the manifest was altered or signed with "
                           "another key; refused", reason="bad_signature") from None
    if len(artifact) != m.size:
        raise UpgradeError(f"artifact is {len(artifact)} bytes but the signed manifest says {m.size}: "
                           "truncated or tampered; refused", reason="size_mismatch")
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != m.sha256:
        raise UpgradeError(f"artifact SHA-256 {digest[:16]}… does not match the signed {m.sha256[:16]}…: "
                           "tampered; refused", reason="hash_mismatch")
    return m
