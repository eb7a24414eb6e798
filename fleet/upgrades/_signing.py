"""Release signing for the fleet: :mod:`contracts.release` in the fleet's error vocabulary.

The manifest's canonical form, the ed25519 signature and the size/hash checks live once,
in :mod:`contracts.release` (the gateway verifies with the same code). This module only
turns its :class:`~contracts.release.ReleaseRejected` into the fleet's errors, each with
the fix an operator of the ``fleet`` CLI needs: :class:`ArtifactRejected` for a release
that must not be stored or sent, :class:`UpgradeError` for a bad key, version or target.
"""
from __future__ import annotations

from typing import Iterable, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts import release as _release
from contracts.release import MANIFEST_SCHEMA, Manifest, ReleaseRejected, Target, key_id
from fleet.upgrades._errors import ArtifactRejected, UpgradeError

_FIX = {
    "malformed": "create it with: fleet release sign",
    "no_trusted_key": "add one with: fleet release key-add PUBLIC.pem",
    "unknown_key": "trust it with fleet release key-add or re-sign with a trusted key",
    "bad_signature": "re-sign it with fleet release sign",
    "size_mismatch": "fetch the original",
    "hash_mismatch": "fetch the original",
}


def _rejected(exc: ReleaseRejected) -> NoReturn:
    details = {"reason": exc.reason}
    if exc.key_id is not None:
        details["key_id"] = exc.key_id
    problem = f"signature file is {exc.problem}" if exc.reason == "malformed" else exc.problem
    raise ArtifactRejected(f"{problem}; {_FIX[exc.reason]}", **details) from None


def parse_target(text: str) -> Target:
    try:
        return Target(text)
    except ValueError:
        raise UpgradeError(f"target {text!r} is not known; use one of: " + ", ".join(t.value for t in Target),
                           target=text) from None


def parse_version(text: str) -> tuple[int, int, int]:
    try:
        return _release.parse_version(text)
    except ReleaseRejected as exc:
        raise UpgradeError(f"{exc.problem}; write e.g. 1.4.0", version=text) from None


class SignedManifest(_release.SignedManifest):
    """:class:`contracts.release.SignedManifest`; a malformed file raises :class:`ArtifactRejected`."""

    @classmethod
    def from_obj(cls, doc: object) -> "SignedManifest":
        try:
            return super().from_obj(doc)   # type: ignore[return-value]
        except ReleaseRejected as exc:
            _rejected(exc)

    @classmethod
    def from_json(cls, text: str | bytes) -> "SignedManifest":
        try:
            return super().from_json(text)   # type: ignore[return-value]
        except ReleaseRejected as exc:
            _rejected(exc)


def generate_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new ed25519 key pair."""
    return _release.generate_key()


def load_private(pem: bytes) -> Ed25519PrivateKey:
    try:
        return _release.load_private(pem)
    except ReleaseRejected as exc:
        raise UpgradeError(f"{exc.problem}; generate one with: fleet release keygen") from None


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        return _release.load_public(pem)
    except ReleaseRejected as exc:
        raise UpgradeError(f"{exc.problem}; export it with: fleet release keygen") from None


def sign(artifact: bytes, name: str, target: Target, version: str, private_pem: bytes) -> SignedManifest:
    parse_version(version)
    load_private(private_pem)
    signed = _release.sign(artifact, name, target, version, private_pem)
    return SignedManifest(signed.manifest, signed.key_id, signed.signature)


def verify(artifact: bytes, signed: _release.SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """Return the manifest if ``artifact`` is exactly what a trusted key signed; raise ArtifactRejected otherwise."""
    try:
        return _release.verify(artifact, signed, trusted)
    except ReleaseRejected as exc:
        _rejected(exc)


__all__ = ["MANIFEST_SCHEMA", "Manifest", "SignedManifest", "Target", "generate_key", "key_id", "load_private",
           "load_public", "parse_target", "parse_version", "sign", "verify"]
