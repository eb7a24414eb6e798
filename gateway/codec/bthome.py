"""BTHome v2 advertisement codec (service data of UUID 0xFCD2), incl. AES-CCM encryption.

Format per https://bthome.io/format/ and https://bthome.io/encryption/: first byte the
device-information byte (bit0 encrypted, bit1 MAC included, bit2 trigger-based, bits
5..7 version = 2), then [6 MAC bytes, least significant first, if bit1], then
``(object id, value)`` pairs, little-endian. Encrypted: ``devinfo ‖ ciphertext ‖
counter u32 LE ‖ MIC[4]``, AES-CCM with nonce ``MAC(6, display order) ‖ d2 fc ‖ devinfo ‖
counter u32 LE`` and no associated data.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterable

from gateway.codec._result import CodecError, Rejection
from gateway.codec.enums import BTHomeButton, RejectReason
from gateway.codec.events import EventPayload, decode_event_data
from gateway.domain.model import EventCode

UUID16 = 0xFCD2
UUID16_LE = b"\xd2\xfc"
BTHOME_VERSION = 2
INFO_ENCRYPTED = 0x01
INFO_MAC_INCLUDED = 0x02   # the advertiser's MAC follows the info byte, LSB first
INFO_TRIGGER = 0x04
INFO_VERSION_SHIFT = 5
MIC_LEN = 4
COUNTER_LEN = 4

TEXT = 0x53
RAW = 0x54
PACKET_ID = 0x00
BATTERY = 0x01
VOLTAGE = 0x0C
DOOR = 0x1A
MOTION = 0x21
OCCUPANCY = 0x23
TAMPER = 0x2B
BUTTON = 0x3A
DEVICE_TYPE = 0xF0
FIRMWARE_U32 = 0xF1
FIRMWARE_U24 = 0xF2


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    size: int          # bytes; 0 = variable (first byte is the length)
    signed: bool = False
    mult: int = 1      # value = raw * mult / 10**decimals
    decimals: int = 0


def _u(name: str, size: int, decimals: int = 0, mult: int = 1) -> ObjectSpec:
    return ObjectSpec(name, size, False, mult, decimals)


def _s(name: str, size: int, decimals: int = 0, mult: int = 1) -> ObjectSpec:
    return ObjectSpec(name, size, True, mult, decimals)


# Object ids, sizes, signedness and factors from the BTHome v2 format table.
OBJECTS: dict[int, ObjectSpec] = {
    0x00: _u("packet_id", 1), 0x01: _u("battery", 1), 0x02: _s("temperature", 2, 2),
    0x03: _u("humidity", 2, 2), 0x04: _u("pressure", 3, 2), 0x05: _u("illuminance", 3, 2),
    0x06: _u("mass_kg", 2, 2), 0x07: _u("mass_lb", 2, 2), 0x08: _s("dewpoint", 2, 2),
    0x09: _u("count", 1), 0x0A: _u("energy", 3, 3), 0x0B: _u("power", 3, 2),
    0x0C: _u("voltage", 2, 3), 0x0D: _u("pm2_5", 2), 0x0E: _u("pm10", 2),
    0x0F: _u("generic_boolean", 1), 0x10: _u("power_on", 1), 0x11: _u("opening", 1),
    0x12: _u("co2", 2), 0x13: _u("tvoc", 2), 0x14: _u("moisture", 2, 2),
    0x15: _u("battery_low", 1), 0x16: _u("battery_charging", 1), 0x17: _u("carbon_monoxide", 1),
    0x18: _u("cold", 1), 0x19: _u("connectivity", 1), 0x1A: _u("door", 1),
    0x1B: _u("garage_door", 1), 0x1C: _u("gas_detected", 1), 0x1D: _u("heat", 1),
    0x1E: _u("light", 1), 0x1F: _u("lock", 1), 0x20: _u("moisture_detected", 1),
    0x21: _u("motion", 1), 0x22: _u("moving", 1), 0x23: _u("occupancy", 1),
    0x24: _u("plug", 1), 0x25: _u("presence", 1), 0x26: _u("problem", 1),
    0x27: _u("running", 1), 0x28: _u("safety", 1), 0x29: _u("smoke", 1),
    0x2A: _u("sound", 1), 0x2B: _u("tamper", 1), 0x2C: _u("vibration", 1),
    0x2D: _u("window", 1), 0x2E: _u("humidity_coarse", 1), 0x2F: _u("moisture_coarse", 1),
    0x3A: _u("button", 1), 0x3C: _u("dimmer", 2), 0x3D: _u("count_u16", 2),
    0x3E: _u("count_u32", 4), 0x3F: _s("rotation", 2, 1), 0x40: _u("distance_mm", 2),
    0x41: _u("distance_m", 2, 1), 0x42: _u("duration", 3, 3), 0x43: _u("current", 2, 3),
    0x44: _u("speed", 2, 2), 0x45: _s("temperature_coarse", 2, 1), 0x46: _u("uv_index", 1, 1),
    0x47: _u("volume_l", 2, 1), 0x48: _u("volume_ml", 2), 0x49: _u("volume_flow_rate", 2, 3),
    0x4A: _u("voltage_coarse", 2, 1), 0x4B: _u("gas", 3, 3), 0x4C: _u("gas_u32", 4, 3),
    0x4D: _u("energy_u32", 4, 3), 0x4E: _u("volume", 4, 3), 0x4F: _u("water", 4, 3),
    0x50: _u("timestamp", 4), 0x51: _u("acceleration", 2, 3), 0x52: _u("gyroscope", 2, 3),
    0x53: _u("text", 0), 0x54: _u("raw", 0), 0x55: _u("volume_storage", 4, 3),
    0x56: _u("conductivity", 2), 0x57: _s("temperature_s8", 1), 0x58: _s("temperature_035", 1, 2, 35),
    0x59: _s("count_s8", 1), 0x5A: _s("count_s16", 2), 0x5B: _s("count_s32", 4),
    0x5C: _s("power_s32", 4, 2), 0x5D: _s("current_s16", 2, 3), 0x5E: _u("direction", 2, 2),
    0x5F: _u("precipitation", 2, 1), 0x60: _u("channel", 1), 0x61: _u("rotational_speed", 2),
    0xF0: _u("device_type", 2), 0xF1: _u("firmware_version_u32", 4), 0xF2: _u("firmware_version", 3),
}


@dataclass(frozen=True)
class BTHomeObject:
    object_id: int
    name: str
    value: Any          # int, float, str (text, firmware), bytes (raw)
    raw: int | bytes    # the unscaled integer, or the bytes of a variable-length object


@dataclass(frozen=True)
class Advert:
    device_info: int
    objects: tuple[BTHomeObject, ...]
    counter: int | None = None   # encrypted adverts only
    mac: str | None = None

    @property
    def encrypted(self) -> bool:
        return bool(self.device_info & INFO_ENCRYPTED)

    @property
    def mac_included(self) -> bool:
        return bool(self.device_info & INFO_MAC_INCLUDED)

    @property
    def trigger_based(self) -> bool:
        return bool(self.device_info & INFO_TRIGGER)

    def first(self, object_id: int) -> BTHomeObject | None:
        return next((o for o in self.objects if o.object_id == object_id), None)

    def all(self, object_id: int) -> list[BTHomeObject]:
        return [o for o in self.objects if o.object_id == object_id]


def normalise_mac(mac: str) -> bytes:
    try:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise CodecError(f"MAC {mac!r} must be 6 bytes, e.g. A4:C1:38:0A:1B:2C", field="mac", value=mac)
    return raw


def bthome_nonce(mac: bytes, device_info: int, counter: int) -> bytes:
    return mac + UUID16_LE + bytes([device_info]) + struct.pack("<I", counter)


def _scale(spec: ObjectSpec, raw: int) -> int | float:
    if spec.decimals == 0 and spec.mult == 1:
        return raw
    return round(raw * spec.mult / 10 ** spec.decimals, spec.decimals + 2)


def _value(oid: int, spec: ObjectSpec, raw: int) -> Any:
    if oid == FIRMWARE_U24:
        return f"{raw >> 16}.{(raw >> 8) & 0xFF}.{raw & 0xFF}"
    if oid == FIRMWARE_U32:
        return f"{raw >> 24}.{(raw >> 16) & 0xFF}.{(raw >> 8) & 0xFF}.{raw & 0xFF}"
    return _scale(spec, raw)


def parse_objects(data: bytes) -> tuple[BTHomeObject, ...] | Rejection:
    """Parse the (decrypted) object list. Never raises."""
    out: list[BTHomeObject] = []
    i = 0
    n = len(data)
    while i < n:
        oid = data[i]
        spec = OBJECTS.get(oid)
        if spec is None:
            return Rejection(RejectReason.UNKNOWN_OBJECT, f"BTHome object id 0x{oid:02x} at offset {i} has no known size")
        i += 1
        if spec.size == 0:
            if i >= n:
                return Rejection(RejectReason.SHORT, f"BTHome {spec.name} object is missing its length byte")
            length = data[i]
            i += 1
            blob = data[i:i + length]
            if len(blob) != length:
                return Rejection(RejectReason.SHORT, f"BTHome {spec.name} object claims {length} bytes, {len(blob)} left")
            i += length
            if oid == TEXT:
                try:
                    text = blob.decode("utf-8")
                except UnicodeDecodeError:
                    return Rejection(RejectReason.BAD_PAYLOAD, "BTHome text object is not UTF-8")
                out.append(BTHomeObject(oid, spec.name, text, bytes(blob)))
            else:
                out.append(BTHomeObject(oid, spec.name, bytes(blob), bytes(blob)))
            continue
        chunk = data[i:i + spec.size]
        if len(chunk) != spec.size:
            return Rejection(RejectReason.SHORT, f"BTHome {spec.name} object needs {spec.size} bytes, {len(chunk)} left")
        i += spec.size
        raw = int.from_bytes(chunk, "little", signed=spec.signed)
        out.append(BTHomeObject(oid, spec.name, _value(oid, spec, raw), raw))
    return tuple(out)


def decode_advert(service_data: bytes, *, mac: str | None = None, key: bytes | None = None) -> Advert | Rejection:
    """Decode BTHome v2 service data; decrypt with ``key`` (and ``mac``) if encrypted. Never raises."""
    data = bytes(service_data)
    if not data:
        return Rejection(RejectReason.EMPTY, "empty BTHome service data")
    info = data[0]
    version = info >> INFO_VERSION_SHIFT
    if version != BTHOME_VERSION:
        return Rejection(RejectReason.VERSION, f"BTHome version {version} in device-info byte 0x{info:02x}, only v2 is supported")
    mac_text: str | None = None
    mac_raw: bytes | None = None
    if mac is not None:
        try:
            mac_raw = normalise_mac(mac)
        except ValueError:
            return Rejection(RejectReason.BAD_PAYLOAD, f"MAC {mac!r} is not 6 hex bytes")
        mac_text = mac_raw.hex()
    counter: int | None = None
    body = data[1:]
    if info & INFO_MAC_INCLUDED:
        if len(body) < 6:
            return Rejection(RejectReason.SHORT, "BTHome advert announces a MAC but has fewer than 6 bytes after the info byte", mac_text)
        mac_raw = bytes(reversed(body[:6]))
        mac_text = mac_raw.hex()
        body = body[6:]
    if info & INFO_ENCRYPTED:
        if len(body) < COUNTER_LEN + MIC_LEN:
            return Rejection(RejectReason.SHORT, f"encrypted BTHome advert of {len(data)} bytes is too short", mac_text)
        ciphertext, ctr, mic = body[:-8], body[-8:-4], body[-4:]
        counter = struct.unpack("<I", ctr)[0]
        if key is None or mac_raw is None:
            return Rejection(RejectReason.BAD_AUTH, "encrypted BTHome advert: the device key and MAC are needed to decrypt", mac_text)
        plain = _decrypt(key, bthome_nonce(mac_raw, info, counter), ciphertext + mic)
        if plain is None:
            return Rejection(RejectReason.BAD_AUTH, "BTHome MIC does not verify (wrong key, MAC or tampered advert)", mac_text)
        body = plain
    objects = parse_objects(body)
    if isinstance(objects, Rejection):
        return Rejection(objects.reason, objects.detail, mac_text)
    return Advert(info, objects, counter, mac_text)


def _decrypt(key: bytes, nonce: bytes, data: bytes) -> bytes | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    if len(key) not in (16, 24, 32):
        return None
    try:
        return AESCCM(key, tag_length=MIC_LEN).decrypt(nonce, data, None)
    except InvalidTag:
        return None


def encode_object(object_id: int, value: Any) -> bytes:
    """One object's bytes (trusted input: raises ValueError/KeyError)."""
    spec = OBJECTS[object_id]
    if spec.size == 0:
        blob = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if len(blob) > 255:
            raise CodecError("variable-length BTHome object longer than 255 bytes")
        return bytes([object_id, len(blob)]) + blob
    if object_id in (FIRMWARE_U24, FIRMWARE_U32) and isinstance(value, str):
        parts = [int(p) for p in value.split(".")]
        raw = 0
        for p in parts:
            raw = (raw << 8) | p
    elif isinstance(value, float) or spec.decimals or spec.mult != 1:
        raw = round(float(value) * 10 ** spec.decimals / spec.mult)
    else:
        raw = int(value)
    try:
        return bytes([object_id]) + raw.to_bytes(spec.size, "little", signed=spec.signed)
    except OverflowError as exc:
        raise CodecError(f"BTHome {spec.name} value {value!r} does not fit {spec.size} bytes") from exc


def encode_advert(objects: Iterable[tuple[int, Any]], *, key: bytes | None = None, mac: str | None = None,
                  counter: int | None = None, trigger_based: bool = False, mac_included: bool = False) -> bytes:
    """Build BTHome v2 service data (for emulators and tests). Objects are sorted by id."""
    body = b"".join(encode_object(oid, v) for oid, v in sorted(objects, key=lambda kv: kv[0]))
    info = (BTHOME_VERSION << INFO_VERSION_SHIFT) | (INFO_TRIGGER if trigger_based else 0)
    prefix = b""
    if mac_included:
        if mac is None:
            raise CodecError("mac_included needs mac")
        info |= INFO_MAC_INCLUDED
        prefix = bytes(reversed(normalise_mac(mac)))
    if key is None:
        return bytes([info]) + prefix + body
    if mac is None or counter is None:
        raise CodecError("encryption needs mac and counter")
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    info |= INFO_ENCRYPTED
    sealed = AESCCM(key, tag_length=MIC_LEN).encrypt(bthome_nonce(normalise_mac(mac), info, counter), body, None)
    return bytes([info]) + prefix + sealed[:-MIC_LEN] + struct.pack("<I", counter) + sealed[-MIC_LEN:]


@dataclass(frozen=True)
class AdvertEvents:
    """What an advert means for the welfare domain."""

    events: list[EventPayload] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)


_BINARY_EVENTS: dict[int, dict[int, EventCode]] = {
    DOOR: {1: EventCode.DOOR_OPEN, 0: EventCode.DOOR_CLOSED},
    MOTION: {1: EventCode.MOTION},
    OCCUPANCY: {1: EventCode.BED_IN, 0: EventCode.BED_OUT},
    TAMPER: {1: EventCode.TAMPER},
}
_BUTTON_EVENTS: dict[int, EventCode] = {
    BTHomeButton.PRESS: EventCode.BUTTON_PRESS,
    BTHomeButton.LONG_PRESS: EventCode.BUTTON_CANCEL,
}


def advert_events(advert: Advert) -> AdvertEvents:
    """Map BTHome objects to welfare events (docs/protocol.md §3). Never raises."""
    result = AdvertEvents()
    for obj in advert.objects:
        code: EventCode | None = None
        if obj.object_id in _BINARY_EVENTS:
            code = _BINARY_EVENTS[obj.object_id].get(int(obj.raw) if isinstance(obj.raw, int) else -1)
        elif obj.object_id == BUTTON:
            code = _BUTTON_EVENTS.get(int(obj.raw) if isinstance(obj.raw, int) else -1)
        elif obj.object_id == RAW:
            blob = obj.raw if isinstance(obj.raw, bytes) else b""
            if not blob:
                result.rejects.append(Rejection(RejectReason.BAD_PAYLOAD, "BTHome raw object is empty (needs an event code)", advert.mac))
                continue
            decoded = decode_event_data(blob[0], blob[1:])
            if isinstance(decoded, Rejection):
                result.rejects.append(Rejection(decoded.reason, decoded.detail, advert.mac))
            else:
                result.events.append(decoded)
            continue
        if code is not None:
            result.events.append(EventPayload(code, None, {}))
    return result


def advert_to_json(advert: Advert) -> dict[str, Any]:
    return {
        "bthome_version": advert.device_info >> INFO_VERSION_SHIFT,
        "device_info": advert.device_info,
        "encrypted": advert.encrypted,
        "trigger_based": advert.trigger_based,
        "mac_included": advert.mac_included,
        "counter": advert.counter,
        "mac": advert.mac,
        "objects": [
            {"id": o.object_id, "name": o.name,
             "value": o.value.hex() if isinstance(o.value, bytes) else o.value}
            for o in advert.objects
        ],
    }
