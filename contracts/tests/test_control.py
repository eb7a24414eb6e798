"""contracts/control.py: the wt.signed/1 envelope — round trip, every refusal, fuzz."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.control import (CMD_TTL_S, REASONS, ControlRejected, Opened, generate_key, key_id, load_private,
                               load_public, open_envelope, seal, seal_cmd, seal_config, signed_bytes)
from contracts.payloads import CMD_SCHEMA, CONFIG_SCHEMA, decode_cmd, decode_config, encode_cmd

NOW = 1_790_000_000.0
GW = "gw-0001"
PRIV_PEM, PUB_PEM = generate_key()
PRIV, PUB = load_private(PRIV_PEM), load_public(PUB_PEM)
OTHER_PRIV = load_private(generate_key()[0])


def cmd(seq=1, *, gw=GW, key=PRIV, expires=NOW + 60, name="ping", args=None):
    return seal_cmd("c1", name, args or {}, gateway_id=gw, seq=seq, expires_at=expires, key=key)


def opened(payload, **kw):
    return open_envelope(payload, **{"gateway_id": GW, "keys": [PUB], "now": NOW, **kw})


def test_round_trip_cmd_and_config():
    o = opened(cmd(7))
    assert isinstance(o, Opened) and o.seq == 7 and o.kind == CMD_SCHEMA and o.key_id == key_id(PUB)
    assert decode_cmd(o.body).cmd == "ping"
    c = opened(seal_config(version=3, config={"rules": {"bed": {"max_out_min": 45}}}, hash="sha256:x",
                           gateway_id=GW, seq=8, expires_at=NOW + 60, key=PRIV), kind=CONFIG_SCHEMA)
    assert isinstance(c, Opened) and decode_config(c.body).config == {"rules": {"bed": {"max_out_min": 45}}}


@pytest.mark.parametrize("payload, kw, reason", [
    (encode_cmd("c1", "ping", {}), {}, "unsigned"),
    (b'{"schema":"wt.config/1","version":1,"config":{}}', {}, "unsigned"),
    (b"\xff\xfe", {}, "malformed"),
    (b"[1]", {}, "malformed"),
    (b'{"schema":"wt.signed/1"}', {}, "malformed"),
    (cmd(), {"keys": []}, "no_fleet_key"),
    (cmd(key=OTHER_PRIV), {}, "unknown_key"),
    (cmd(gw="gw-0002"), {}, "other_gateway"),
    (cmd(), {"kind": CONFIG_SCHEMA}, "wrong_kind"),
    (cmd(expires=NOW - 1), {}, "expired"),
    (cmd(expires=NOW + 10 ** 8), {}, "expiry_too_far"),
])
def test_each_refusal_has_its_reason(payload, kw, reason):
    r = opened(payload, **kw)
    assert isinstance(r, ControlRejected) and r.reason == reason and reason in REASONS, r


@pytest.mark.parametrize("field, value", [("gateway", "gw-0002"), ("seq", 99), ("expires_at", "2099-01-01T00:00:00.000Z"),
                                          ("kind", CONFIG_SCHEMA), ("body", encode_cmd("c1", "update", {}).decode())])
def test_every_signed_field_is_covered(field, value):
    """Changing any of them (a re-addressed, renumbered, extended or rewritten message) breaks the signature."""
    doc = json.loads(cmd())
    doc[field] = value
    r = opened(json.dumps(doc).encode())
    assert isinstance(r, ControlRejected) and r.reason == "bad_signature"


def test_another_key_id_claimed_and_a_resigned_copy():
    doc = json.loads(cmd(key=OTHER_PRIV))
    doc["key_id"] = key_id(PUB)            # claims the fleet's key, signed by another
    assert opened(json.dumps(doc).encode()).reason == "bad_signature"


def test_signed_bytes_are_canonical():
    b = signed_bytes(gateway=GW, seq=1, expires_at="x", kind=CMD_SCHEMA, body="é")
    assert b == b'{"body":"\\u00e9","expires_at":"x","gateway":"gw-0001","kind":"wt.cmd/1","schema":"wt.signed/1","seq":1}'


def test_seal_refuses_bad_seq_and_kind():
    with pytest.raises(ValueError):
        seal(b"{}", kind="wt.other/1", gateway_id=GW, seq=1, expires_at=NOW, key=PRIV)
    for bad in (0, -1, True, 2 ** 63):
        with pytest.raises(ValueError):
            seal(b"{}", kind=CMD_SCHEMA, gateway_id=GW, seq=bad, expires_at=NOW, key=PRIV)
    assert CMD_TTL_S <= 3600


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.dictionaries(st.sampled_from(["schema", "gateway", "seq", "expires_at", "kind", "body", "key_id",
                                                  "signature"]),
                                 st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                           st.text(max_size=40), st.lists(st.integers(), max_size=3)))
                 .map(lambda d: json.dumps({"schema": "wt.signed/1", **d}).encode())))
def test_fuzz_open_envelope_never_raises(payload):
    r = opened(payload)
    assert isinstance(r, ControlRejected) and r.reason in REASONS


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 600), st.sampled_from(["gateway", "seq", "expires_at", "kind", "body", "key_id", "signature"]))
def test_fuzz_any_bit_flip_of_a_signed_message_is_refused(pos, field):
    doc = json.loads(cmd())
    v = doc[field]
    doc[field] = (v + 1 + pos) if isinstance(v, int) else (v[: pos % max(1, len(v))] + "A" + v[pos % max(1, len(v)) + 1:])
    if doc[field] == v:
        return
    r = opened(json.dumps(doc).encode())
    assert isinstance(r, ControlRejected)
