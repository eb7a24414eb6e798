"""docs/protocol-vectors.json is current and every vector decodes/re-encodes as stated."""
from __future__ import annotations

import json

import pytest

from gateway.codec import (
    Rejection,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_advert,
    decode_body,
    decode_float,
    decode_gatt,
    decode_sfloat,
    decode_wire,
    encode_body,
    ReplayWindow,
)
from gateway.codec import vectors
from gateway.codec.bthome import advert_events, advert_to_json
from gateway.codec.gatt import parse_uuid
from gateway.codec.jsonify import frame_to_json, payload_to_json

DATA = json.loads(vectors.DEFAULT_PATH.read_text(encoding="utf-8"))


def test_committed_file_equals_fresh_output():
    assert vectors.DEFAULT_PATH.read_text(encoding="utf-8") == vectors.render(), (
        "docs/protocol-vectors.json is stale: run .venv/bin/python -m gateway.codec.vectors --write")


def test_check_mode_detects_a_stale_file(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("{}\n")
    assert vectors.main(["--check", "--path", str(path)]) == 1
    assert vectors.main(["--write", "--path", str(path)]) == 0
    assert vectors.main(["--check", "--path", str(path)]) == 0


def test_structure_has_every_section():
    assert DATA["version"] == 1
    for section in ("crc", "cobs", "frames", "invalid_frames", "replay", "adverts", "invalid_adverts",
                    "gatt", "invalid_gatt", "sfloat", "float"):
        assert DATA[section], section
    types = {f["decoded"]["type_name"] for f in DATA["frames"]}
    assert types == {"EVENT", "ACK", "HEARTBEAT", "HELLO", "CONFIG_GET", "CONFIG", "OTA_BEGIN", "OTA_CHUNK",
                     "OTA_END", "OTA_STATUS", "FEEDBACK", "TIME", "ERROR"}
    assert any(a["decoded"]["encrypted"] for a in DATA["adverts"])
    assert {g["uuid"] for g in DATA["gatt"]} == {"2A35", "2A1C", "2A9D", "2A5E", "2A5F", "2A18"}


@pytest.mark.parametrize("case", DATA["crc"], ids=lambda c: c["input_hex"][:16] or "empty")
def test_crc(case):
    assert crc16_ccitt_false(bytes.fromhex(case["input_hex"])) == case["crc"]


@pytest.mark.parametrize("case", DATA["cobs"], ids=lambda c: c["decoded_hex"][:16] or "empty")
def test_cobs(case):
    assert cobs_encode(bytes.fromhex(case["decoded_hex"])).hex() == case["encoded_hex"]
    assert cobs_decode(bytes.fromhex(case["encoded_hex"])) == bytes.fromhex(case["decoded_hex"])


@pytest.mark.parametrize("case", DATA["frames"], ids=lambda c: c["name"])
def test_frame_decodes_verifies_and_reencodes(case):
    wire = bytes.fromhex(case["wire_hex"])
    body = bytes.fromhex(case["body_hex"])
    frame = decode_wire(wire)
    assert not isinstance(frame, Rejection)
    assert decode_body(body) == frame
    got = frame_to_json(frame)
    got["crc"] = int.from_bytes(body[-2:], "little")
    assert got == case["decoded"]
    key = bytes.fromhex(case["key_hex"]) if case["key_hex"] else None
    assert frame.authenticated == (key is not None)
    if key is not None:
        assert frame.verify(key)
        assert not frame.verify(bytes(16))
    again = encode_body(frame.type, frame.device_id, frame.seq, frame.payload, key=key,
                        urgent=frame.urgent, downlink=frame.downlink)
    assert again == body


@pytest.mark.parametrize("case", DATA["invalid_frames"], ids=lambda c: c["name"])
def test_invalid_frame_gives_its_reason(case):
    assert vectors.check_invalid(case) == case["reason"]


def test_replay_sequence():
    for seq_case in DATA["replay"]:
        w = ReplayWindow()
        assert [w.accept(s["seq"]) for s in seq_case["steps"]] == [s["accepted"] for s in seq_case["steps"]]
        assert w.to_bytes().hex() == seq_case["final_state_hex"]


@pytest.mark.parametrize("case", DATA["adverts"], ids=lambda c: c["name"])
def test_advert(case):
    key = bytes.fromhex(case["key_hex"]) if case["key_hex"] else None
    adv = decode_advert(bytes.fromhex(case["service_data_hex"]), mac=case["mac"], key=key)
    assert not isinstance(adv, Rejection)
    assert advert_to_json(adv) == case["decoded"]
    assert [payload_to_json(e) for e in advert_events(adv).events] == case["events"]


@pytest.mark.parametrize("case", DATA["invalid_adverts"], ids=lambda c: c["name"])
def test_invalid_advert(case):
    key = bytes.fromhex(case["key_hex"]) if case["key_hex"] else None
    r = decode_advert(bytes.fromhex(case["service_data_hex"]), mac=case["mac"], key=key)
    assert isinstance(r, Rejection) and r.reason.value == case["reason"]


@pytest.mark.parametrize("case", DATA["gatt"], ids=lambda c: c["name"])
def test_gatt(case):
    uuid = parse_uuid(case["uuid"])
    assert uuid is not None
    reading = decode_gatt(uuid, bytes.fromhex(case["value_hex"]))
    assert not isinstance(reading, Rejection)
    assert reading.to_json() == case["decoded"]


@pytest.mark.parametrize("case", DATA["invalid_gatt"], ids=lambda c: c["name"])
def test_invalid_gatt(case):
    r = decode_gatt(int(case["uuid"], 16), bytes.fromhex(case["value_hex"]))
    assert isinstance(r, Rejection) and r.reason.value == case["reason"]


def test_medfloat_tables():
    for case in DATA["sfloat"]:
        v = decode_sfloat(case["raw"])
        assert (v.to_json(), v.mantissa, v.exponent) == (case["value"], case["mantissa"], case["exponent"])
    for case in DATA["float"]:
        v = decode_float(case["raw"])
        assert (v.to_json(), v.mantissa, v.exponent) == (case["value"], case["mantissa"], case["exponent"])
