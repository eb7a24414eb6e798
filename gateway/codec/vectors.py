"""Generator of docs/protocol-vectors.json, the cross-implementation test vectors.

``python -m gateway.codec.vectors --write`` rewrites the file; ``--check`` exits 1 if the
committed file differs from freshly generated output. Everything is deterministic (fixed
keys, ids, counters). The structure is described in docs/protocol.md §6.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.vectors import PROTOCOL_VECTORS
from gateway.codec import bthome, gatt
from gateway.codec._result import Rejection
from gateway.codec.auth import ReplayWindow
from gateway.codec.bthome import advert_events, advert_to_json, decode_advert, encode_advert
from gateway.codec.cobs import cobs_decode, cobs_encode
from gateway.codec.crc import crc16_ccitt_false
from gateway.codec.enums import (
    AckStatus,
    ErrorCode,
    FeedbackState,
    MsgType,
    OtaState,
    PowerFlag,
    ResetCause,
    SFloatSpecial,
)
from gateway.codec.events import EventPayload
from gateway.codec.frame import decode_wire, encode_body, wire_from_body
from gateway.codec.gatt import DateTime, decode_gatt, encode_gatt
from gateway.codec.ieee11073 import MedFloat, decode_float, decode_sfloat, special
from gateway.codec.jsonify import frame_to_json, payload_to_json, plain
from gateway.codec.payloads import (
    Ack,
    Config,
    ConfigGet,
    Error,
    Feedback,
    Heartbeat,
    Hello,
    OtaBegin,
    OtaChunk,
    OtaEnd,
    OtaStatus,
    Payload,
    Time,
    payload_type,
)
from gateway.domain.model import EventCode, Role

VECTORS_VERSION = 1
DEFAULT_PATH = PROTOCOL_VECTORS          # contracts/vectors.py says where the vectors live

DEV = "a4c1380a1b2c"
KEY = bytes(range(16))                                   # 000102…0f
DEV2 = "246f28aabbcc"
KEY2 = bytes.fromhex("8f2a1c44d0e95b7736a1c0fe12345678")
BT_MAC = "5448e68f80a5"
BT_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")  # the bthome.io example key


def _frame(name: str, p: Payload, seq: int, *, key: bytes | None = KEY, device: str = DEV,
           urgent: bool = False, downlink: bool = False, note: str = "") -> dict[str, Any]:
    body = encode_body(payload_type(p), device, seq, p, key=key, urgent=urgent, downlink=downlink)
    wire = wire_from_body(body)
    decoded = decode_wire(wire)
    assert not isinstance(decoded, Rejection), (name, decoded)
    out: dict[str, Any] = {"name": name, "key_hex": key.hex() if key else None, "body_hex": body.hex(),
                           "wire_hex": wire.hex(), "decoded": frame_to_json(decoded)}
    out["decoded"]["crc"] = int.from_bytes(body[-2:], "little")
    if note:
        out["note"] = note
    return out


def frames() -> list[dict[str, Any]]:
    ev = EventPayload
    return [
        _frame("event_button_press", ev(EventCode.BUTTON_PRESS, 120, {}), 42, urgent=True,
               note="the worked example of docs/protocol.md §1"),
        _frame("event_fall_detected", ev(EventCode.FALL_DETECTED, 3500, {"peak_cg": 352, "placement": 0}), 43, urgent=True,
               note="older firmware: no confidence byte (3 bytes of data), still accepted"),
        _frame("event_fall_detected_confidence", ev(EventCode.FALL_DETECTED, 3500,
               {"peak_cg": 352, "placement": 1, "confidence": 87}), 45, urgent=True),
        _frame("event_fall_cancelled", ev(EventCode.FALL_CANCELLED, 0, {"peak_cg": 352, "placement": 1}), 44),
        _frame("event_bed_seizure", ev(EventCode.BED_SEIZURE, 0, {}), 7, urgent=True, device=DEV2, key=KEY2),
        _frame("event_door_open", ev(EventCode.DOOR_OPEN, 60000, {}), 8, device=DEV2, key=KEY2),
        _frame("event_geofence_exit", ev(EventCode.GEOFENCE_EXIT, 2000,
               {"lat": 59.9138688, "lon": 10.7522454, "alt_m": 23, "fix_quality": 1, "sats": 7, "zone": 0}), 100, urgent=True),
        _frame("event_gps_position_south_west", ev(EventCode.GPS_POSITION, 0,
               {"lat": -33.8688197, "lon": -151.2092955, "alt_m": -5, "fix_quality": 2, "sats": 11, "zone": 255}), 101),
        _frame("event_dose_missed", ev(EventCode.DOSE_MISSED, 1000, {"slot": 2, "scheduled_min": 480}), 9, urgent=True),
        _frame("event_refill_due", ev(EventCode.REFILL_DUE, 0, {"doses_left": 3}), 10),
        _frame("event_dispenser_error", ev(EventCode.DISPENSER_ERROR, 0, {"error": 4}), 11),
        _frame("event_low_battery", ev(EventCode.LOW_BATTERY, 0, {"battery_pct": 9, "battery_mv": 3310}), 12),
        _frame("event_self_test_failed", ev(EventCode.SELF_TEST_FAILED, 0, {"check": 2}), 13),
        _frame("event_power_off", ev(EventCode.POWER_OFF, 0, {"reason": 3}), 14),
        _frame("event_charger_idle", ev(EventCode.CHARGER_IDLE, 0, {"hours": 72}), 15),
        _frame("event_sensor_fault", ev(EventCode.SENSOR_FAULT, 0, {"fault": 1}), 16),
        _frame("event_not_worn", ev(EventCode.NOT_WORN, 0, {"minutes": 720}), 46),
        _frame("event_worn_again", ev(EventCode.WORN_AGAIN, 0, {"minutes": 815}), 47),
        _frame("event_max_age_cobs_run", ev(EventCode.MOTION, 0xFFFFFFFF, {}), 0x01000000,
               note="age_ms at its maximum; seq with zero bytes exercises COBS"),
        _frame("event_unauthenticated", ev(EventCode.MOTION, 5, {}), 17, key=None,
               note="structurally valid; the gateway rejects it (unauthenticated) when it has a key for the device"),
        _frame("ack_stored_downlink", Ack(42, AckStatus.STORED), 1, downlink=True),
        _frame("ack_duplicate_downlink", Ack(42, AckStatus.DUPLICATE), 2, downlink=True),
        _frame("ack_from_device", Ack(5, AckStatus.STORED), 18, note="device acknowledging a CONFIG set (seq 5 of the downlink direction)"),
        _frame("heartbeat", Heartbeat(87, 3950, PowerFlag.CHARGING | PowerFlag.EXTERNAL_POWER, 86400, 0, 2, -61), 19),
        _frame("heartbeat_mains_unknown_rssi", Heartbeat(None, 0, PowerFlag.EXTERNAL_POWER, 5, 3, 0, None), 20, key=None),
        _frame("hello", Hello(Role.BUTTON, ResetCause.WATCHDOG, 7, "1.2.0"), 21),
        _frame("config_get", ConfigGet(), 3, downlink=True),
        _frame("config_set", Config(8, {"heartbeat_s": 300, "led": True}), 4, downlink=True),
        _frame("config_report", Config(8, {"heartbeat_s": 300, "led": True}), 22),
        _frame("ota_begin_unsigned", OtaBegin(65536, bytes(range(32)), "1.3.0", b""), 5, downlink=True),
        _frame("ota_begin_signed", OtaBegin(65536, bytes(range(32)), "1.3.0", bytes(range(64, 128))), 6, downlink=True),
        _frame("ota_chunk", OtaChunk(200, bytes((i * 7) & 0xFF for i in range(200))), 7, downlink=True),
        _frame("ota_end", OtaEnd(), 8, downlink=True),
        _frame("ota_status", OtaStatus(OtaState.VERIFIED, "1.3.0"), 23),
        _frame("feedback_accepted", Feedback(42, FeedbackState.ACCEPTED), 9, downlink=True),
        _frame("time", Time(1795413600), 10, downlink=True),
        _frame("error_from_gateway", Error(ErrorCode.BAD_PAYLOAD, "event data length"), 11, downlink=True),
        _frame("error_from_device_unauth", Error(ErrorCode.BAD_CONFIG, "heartbeat_s: -1 below 10"), 24, key=None),
    ]


def _hex(b: bytes) -> str:
    return b.hex()


def invalid_frames() -> list[dict[str, Any]]:
    good = encode_body(MsgType.EVENT, DEV, 42, EventPayload(EventCode.BUTTON_PRESS, 120, {}), key=KEY, urgent=True)
    cases: list[tuple[str, bytes, str, str]] = []

    def body(name: str, b: bytes, reason: str, stage: str = "frame") -> None:
        cases.append((name, wire_from_body(b), reason, stage))

    def recrc(b: bytes) -> bytes:
        return b + crc16_ccitt_false(b).to_bytes(2, "little")

    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    body("crc_flipped", bytes(bad_crc), "crc")
    body("short_body", recrc(good[:10]), "short")
    body("version_2", recrc(bytes([2]) + good[1:-2]), "version")
    body("unknown_type_0x55", recrc(good[:1] + b"\x55" + good[2:-2]), "unknown_type")
    body("reserved_flag_bit", recrc(good[:2] + bytes([good[2] | 0x80]) + good[3:-2]), "flags")
    body("len_field_too_big", recrc(good[:13] + (good[13] + 1).to_bytes(2, "little") + good[15:-2]), "length")
    body("len_field_over_240", recrc(good[:13] + (241).to_bytes(2, "little") + good[15:-2]), "length")
    bad_tag = bytearray(good[:-2])
    bad_tag[-1] ^= 0xFF
    body("tag_forged", recrc(bytes(bad_tag)), "bad_auth", "auth")
    body("event_truncated_data", encode_body(MsgType.EVENT, DEV, 50, bytes([0x10]) + (0).to_bytes(4, "little") + b"\x01", key=KEY),
         "bad_payload", "payload")
    body("event_unknown_code", encode_body(MsgType.EVENT, DEV, 51, bytes([0x7E]) + (0).to_bytes(4, "little"), key=KEY),
         "unknown_code", "payload")
    body("event_gateway_internal_code", encode_body(MsgType.EVENT, DEV, 52, bytes([0x80]) + (0).to_bytes(4, "little"), key=KEY),
         "unknown_code", "payload")
    body("ack_bad_status", encode_body(MsgType.ACK, DEV, 53, (1).to_bytes(4, "little") + b"\x09", key=KEY), "bad_payload", "payload")
    body("event_fall_data_too_long", encode_body(MsgType.EVENT, DEV, 54, bytes([0x10]) + (0).to_bytes(4, "little") +
                                                 b"\x60\x01\x01\x57\x00", key=KEY),
         "bad_payload", "payload")
    cases.append(("empty", b"\x00", "empty", "frame"))
    cases.append(("cobs_code_past_end", bytes([0x05, 0x01, 0x02]) + b"\x00", "cobs", "frame"))
    cases.append(("oversize", bytes([0xFF]) + bytes(range(1, 255)) + bytes([0x30]) + bytes(range(1, 48)) + b"\x00", "oversize", "frame"))
    out = []
    for name, wire, reason, stage in cases:
        out.append({"name": name, "key_hex": KEY.hex(), "wire_hex": wire.hex(), "reason": reason, "stage": stage})
    return out


def check_invalid(entry: dict[str, Any]) -> str:
    """The reason a full decode (frame, then tag with the key, then payload) gives."""
    frame = decode_wire(bytes.fromhex(entry["wire_hex"]))
    if isinstance(frame, Rejection):
        return frame.reason.value
    key = bytes.fromhex(entry["key_hex"]) if entry.get("key_hex") else None
    if key is not None and frame.authenticated and not frame.verify(key):
        return "bad_auth"
    p = frame.decode_payload()
    return p.reason.value if isinstance(p, Rejection) else "ok"


def _advert(name: str, objects: list[tuple[int, Any]], *, key: bytes | None = None, counter: int | None = None,
            mac: str = BT_MAC, trigger: bool = False, mac_included: bool = False, note: str = "") -> dict[str, Any]:
    data = encode_advert(objects, key=key, mac=mac, counter=counter, trigger_based=trigger, mac_included=mac_included)
    adv = decode_advert(data, mac=mac, key=key)
    assert not isinstance(adv, Rejection), (name, adv)
    ev = advert_events(adv)
    out: dict[str, Any] = {"name": name, "mac": mac, "key_hex": key.hex() if key else None,
                           "service_data_hex": data.hex(), "decoded": advert_to_json(adv),
                           "events": [payload_to_json(e) for e in ev.events]}
    if note:
        out["note"] = note
    return out


def adverts() -> list[dict[str, Any]]:
    raw_fall = bytes([EventCode.FALL_DETECTED, 0x60, 0x01, 0x00])
    return [
        {"name": "bthome_io_encryption_example", "mac": BT_MAC, "key_hex": BT_KEY.hex(),
         "service_data_hex": "41e445f3c9962b332211006c7c4519",
         "decoded": advert_to_json(_must(decode_advert(bytes.fromhex("41e445f3c9962b332211006c7c4519"), mac=BT_MAC, key=BT_KEY))),
         "events": [], "note": "the example of https://bthome.io/encryption/ (temperature 25.06 °C, humidity 50.55 %)"},
        _advert("encrypted_button_press", [(bthome.BATTERY, 93), (bthome.BUTTON, 1), (bthome.DEVICE_TYPE, int(Role.BUTTON))],
                key=KEY, counter=0x2A, mac=DEV, trigger=True),
        _advert("encrypted_button_long_press_cancel", [(bthome.BUTTON, 4)], key=KEY, counter=0x2B, mac=DEV, trigger=True),
        _advert("encrypted_raw_fall_event", [(bthome.VOLTAGE, 2.95), (bthome.RAW, raw_fall)], key=KEY, counter=0x2C, mac=DEV,
                note="raw object 0x54 = welfare event code + data (no age): fall_detected, peak 3.52 g, chest"),
        _advert("encrypted_mac_included", [(bthome.BUTTON, 1)], key=KEY, counter=0x2D, mac=DEV, mac_included=True,
                note="device-info bit1: the identity MAC follows the info byte, least significant byte first; it is the MAC of the nonce"),
        _advert("unencrypted_door_open", [(bthome.PACKET_ID, 17), (bthome.BATTERY, 80), (bthome.DOOR, 1)], mac=DEV2),
        _advert("unencrypted_bed_out", [(bthome.PACKET_ID, 18), (bthome.OCCUPANCY, 0)], mac=DEV2),
        _advert("unencrypted_motion_tamper_fw", [(bthome.PACKET_ID, 19), (bthome.MOTION, 1), (bthome.TAMPER, 1),
                (bthome.DEVICE_TYPE, int(Role.MOTION)), (bthome.FIRMWARE_U24, "1.2.3")], mac=DEV2),
        _advert("unencrypted_telemetry", [(0x02, -4.25), (0x03, 55.5), (0x2E, 40), (0x53, "hi"), (0x58, 3.5)], mac=DEV2,
                note="telemetry only, incl. a signed value, a variable-length text object and the 0.35 factor"),
    ]


def invalid_adverts() -> list[dict[str, Any]]:
    good = encode_advert([(bthome.BUTTON, 1)], key=KEY, mac=DEV, counter=0x30)
    tampered = bytearray(good)
    tampered[1] ^= 0x01
    cases = [
        ("empty", b"", None, "empty"),
        ("bthome_v1_info_byte", bytes([0x20, 0x02, 0xCA, 0x09]), None, "version"),
        ("unknown_object_id", bytes([0x40, 0x01, 0x50, 0xFE, 0x00]), None, "unknown_object"),
        ("truncated_object", bytes([0x40, 0x02, 0xCA]), None, "short"),
        ("encrypted_wrong_key", good, KEY2, "bad_auth"),
        ("encrypted_tampered", bytes(tampered), KEY, "bad_auth"),
        ("encrypted_too_short", bytes([0x41, 0x01, 0x02, 0x03]), KEY, "short"),
    ]
    out = []
    for name, data, key, reason in cases:
        r = decode_advert(data, mac=DEV, key=key)
        assert isinstance(r, Rejection) and r.reason.value == reason, (name, r)
        out.append({"name": name, "mac": DEV, "key_hex": key.hex() if key else None, "service_data_hex": data.hex(), "reason": reason})
    return out


def _must(x: Any) -> Any:
    assert not isinstance(x, Rejection), x
    return x


def _g(name: str, uuid: int, flags: int, fields: dict[str, Any], note: str = "") -> dict[str, Any]:
    value = encode_gatt(uuid, flags, fields)
    reading = _must(decode_gatt(uuid, value))
    out = {"name": name, "uuid": f"{uuid:04X}", "value_hex": value.hex(), "decoded": reading.to_json()}
    if note:
        out["note"] = note
    return out


def gatt_samples() -> list[dict[str, Any]]:
    sf = MedFloat
    ts = DateTime(2026, 11, 23, 6, 0, 0)
    return [
        _g("bpm_mmhg_full", gatt.BPM, 0x1E, {"systolic": sf(120, 0), "diastolic": sf(80, 0), "mean_arterial_pressure": sf(93, 0),
           "timestamp": ts, "pulse_rate": sf(72, 0), "user_id": 1, "measurement_status": 0x0004 | (1 << 3)}),
        _g("bpm_kpa_minimal_nan_map", gatt.BPM, 0x01, {"systolic": sf(160, -1), "diastolic": sf(107, -1),
           "mean_arterial_pressure": special(SFloatSpecial.NAN)}),
        _g("temperature_celsius_type", gatt.TEMPERATURE, 0x06, {"temperature": sf(3685, -2), "timestamp": ts, "temperature_type": 2}),
        _g("temperature_fahrenheit", gatt.TEMPERATURE, 0x01, {"temperature": sf(986, -1)}),
        _g("temperature_nres", gatt.TEMPERATURE, 0x00, {"temperature": MedFloat(0, 0, SFloatSpecial.NRES)}),
        _g("weight_si_bmi_height", gatt.WEIGHT, 0x0E, {"weight": 72.5, "timestamp": ts, "user_id": 2, "bmi": 23.4, "height": 1.76}),
        _g("weight_imperial", gatt.WEIGHT, 0x09, {"weight": 159.84, "bmi": 23.4, "height": 69.3}),
        _g("weight_unsuccessful", gatt.WEIGHT, 0x00, {"weight": None}),
        _g("plx_spot_full", gatt.PLX_SPOT, 0x0F, {"spo2": sf(97, 0), "pulse_rate": sf(64, 0), "timestamp": ts,
           "measurement_status": 0x0100, "device_and_sensor_status": 0x000020, "pulse_amplitude_index": sf(45, -1)}),
        _g("plx_spot_clock_not_set_inf", gatt.PLX_SPOT, 0x10, {"spo2": special(SFloatSpecial.POS_INF), "pulse_rate": special(SFloatSpecial.NEG_INF)}),
        _g("plx_continuous_full", gatt.PLX_CONTINUOUS, 0x1F, {"spo2": sf(96, 0), "pulse_rate": sf(70, 0), "spo2_fast": sf(95, 0),
           "pulse_rate_fast": sf(72, 0), "spo2_slow": sf(96, 0), "pulse_rate_slow": sf(69, 0), "measurement_status": 0x0080,
           "device_and_sensor_status": 0x008000, "pulse_amplitude_index": special(SFloatSpecial.RESERVED)}),
        _g("glucose_kg_per_l", gatt.GLUCOSE, 0x0B, {"sequence_number": 17, "base_time": ts, "time_offset_min": -30,
           "concentration": sf(95, -5), "sample_type": 1, "sample_location": 1, "sensor_status": 0x0001},
           "95 mg/dL = 0.00095 kg/L; capillary whole blood, finger; battery low"),
        _g("glucose_mol_per_l_context", gatt.GLUCOSE, 0x16, {"sequence_number": 18, "base_time": DateTime(0, 0, 0, 0, 0, 0),
           "concentration": sf(53, -4), "sample_type": 10, "sample_location": 4}, "5.3 mmol/L, control solution, base time unknown"),
    ]


def invalid_gatt() -> list[dict[str, Any]]:
    cases = [
        ("bpm_truncated", gatt.BPM, bytes([0x00, 0x78, 0x00, 0x50]), "short"),
        ("bpm_trailing_bytes", gatt.BPM, bytes([0x00, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0xAA]), "length"),
        ("temperature_timestamp_month_13", gatt.TEMPERATURE, bytes([0x02, 0x65, 0x0E, 0x00, 0xFE]) + bytes([0xEA, 0x07, 13, 1, 0, 0, 0]), "bad_payload"),
        ("empty", gatt.GLUCOSE, b"", "empty"),
        ("unsupported_uuid", 0x2A37, bytes([0x00, 0x48]), "unknown_uuid"),
    ]
    out = []
    for name, uuid, data, reason in cases:
        r = decode_gatt(uuid, data)
        assert isinstance(r, Rejection) and r.reason.value == reason, (name, r)
        out.append({"name": name, "uuid": f"{uuid:04X}", "value_hex": data.hex(), "reason": reason})
    return out


def medfloats() -> dict[str, list[dict[str, Any]]]:
    s_raw = [0x0078, 0xF06B, 0xFE49, 0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801, 0x27FF, 0x0000, 0x87FD, 0x7803]
    f_raw = [0xFE00016A, 0xFF000E65, 0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002, 0x00800001, 0x00FFFFFF, 0x7F000001]
    return {
        "sfloat": [{"raw": r, "raw_hex": r.to_bytes(2, "little").hex(), "value": decode_sfloat(r).to_json(),
                    "mantissa": decode_sfloat(r).mantissa, "exponent": decode_sfloat(r).exponent} for r in s_raw],
        "float": [{"raw": r, "raw_hex": r.to_bytes(4, "little").hex(), "value": decode_float(r).to_json(),
                   "mantissa": decode_float(r).mantissa, "exponent": decode_float(r).exponent} for r in f_raw],
    }


def replay_sequences() -> list[dict[str, Any]]:
    seqs = [5, 6, 6, 4, 3, 70, 7, 6, 69, 71, 7, 200, 137, 136, 0]
    window = ReplayWindow()
    steps = [{"seq": s, "accepted": window.accept(s)} for s in seqs]
    return [{"name": "window_64", "steps": steps, "final_state_hex": window.to_bytes().hex()}]


def cobs_cases() -> list[dict[str, Any]]:
    inputs = [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", b"\x11\x22\x33\x44", b"\x11\x00\x00\x00",
              bytes(range(1, 255)), bytes(range(0, 255)), bytes(range(1, 256)), bytes(range(2, 256)) + b"\x00",
              bytes(range(3, 256)) + b"\x00\x01"]
    out = []
    for data in inputs:
        enc = cobs_encode(data)
        assert cobs_decode(enc) == data
        out.append({"decoded_hex": data.hex(), "encoded_hex": enc.hex()})
    return out


def crc_cases() -> list[dict[str, Any]]:
    inputs = [b"123456789", b"", b"\x00", b"\xff\xff", bytes(range(32))]
    return [{"input_hex": d.hex(), "crc": crc16_ccitt_false(d)} for d in inputs]


def generate() -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": VECTORS_VERSION,
        "protocol_version": 1,
        "description": "Test vectors for docs/protocol.md. Generated by `python -m gateway.codec.vectors --write`; "
                       "do not edit by hand. Integers are plain JSON numbers, bytes are lower-case hex.",
        "keys": {DEV: KEY.hex(), DEV2: KEY2.hex(), BT_MAC: BT_KEY.hex()},
        "crc": crc_cases(),
        "cobs": cobs_cases(),
        "frames": frames(),
        "invalid_frames": invalid_frames(),
        "replay": replay_sequences(),
        "adverts": adverts(),
        "invalid_adverts": invalid_adverts(),
        "gatt": gatt_samples(),
        "invalid_gatt": invalid_gatt(),
        **medfloats(),
    }
    for entry in data["invalid_frames"]:
        got = check_invalid(entry)
        assert got == entry["reason"], (entry["name"], got)
    return plain(data)


def render() -> str:
    return json.dumps(generate(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.codec.vectors", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {DEFAULT_PATH}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.path.write_text(text, encoding="utf-8")
        print(f"wrote {args.path}", file=sys.stderr)
        return 0
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is stale: run python -m gateway.codec.vectors --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
