"""Release signing: ed25519 over the manifest (hash + size); tampering is rejected clearly."""
from __future__ import annotations

import pytest

from fleet.upgrades import (ArtifactRejected, SignedManifest, Target, UpgradeError, generate_key, load_public,
                            parse_target, sign, verify)


@pytest.fixture(scope="module")
def keys():
    priv, pub = generate_key()
    return priv, load_public(pub)


def test_sign_then_verify_roundtrip_through_json(keys):
    priv, pub = keys
    art = b"firmware-bytes" * 100
    s = sign(art, "bed-1.2.0.tar", Target.FW_BED, "1.2.0", priv)
    back = SignedManifest.from_json(s.to_json())
    m = verify(art, back, [pub])
    assert (m.target, m.version, m.size) == (Target.FW_BED, "1.2.0", len(art))
    assert m.release_id == "fw-bed@1.2.0"


@pytest.mark.parametrize("mutate, reason", [
    (lambda art, s: (art[:-1] + b"X", s), "hash_mismatch"),
    (lambda art, s: (art + b"X", s), "size_mismatch"),
    (lambda art, s: (art, SignedManifest(s.manifest.__class__(s.manifest.target, "9.9.9", s.manifest.artifact,
                                                              s.manifest.size, s.manifest.sha256),
                                         s.key_id, s.signature)), "bad_signature"),
    (lambda art, s: (art, SignedManifest(s.manifest, s.key_id, bytes(64))), "bad_signature"),
    (lambda art, s: (art, SignedManifest(s.manifest, "0" * 16, s.signature)), "unknown_key"),
])
def test_tampering_is_rejected_with_reason(keys, mutate, reason):
    priv, pub = keys
    art = b"\x00gateway-wheel" * 50
    s = sign(art, "gw.whl", Target.GATEWAY, "0.2.0", priv)
    bad_art, bad_sig = mutate(art, s)
    with pytest.raises(ArtifactRejected) as exc:
        verify(bad_art, bad_sig, [pub])
    assert exc.value.details["reason"] == reason
    assert "fleet release" in str(exc.value) or "original" in str(exc.value)


def test_other_key_and_garbage_signature_file(keys):
    priv, pub = keys
    other_priv, _ = generate_key()
    art = b"abc"
    s = sign(art, "a", Target.FW_BUTTON, "1.0.0", other_priv)
    with pytest.raises(ArtifactRejected, match="unknown key"):
        verify(art, s, [pub])
    with pytest.raises(ArtifactRejected, match="not a wt.release/1"):
        SignedManifest.from_json("{not json")
    with pytest.raises(ArtifactRejected, match="no trusted release key"):
        verify(art, s, [])


def test_bad_version_and_target_are_named():
    priv, _ = generate_key()
    with pytest.raises(UpgradeError, match="MAJOR.MINOR.PATCH"):
        sign(b"x", "x", Target.GATEWAY, "v2", priv)
    with pytest.raises(UpgradeError, match="fw-bed"):
        parse_target("fw-sofa")
