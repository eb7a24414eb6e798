"""GATT health characteristics and IEEE-11073 SFLOAT/FLOAT, exact per the SIG layouts."""
from __future__ import annotations

import math

import pytest

from gateway.codec import RejectReason, decode_float, decode_gatt, decode_sfloat
from gateway.codec.enums import SFloatSpecial
from gateway.codec.gatt import parse_uuid


@pytest.mark.parametrize("raw,value", [
    (0x0072, 114), (0xF06B, 10.7), (0xFE49, -43.9), (0x0FFF, -1), (0x1001, 10), (0xE7D0, 20.0), (0xD7D0, 2.0), (0x87D0, 0.00002),
])
def test_sfloat_values(raw, value):
    assert decode_sfloat(raw).value == pytest.approx(value)


@pytest.mark.parametrize("raw,special", [
    (0x07FF, SFloatSpecial.NAN), (0x0800, SFloatSpecial.NRES), (0x07FE, SFloatSpecial.POS_INF),
    (0x0802, SFloatSpecial.NEG_INF), (0x0801, SFloatSpecial.RESERVED),
])
def test_sfloat_specials(raw, special):
    v = decode_sfloat(raw)
    assert v.special is special and v.to_json() == special.value
    if special is SFloatSpecial.POS_INF:
        assert v.value == math.inf
    elif special is SFloatSpecial.NEG_INF:
        assert v.value == -math.inf
    else:
        assert v.value is None


@pytest.mark.parametrize("raw,special", [
    (0x007FFFFF, SFloatSpecial.NAN), (0x00800000, SFloatSpecial.NRES), (0x007FFFFE, SFloatSpecial.POS_INF),
    (0x00800002, SFloatSpecial.NEG_INF), (0x00800001, SFloatSpecial.RESERVED),
])
def test_float_specials(raw, special):
    assert decode_float(raw).special is special


def test_special_codes_only_with_exponent_zero():
    assert decode_sfloat(0x27FF).special is None and decode_sfloat(0x27FF).value == 204700
    assert decode_sfloat(0xF800).value == pytest.approx(-204.8)
    assert decode_float(0x017FFFFF).special is None and decode_float(0x017FFFFF).value == 83886070


def test_float_values():
    assert decode_float(0xFF00016A).value == pytest.approx(36.2)
    assert decode_float(0x00FFFFFF).value == -1
    assert decode_float(0x02000003).value == 300


def test_bpm_kpa_minimal():
    r = decode_gatt(0x2A35, bytes.fromhex("01a0f06bf0" + "5df0"))
    assert r.fields["unit"] == "kPa" and r.fields["systolic"].value == pytest.approx(16.0)
    assert r.fields["diastolic"].value == pytest.approx(10.7) and "pulse_rate" not in r.fields


def test_temperature_with_type():
    r = decode_gatt(0x2A1C, bytes.fromhex("04" + "6a0100ff" + "03"))
    assert r.to_json() == {"uuid": "2A1C", "characteristic": "temperature_measurement", "flags": 4,
                           "unit": "°C", "temperature": 36.2, "temperature_type": 3}


def test_weight_units_and_unsuccessful():
    r = decode_gatt(0x2A9D, bytes.fromhex("08" + "a438" + "ea00" + "e006"))  # SI, BMI+height
    assert (r.fields["weight"], r.fields["bmi"], r.fields["height"]) == (72.5, 23.4, 1.76)
    r = decode_gatt(0x2A9D, bytes.fromhex("01" + "703e"))
    assert (r.fields["unit"], r.fields["weight"]) == ("lb", 159.84)
    assert decode_gatt(0x2A9D, bytes.fromhex("00ffff")).fields["weight"] is None


def test_plx_spot_and_continuous():
    r = decode_gatt(0x2A5E, bytes.fromhex("0c" + "6100" + "4000" + "200000" + "2df0"))
    assert r.fields["spo2"].value == 97 and r.fields["device_and_sensor_status"] == 0x20
    assert r.fields["pulse_amplitude_index"].value == pytest.approx(4.5) and r.fields["device_clock_not_set"] is False
    r = decode_gatt(0x2A5F, bytes.fromhex("01" + "6000" + "4600" + "5f00" + "4800"))
    assert (r.fields["spo2_fast"].value, r.fields["pulse_rate_fast"].value) == (95, 72)


def test_glucose():
    r = decode_gatt(0x2A18, bytes.fromhex("03" + "1100" + "ea070b17060000" + "e2ff" + "5fb0" + "11"))
    f = r.to_json()
    assert f["sequence_number"] == 17 and f["time_offset_min"] == -30 and f["unit"] == "kg/L"
    assert f["concentration"] == pytest.approx(0.00095) and (f["sample_type"], f["sample_location"]) == (1, 1)


def test_rejections():
    assert decode_gatt(0x2A35, b"").reason is RejectReason.EMPTY
    assert decode_gatt(0x2A35, bytes.fromhex("0278005000")).reason is RejectReason.SHORT
    assert decode_gatt(0x2A1C, bytes.fromhex("006a0100ff00")).reason is RejectReason.LENGTH
    assert decode_gatt(0x2A1C, bytes.fromhex("026a0100ff" + "ea07" + "0c20000000")).reason is RejectReason.BAD_PAYLOAD
    assert decode_gatt(0x2A37, b"\x00\x48").reason is RejectReason.UNKNOWN_UUID


def test_parse_uuid():
    assert parse_uuid("2a35") == 0x2A35 and parse_uuid("0x2A18") == 0x2A18
    assert parse_uuid("00002a5f-0000-1000-8000-00805f9b34fb") == 0x2A5F
    assert parse_uuid("2A37") is None and parse_uuid("hello") is None
