"""contracts.release: the one wt.release/1 canonical form and ed25519 check (fleet signs, gateway verifies)."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from contracts.payloads import Command, decode_cmd, encode_cmd
from contracts.release import (MANIFEST_SCHEMA, REASONS, Manifest, ReleaseRejected, SignedManifest, Target,
                               generate_key, install_cmd_id, install_command, key_id, load_key_spec, load_private,
                               load_public, parse_version, sign, verify)


@pytest.fixture(scope="module")
def keys():
    priv, pub = generate_key()
    return priv, pub, load_public(pub)


def test_canonical_form_is_fixed_bytes():
    """The signed bytes are part of the wire contract: sorted keys, no spaces, schema first-class."""
    m = Manifest("fw-bed", "1.2.0", "bed-1.2.0.wtb", 3, "ab" * 32)
    assert m.canonical() == (b'{"artifact":"bed-1.2.0.wtb","schema":"wt.release/1","sha256":"' + b"ab" * 32
                             + b'","size":3,"target":"fw-bed","version":"1.2.0"}')
    assert m.target is Target.FW_BED and m.release_id == "fw-bed@1.2.0"


def test_target_is_its_wire_string():
    t = Target.FW_BUTTON
    assert t == "fw-button" and str(t) == "fw-button" and f"{t}" == "fw-button" and repr(t) == "'fw-button'"
    assert json.dumps({"t": t}) == '{"t": "fw-button"}' and t.startswith("fw-") and t.role == "button"
    assert Target.GATEWAY.role is None
    with pytest.raises(ValueError):
        Manifest("fw-sofa", "1.0.0", "x", 1, "00")


def test_sign_verify_round_trip_through_the_wire_forms(keys):
    priv, _, pub = keys
    art = b"firmware" * 100
    s = sign(art, "bed.wtb", "fw-bed", "1.2.0", priv)
    assert s.key_id == key_id(pub) and len(s.signature) == 64
    for back in (SignedManifest.from_json(s.to_json()), SignedManifest.from_obj(json.loads(s.to_json()))):
        assert back == s
        m = verify(art, back, [pub])
        assert (m.target, m.version, m.size, m.sha256) == (Target.FW_BED, "1.2.0", len(art),
                                                           hashlib.sha256(art).hexdigest())


@pytest.mark.parametrize("case, reason", [
    ("hash", "hash_mismatch"), ("size", "size_mismatch"), ("manifest", "bad_signature"),
    ("signature", "bad_signature"), ("key_id", "unknown_key"), ("no_keys", "no_trusted_key"),
])
def test_every_refusal_has_its_reason(keys, case, reason):
    priv, _, pub = keys
    art = b"\x00wheel" * 50
    s = sign(art, "gw.whl", Target.GATEWAY, "0.2.0", priv)
    trusted = [pub]
    if case == "hash":
        art = art[:-1] + b"X"
    elif case == "size":
        art = art + b"X"
    elif case == "manifest":
        s = dataclasses.replace(s, manifest=dataclasses.replace(s.manifest, version="9.9.9"))
    elif case == "signature":
        s = dataclasses.replace(s, signature=bytes(64))
    elif case == "key_id":
        s = dataclasses.replace(s, key_id="0" * 16)
    else:
        trusted = []
    with pytest.raises(ReleaseRejected) as exc:
        verify(art, s, trusted)
    assert exc.value.reason == reason and reason in REASONS
    assert exc.value.problem == str(exc.value)


@pytest.mark.parametrize("doc", [
    "{not json", "[]", '{"manifest": {}}',
    json.dumps({"manifest": {"schema": "wt.release/2"}, "key_id": "k", "signature": ""}),
    json.dumps({"manifest": {"schema": MANIFEST_SCHEMA, "target": "fw-sofa", "version": "1.0.0", "artifact": "a",
                             "size": 1, "sha256": "00"}, "key_id": "k", "signature": ""}),
    json.dumps({"manifest": {"schema": MANIFEST_SCHEMA, "target": "gateway", "version": "1.0.0", "artifact": "a",
                             "size": "x", "sha256": "00"}, "key_id": "k", "signature": ""}),
    json.dumps({"manifest": {"schema": MANIFEST_SCHEMA, "target": "gateway", "version": "1.0.0", "artifact": "a",
                             "size": 1, "sha256": "00"}, "key_id": "k", "signature": "not base64!"}),
])
def test_a_malformed_signed_manifest_is_refused_not_crashed(doc):
    with pytest.raises(ReleaseRejected, match="not a wt.release/1 signed manifest") as exc:
        SignedManifest.from_json(doc)
    assert exc.value.reason == "malformed"


def test_keys_and_versions(keys, tmp_path):
    priv, pub_pem, pub = keys
    assert key_id(load_private(priv).public_key()) == key_id(pub)
    raw = pub.public_bytes_raw()
    (tmp_path / "k.pub").write_bytes(pub_pem)
    for spec in (str(tmp_path / "k.pub"), pub_pem.decode(), base64.b64encode(raw).decode(), raw.hex()):
        assert key_id(load_key_spec(spec)) == key_id(pub)
    for bad in (lambda: load_key_spec("not-a-key"), lambda: load_public(b"junk"), lambda: load_private(pub_pem)):
        with pytest.raises(ReleaseRejected) as exc:
            bad()
        assert exc.value.reason == "bad_key"
    assert parse_version("1.4.0-rc.1") == (1, 4, 0)
    with pytest.raises(ReleaseRejected, match="MAJOR.MINOR.PATCH") as exc:
        sign(b"x", "x", Target.GATEWAY, "v2", priv)
    assert exc.value.reason == "bad_version"


def test_install_command_is_update_for_the_gateway_and_ota_for_firmware(keys):
    priv, _, pub = keys
    fw = sign(b"fw", "b.wtb", Target.FW_BUTTON, "0.2.0", priv)
    gw = sign(b"gw", "g.whl", Target.GATEWAY, "0.2.0", priv)
    ota = install_command(fw, deployment="d1", gateway_id="gw-1", device="a4c1380a1b2c", artifact_url="fleet://x",
                          artifact=b"fw")
    assert isinstance(ota, Command) and (ota.cmd_id, ota.cmd) == ("d1:gw-1/a4c1380a1b2c:u", "ota")
    upd = install_command(gw, deployment="d1", gateway_id="gw-1", artifact_url="https://r/g.whl", rollback=True)
    assert (upd.cmd_id, upd.cmd, upd.args["rollback"]) == ("d1:gw-1:r", "update", True)
    assert "artifact_b64" not in upd.args and upd.cmd_id == install_cmd_id("d1", "gw-1", rollback=True)
    back = decode_cmd(encode_cmd(*ota))                   # what the gateway receives
    assert isinstance(back, Command) and back == ota
    assert base64.b64decode(back.args["artifact_b64"]) == b"fw"
    assert verify(b"fw", SignedManifest.from_obj(back.args["release"]), [pub]).release_id == "fw-button@0.2.0"
