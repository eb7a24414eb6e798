"""Signed release manifests on the gateway: :mod:`contracts.release` in the gateway's error vocabulary.

The canonical manifest, the ed25519 signature and the size/SHA-256 checks are the fleet's
own code (:mod:`contracts.release`); this module only turns a
:class:`~contracts.release.ReleaseRejected` into :class:`UpgradeError` (same ``reason``s:
malformed, no_trusted_key, unknown_key, bad_signature, size_mismatch, hash_mismatch) with
the fix a gateway operator needs, and reads the ``[upgrades] trusted_keys`` entries.
"""
from __future__ import annotations

from typing import Any, Iterable, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts import release as _release
from contracts.release import MANIFEST_SCHEMA, Floor, Manifest, ReleaseRejected, Target, key_id
from gateway.adapters.upgrade._errors import UpgradeError

_FIX = {
    "malformed": "sign it with: fleet release sign",
    "no_trusted_key": "set [upgrades] trusted_keys",
    "unknown_key": "add its public key to [upgrades] trusted_keys or re-sign with a trusted key",
    "bad_signature": "refused",
    "size_mismatch": "refused",
    "hash_mismatch": "refused",
    "wrong_target": "refused",
    "wrong_role": "refused: send the release built for this device's role",
    "downgrade": "refused",
}


def _rejected(exc: ReleaseRejected) -> NoReturn:
    problem = {"malformed": f"release is {exc.problem}",
               "no_trusted_key": "no trusted release key on this gateway",
               "unknown_key": f"release {exc.problem}"}.get(exc.reason, exc.problem)
    raise UpgradeError(f"{problem}; {_FIX.get(exc.reason, 'refused')}", reason=exc.reason) from None


class SignedRelease(_release.SignedManifest):
    """:class:`contracts.release.SignedManifest`; a malformed one raises :class:`UpgradeError`."""

    @classmethod
    def from_obj(cls, doc: Any) -> "SignedRelease":
        """From the ``release`` object of a ``wt.cmd/1`` (or a parsed ``.sig`` file)."""
        try:
            return super().from_obj(doc)   # type: ignore[return-value]
        except ReleaseRejected as exc:
            _rejected(exc)


def load_trusted_key(spec: str) -> Ed25519PublicKey:
    """A trusted release key from config: a PEM file path, or the raw 32-byte key in base64/hex."""
    try:
        return _release.load_key_spec(spec)
    except ReleaseRejected as exc:
        raise UpgradeError(f"trusted {exc.problem}; give a PEM file (fleet release keygen) or the raw 32-byte "
                           "key in base64", reason="no_trusted_key") from None


def verify(artifact: bytes, signed: _release.SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """The manifest if ``artifact`` is exactly what a trusted key signed; UpgradeError otherwise."""
    try:
        return _release.verify(artifact, signed, trusted)
    except ReleaseRejected as exc:
        _rejected(exc)


def verify_signature(signed: _release.SignedManifest, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """The manifest if a trusted key signed it (checked before the artifact is fetched)."""
    try:
        return _release.verify_signature(signed, trusted)
    except ReleaseRejected as exc:
        _rejected(exc)


def check_artifact(artifact: bytes, m: Manifest) -> Manifest:
    """``m`` if ``artifact`` has its signed size and SHA-256."""
    try:
        return _release.check_artifact(artifact, m)
    except ReleaseRejected as exc:
        _rejected(exc)


def check_install(m: Manifest, *, target: Target | str, floor: Floor, rollback: bool = False) -> None:
    """Right target/role and no downgrade below ``floor`` (contracts.release.check_install)."""
    try:
        _release.check_install(m, target=target, floor=floor, rollback=rollback)
    except ReleaseRejected as exc:
        _rejected(exc)


__all__ = ["MANIFEST_SCHEMA", "Manifest", "SignedRelease", "check_artifact", "check_install", "key_id",
           "load_trusted_key", "verify", "verify_signature"]
