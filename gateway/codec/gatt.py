"""Bluetooth SIG GATT health characteristics (docs/protocol.md §5). Pure; never raise.

Layouts per the GATT Specification Supplement: a flags byte, mandatory fields, then
optional fields in a fixed order, each present when its flag bit is set. Multi-byte
integers little-endian. A payload with bytes left over after the fields its flags
announce is rejected (``length``): we cannot know what they mean.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.codec._result import CodecError, Rejection
from gateway.codec.enums import RejectReason
from gateway.codec.ieee11073 import MedFloat, decode_float, decode_sfloat, encode_float, encode_sfloat


@dataclass(frozen=True)
class DateTime:
    """GATT Date Time (0x2A08): year 0 / month 0 / day 0 mean "not known"."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    def to_json(self) -> str | dict[str, int]:
        if self.year and self.month and self.day:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"
        return {"year": self.year, "month": self.month, "day": self.day,
                "hours": self.hours, "minutes": self.minutes, "seconds": self.seconds}


@dataclass(frozen=True)
class GattReading:
    uuid: int
    name: str
    flags: int
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uuid": f"{self.uuid:04X}", "characteristic": self.name, "flags": self.flags}
        for k, v in self.fields.items():
            out[k] = v.to_json() if isinstance(v, (MedFloat, DateTime)) else v
        return out


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int, name: str) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise _Short(f"{self.what}: {name} needs {n} bytes at offset {self.pos}, {len(chunk)} left")
        self.pos += n
        return chunk

    def u8(self, name: str) -> int:
        return self.take(1, name)[0]

    def u16(self, name: str) -> int:
        return int(struct.unpack("<H", self.take(2, name))[0])

    def s16(self, name: str) -> int:
        return int(struct.unpack("<h", self.take(2, name))[0])

    def u24(self, name: str) -> int:
        return int.from_bytes(self.take(3, name), "little")

    def sfloat(self, name: str) -> MedFloat:
        return decode_sfloat(self.u16(name))

    def float32(self, name: str) -> MedFloat:
        return decode_float(int(struct.unpack("<I", self.take(4, name))[0]))

    def datetime(self, name: str) -> DateTime:
        y, mo, d, h, mi, s = struct.unpack("<HBBBBB", self.take(7, name))
        dt = DateTime(y, mo, d, h, mi, s)
        if (y and not 1582 <= y <= 9999) or mo > 12 or d > 31 or h > 23 or mi > 59 or s > 59:
            raise _Bad(f"{self.what}: {name} {dt} out of range")
        return dt


class _Short(Exception):
    pass


class _Bad(Exception):
    pass


BPM = 0x2A35
TEMPERATURE = 0x2A1C
WEIGHT = 0x2A9D
PLX_SPOT = 0x2A5E
PLX_CONTINUOUS = 0x2A5F
GLUCOSE = 0x2A18

NAMES = {
    BPM: "blood_pressure_measurement",
    TEMPERATURE: "temperature_measurement",
    WEIGHT: "weight_measurement",
    PLX_SPOT: "plx_spot_check_measurement",
    PLX_CONTINUOUS: "plx_continuous_measurement",
    GLUCOSE: "glucose_measurement",
}

WEIGHT_UNSUCCESSFUL = 0xFFFF


def _bpm(r: _Reader, flags: int) -> dict[str, Any]:
    f: dict[str, Any] = {"unit": "kPa" if flags & 0x01 else "mmHg"}
    f["systolic"] = r.sfloat("systolic")
    f["diastolic"] = r.sfloat("diastolic")
    f["mean_arterial_pressure"] = r.sfloat("mean arterial pressure")
    if flags & 0x02:
        f["timestamp"] = r.datetime("time stamp")
    if flags & 0x04:
        f["pulse_rate"] = r.sfloat("pulse rate")
    if flags & 0x08:
        f["user_id"] = r.u8("user id")
    if flags & 0x10:
        status = r.u16("measurement status")
        f["measurement_status"] = status
        f["body_movement"] = bool(status & 0x0001)
        f["cuff_too_loose"] = bool(status & 0x0002)
        f["irregular_pulse"] = bool(status & 0x0004)
        f["pulse_rate_range"] = ("within", "above_upper", "below_lower", "reserved")[(status >> 3) & 0x3]
        f["improper_position"] = bool(status & 0x0020)
    return f


def _temperature(r: _Reader, flags: int) -> dict[str, Any]:
    f: dict[str, Any] = {"unit": "°F" if flags & 0x01 else "°C"}
    f["temperature"] = r.float32("temperature")
    if flags & 0x02:
        f["timestamp"] = r.datetime("time stamp")
    if flags & 0x04:
        f["temperature_type"] = r.u8("temperature type")
    return f


def _weight(r: _Reader, flags: int) -> dict[str, Any]:
    imperial = bool(flags & 0x01)
    f: dict[str, Any] = {"unit": "lb" if imperial else "kg"}
    raw = r.u16("weight")
    f["weight"] = None if raw == WEIGHT_UNSUCCESSFUL else (round(raw * 0.01, 2) if imperial else round(raw * 0.005, 3))
    if flags & 0x02:
        f["timestamp"] = r.datetime("time stamp")
    if flags & 0x04:
        f["user_id"] = r.u8("user id")
    if flags & 0x08:
        f["bmi"] = round(r.u16("BMI") * 0.1, 1)
        h = r.u16("height")
        f["height_unit"] = "in" if imperial else "m"
        f["height"] = round(h * 0.1, 1) if imperial else round(h * 0.001, 3)
    return f


def _plx_spot(r: _Reader, flags: int) -> dict[str, Any]:
    f: dict[str, Any] = {"spo2": r.sfloat("SpO2"), "pulse_rate": r.sfloat("pulse rate")}
    if flags & 0x01:
        f["timestamp"] = r.datetime("time stamp")
    if flags & 0x02:
        f["measurement_status"] = r.u16("measurement status")
    if flags & 0x04:
        f["device_and_sensor_status"] = r.u24("device and sensor status")
    if flags & 0x08:
        f["pulse_amplitude_index"] = r.sfloat("pulse amplitude index")
    f["device_clock_not_set"] = bool(flags & 0x10)
    return f


def _plx_continuous(r: _Reader, flags: int) -> dict[str, Any]:
    f: dict[str, Any] = {"spo2": r.sfloat("SpO2"), "pulse_rate": r.sfloat("pulse rate")}
    if flags & 0x01:
        f["spo2_fast"] = r.sfloat("SpO2 fast")
        f["pulse_rate_fast"] = r.sfloat("pulse rate fast")
    if flags & 0x02:
        f["spo2_slow"] = r.sfloat("SpO2 slow")
        f["pulse_rate_slow"] = r.sfloat("pulse rate slow")
    if flags & 0x04:
        f["measurement_status"] = r.u16("measurement status")
    if flags & 0x08:
        f["device_and_sensor_status"] = r.u24("device and sensor status")
    if flags & 0x10:
        f["pulse_amplitude_index"] = r.sfloat("pulse amplitude index")
    return f


def _glucose(r: _Reader, flags: int) -> dict[str, Any]:
    f: dict[str, Any] = {"sequence_number": r.u16("sequence number"), "base_time": r.datetime("base time")}
    if flags & 0x01:
        f["time_offset_min"] = r.s16("time offset")
    if flags & 0x02:
        f["unit"] = "mol/L" if flags & 0x04 else "kg/L"
        f["concentration"] = r.sfloat("glucose concentration")
        ts = r.u8("type-sample location")
        f["sample_type"] = ts & 0x0F
        f["sample_location"] = ts >> 4
    if flags & 0x08:
        f["sensor_status"] = r.u16("sensor status annunciation")
    f["context_follows"] = bool(flags & 0x10)
    return f


_DECODERS: dict[int, Callable[[_Reader, int], dict[str, Any]]] = {
    BPM: _bpm, TEMPERATURE: _temperature, WEIGHT: _weight,
    PLX_SPOT: _plx_spot, PLX_CONTINUOUS: _plx_continuous, GLUCOSE: _glucose,
}

SUPPORTED_UUIDS = frozenset(_DECODERS)


def parse_uuid(text: str) -> int | None:
    """``2A35``, ``0x2a35`` or the 128-bit SIG base form -> 0x2A35; None if not a supported UUID."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if len(t) == 36 and t.endswith("-0000-1000-8000-00805f9b34fb") and t.startswith("0000"):
        t = t[4:8]
    try:
        value = int(t, 16)
    except ValueError:
        return None
    return value if value in _DECODERS else None


def decode_gatt(uuid: int, data: bytes) -> GattReading | Rejection:
    """Decode one characteristic value. Never raises."""
    dec = _DECODERS.get(uuid)
    if dec is None:
        return Rejection(RejectReason.UNKNOWN_UUID, f"characteristic 0x{uuid:04X} is not a supported health profile "
                         f"(supported: {', '.join(f'{u:04X}' for u in sorted(_DECODERS))})")
    data = bytes(data)
    if not data:
        return Rejection(RejectReason.EMPTY, f"{NAMES[uuid]}: empty value")
    reader = _Reader(data, NAMES[uuid])
    flags = reader.u8("flags")
    try:
        fields = dec(reader, flags)
    except _Short as exc:
        return Rejection(RejectReason.SHORT, str(exc))
    except _Bad as exc:
        return Rejection(RejectReason.BAD_PAYLOAD, str(exc))
    if reader.pos != len(data):
        return Rejection(RejectReason.LENGTH, f"{NAMES[uuid]}: {len(data) - reader.pos} bytes left after the fields flags 0x{flags:02x} announce")
    return GattReading(uuid, NAMES[uuid], flags, fields)


# ---- encoders (for emulators and tests; trusted input, raise on bad values) ----

def _dt(v: DateTime) -> bytes:
    return struct.pack("<HBBBBB", v.year, v.month, v.day, v.hours, v.minutes, v.seconds)


def _sf(v: MedFloat) -> bytes:
    return struct.pack("<H", encode_sfloat(v))


def encode_gatt(uuid: int, flags: int, fields: dict[str, Any]) -> bytes:
    """Inverse of :func:`decode_gatt` for the fields its flags announce."""
    f = fields
    out = bytearray([flags])
    if uuid == BPM:
        out += _sf(f["systolic"]) + _sf(f["diastolic"]) + _sf(f["mean_arterial_pressure"])
        if flags & 0x02:
            out += _dt(f["timestamp"])
        if flags & 0x04:
            out += _sf(f["pulse_rate"])
        if flags & 0x08:
            out += bytes([f["user_id"]])
        if flags & 0x10:
            out += struct.pack("<H", f["measurement_status"])
    elif uuid == TEMPERATURE:
        out += struct.pack("<I", encode_float(f["temperature"]))
        if flags & 0x02:
            out += _dt(f["timestamp"])
        if flags & 0x04:
            out += bytes([f["temperature_type"]])
    elif uuid == WEIGHT:
        imperial = bool(flags & 0x01)
        w = f["weight"]
        out += struct.pack("<H", WEIGHT_UNSUCCESSFUL if w is None else round(w / (0.01 if imperial else 0.005)))
        if flags & 0x02:
            out += _dt(f["timestamp"])
        if flags & 0x04:
            out += bytes([f["user_id"]])
        if flags & 0x08:
            out += struct.pack("<HH", round(f["bmi"] * 10), round(f["height"] / (0.1 if imperial else 0.001)))
    elif uuid == PLX_SPOT:
        out += _sf(f["spo2"]) + _sf(f["pulse_rate"])
        if flags & 0x01:
            out += _dt(f["timestamp"])
        if flags & 0x02:
            out += struct.pack("<H", f["measurement_status"])
        if flags & 0x04:
            out += f["device_and_sensor_status"].to_bytes(3, "little")
        if flags & 0x08:
            out += _sf(f["pulse_amplitude_index"])
    elif uuid == PLX_CONTINUOUS:
        out += _sf(f["spo2"]) + _sf(f["pulse_rate"])
        if flags & 0x01:
            out += _sf(f["spo2_fast"]) + _sf(f["pulse_rate_fast"])
        if flags & 0x02:
            out += _sf(f["spo2_slow"]) + _sf(f["pulse_rate_slow"])
        if flags & 0x04:
            out += struct.pack("<H", f["measurement_status"])
        if flags & 0x08:
            out += f["device_and_sensor_status"].to_bytes(3, "little")
        if flags & 0x10:
            out += _sf(f["pulse_amplitude_index"])
    elif uuid == GLUCOSE:
        out += struct.pack("<H", f["sequence_number"]) + _dt(f["base_time"])
        if flags & 0x01:
            out += struct.pack("<h", f["time_offset_min"])
        if flags & 0x02:
            out += _sf(f["concentration"]) + bytes([(f["sample_location"] << 4) | f["sample_type"]])
        if flags & 0x08:
            out += struct.pack("<H", f["sensor_status"])
    else:
        raise CodecError(f"no encoder for characteristic 0x{uuid:04X}")
    return bytes(out)
