"""Device keys sealed to the gateway (F8): a push carries ``x25519:v1:…`` instead of the key; the
gateway opens it with its own private key (``gateway.identity_key``, made by ``gateway enrol``)
when the configuration is loaded, and its ingress authenticates the device's frames with it.

It used to be: the key in clear in the retained config message and in fleet-config.json."""
from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from contracts.device_keys import SealedKeyError, is_sealed, open_key, seal
from gateway.codec import RejectReason
from gateway.config import ConfigError, load_config
from gateway.domain.ingress import Ingress
from gateway.testing.stimuli import event_frame

pytestmark = pytest.mark.security
GW = "gw-keys"
DEV, DEV2 = "a4c1380a0001", "a4c1380a0002"
KEY = bytes.fromhex("5f1e0c3a9b7d2e4f60718293a4b5c6d7")


def _raw_pub(priv: X25519PrivateKey) -> bytes:
    return priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture
def identity(tmp_path):
    priv = X25519PrivateKey.generate()
    path = tmp_path / "gateway-x25519.key"
    path.write_bytes(priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return priv, path


def _load(path, fleet, gw=GW):
    return load_config(None, env={}, overrides={"gateway": {"id": gw, "identity_key": str(path)}}, fleet=fleet)


def test_F8_a_sealed_key_in_the_pushed_layer_is_opened_and_authenticates_frames(identity, journal, clock):
    priv, path = identity
    sealed = seal(_raw_pub(priv), GW, DEV, KEY)
    fleet = {"devices": {DEV: {"role": "button", "key": sealed}}}
    stored = json.dumps(fleet)
    cfg = _load(path, fleet)
    assert cfg.device_keys == {DEV: KEY}
    assert json.dumps(fleet) == stored and KEY.hex() not in stored     # the layer on disk stays sealed
    ing = Ingress(GW, cfg.device_keys, journal, clock)
    assert [e.device_id for e in ing.feed("l", event_frame(1, device=DEV, key=KEY)).events] == [DEV]
    other = ing.feed("l", event_frame(2, device=DEV, key=bytes(16)))
    assert [r.reason for r in other.rejects] == [RejectReason.BAD_AUTH]


def test_a_key_sealed_to_another_gateway_is_refused_and_names_this_gateways_key(identity):
    priv, path = identity
    stranger = X25519PrivateKey.generate()
    fleet = {"devices": {DEV: {"role": "button", "key": seal(_raw_pub(stranger), GW, DEV, KEY)}}}
    with pytest.raises(ConfigError) as ei:
        _load(path, fleet)
    [issue] = ei.value.issues
    assert issue.key == f"devices.{DEV}.key" and "not sealed to this gateway's key (sha256:" in issue.problem
    assert KEY.hex() not in str(ei.value) and "push the configuration again" in issue.fix


def test_a_blob_copied_to_another_device_or_gateway_does_not_open(identity):
    priv, path = identity
    sealed = seal(_raw_pub(priv), GW, DEV, KEY)
    with pytest.raises(ConfigError):
        _load(path, {"devices": {DEV2: {"role": "button", "key": sealed}}})
    with pytest.raises(ConfigError):
        _load(path, {"devices": {DEV: {"role": "button", "key": sealed}}}, gw="gw-other")
    with pytest.raises(SealedKeyError) as ei:
        open_key(priv, GW, DEV, sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB"))
    assert ei.value.reason in ("wrong_gateway", "malformed")


def test_without_an_identity_key_a_sealed_key_is_refused_with_the_enrol_fix():
    fleet = {"devices": {DEV: {"role": "button", "key": seal(_raw_pub(X25519PrivateKey.generate()), GW, DEV, KEY)}}}
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"gateway": {"id": GW}}, fleet=fleet)
    assert "gateway.identity_key is not set" in str(ei.value) and "gateway enrol" in str(ei.value)


def test_an_unreadable_identity_key_is_named(tmp_path):
    fleet = {"devices": {DEV: {"role": "button", "key": seal(_raw_pub(X25519PrivateKey.generate()), GW, DEV, KEY)}}}
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path / "missing.key", fleet)
    assert "missing.key is unusable" in str(ei.value)


def test_a_push_cannot_point_the_gateway_at_another_identity_key():
    from contracts.gateway_config import IMMUTABLE

    assert "gateway.identity_key" in IMMUTABLE


def test_sealing_is_deterministic_per_seed_and_random_without_one(identity):
    priv, _ = identity
    pub = _raw_pub(priv)
    a, b = seal(pub, GW, DEV, KEY, ephemeral_seed=b"s1"), seal(pub, GW, DEV, KEY, ephemeral_seed=b"s1")
    assert a == b and is_sealed(a) and seal(pub, GW, DEV, KEY, ephemeral_seed=b"s2") != a
    assert seal(pub, GW, DEV, KEY) != seal(pub, GW, DEV, KEY)
    assert open_key(priv, GW, DEV, a) == KEY


def test_F8_config_check_never_prints_the_opened_key(identity, tmp_path):
    priv, path = identity
    cfg = _load(path, {"devices": {DEV: {"role": "button", "key": seal(_raw_pub(priv), GW, DEV, KEY)}}})
    assert KEY.hex() not in cfg.to_json() and "<redacted>" in cfg.to_json()
