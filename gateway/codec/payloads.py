"""Typed payloads of every message type (docs/protocol.md §1) and their codecs.

``decode_payload(msg_type, raw)`` never raises: it returns a payload dataclass or a
:class:`Rejection`. ``encode_payload(p)`` is for trusted input (our own downlinks, tests,
emulators) and raises ``ValueError`` on values that do not fit the wire.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Union

from gateway.codec._result import CodecError, Rejection
from gateway.codec.enums import (
    AckStatus,
    ErrorCode,
    FeedbackState,
    MsgType,
    OtaState,
    PowerFlag,
    RejectReason,
    ResetCause,
)
from gateway.codec.events import EventPayload, decode_event_payload, encode_event_payload
from gateway.domain.model import Role

MAX_OTA_CHUNK = 200
MAX_ERROR_MSG = 64
BATTERY_UNKNOWN = 0xFF
RSSI_UNKNOWN = 0x7F


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[MsgType] = MsgType.ACK
    acked_seq: int
    status: AckStatus


@dataclass(frozen=True)
class Heartbeat:
    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    battery_pct: int | None       # None = mains / unknown (0xFF on the wire)
    battery_mv: int
    power_flags: PowerFlag
    uptime_s: int
    queue_depth: int
    rejects: int
    rssi: int | None              # None = unknown (0x7F on the wire)


@dataclass(frozen=True)
class Hello:
    TYPE: ClassVar[MsgType] = MsgType.HELLO
    role: Role | int              # int if the role byte is not (yet) known to this gateway
    reset_cause: ResetCause | int
    config_version: int
    fw_version: str


@dataclass(frozen=True)
class ConfigGet:
    TYPE: ClassVar[MsgType] = MsgType.CONFIG_GET


@dataclass(frozen=True)
class Config:
    TYPE: ClassVar[MsgType] = MsgType.CONFIG
    config_version: int
    config: dict[str, Any]


@dataclass(frozen=True)
class OtaBegin:
    TYPE: ClassVar[MsgType] = MsgType.OTA_BEGIN
    total_size: int
    sha256: bytes
    version: str
    signature: bytes


@dataclass(frozen=True)
class OtaChunk:
    TYPE: ClassVar[MsgType] = MsgType.OTA_CHUNK
    offset: int
    data: bytes


@dataclass(frozen=True)
class OtaEnd:
    TYPE: ClassVar[MsgType] = MsgType.OTA_END


@dataclass(frozen=True)
class OtaStatus:
    TYPE: ClassVar[MsgType] = MsgType.OTA_STATUS
    state: OtaState
    version: str


@dataclass(frozen=True)
class Feedback:
    TYPE: ClassVar[MsgType] = MsgType.FEEDBACK
    ref_seq: int
    state: FeedbackState


@dataclass(frozen=True)
class Time:
    TYPE: ClassVar[MsgType] = MsgType.TIME
    epoch_s: int


@dataclass(frozen=True)
class Error:
    TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: ErrorCode | int         # int for codes this gateway does not know
    msg: str


Payload = Union[EventPayload, Ack, Heartbeat, Hello, ConfigGet, Config, OtaBegin, OtaChunk,
                OtaEnd, OtaStatus, Feedback, Time, Error]


def payload_type(p: Payload) -> MsgType:
    return MsgType.EVENT if isinstance(p, EventPayload) else p.TYPE


def _bad(msg: str) -> Rejection:
    return Rejection(RejectReason.BAD_PAYLOAD, msg)


def _exact(name: str, raw: bytes, size: int) -> Rejection | None:
    if len(raw) != size:
        return _bad(f"{name} payload must be {size} bytes, got {len(raw)}")
    return None


def _ascii(raw: bytes, what: str) -> str | Rejection:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return _bad(f"{what} is not ASCII")
    if not text.isprintable():
        return _bad(f"{what} contains control characters")
    return text


def _dec_ack(raw: bytes) -> Payload | Rejection:
    if (r := _exact("ACK", raw, 5)) is not None:
        return r
    seq, status = struct.unpack("<IB", raw)
    try:
        return Ack(seq, AckStatus(status))
    except ValueError:
        return _bad(f"ACK status {status} unknown (0..3)")


def _dec_heartbeat(raw: bytes) -> Payload | Rejection:
    if (r := _exact("HEARTBEAT", raw, 13)) is not None:
        return r
    pct, mv, flags, uptime, depth, rejects, rssi = struct.unpack("<BHBIHHb", raw)
    if pct != BATTERY_UNKNOWN and pct > 100:
        return _bad(f"HEARTBEAT battery_pct {pct} is above 100 (0xFF = mains/unknown)")
    if flags & ~0x07:
        return _bad(f"HEARTBEAT power_flags 0x{flags:02x} has reserved bits set")
    return Heartbeat(None if pct == BATTERY_UNKNOWN else pct, mv, PowerFlag(flags), uptime, depth,
                     rejects, None if rssi == RSSI_UNKNOWN else rssi)


def _dec_hello(raw: bytes) -> Payload | Rejection:
    if len(raw) < 7:
        return _bad(f"HELLO payload needs at least 7 bytes, got {len(raw)}")
    role, cause, cfg_ver, fw_len = struct.unpack_from("<BBIB", raw)
    if len(raw) != 7 + fw_len:
        return _bad(f"HELLO fw_len {fw_len} does not match the {len(raw) - 7} bytes that follow")
    fw = _ascii(raw[7:], "HELLO fw_version")
    if isinstance(fw, Rejection):
        return fw
    role_v: Role | int = Role(role) if role in Role._value2member_map_ else role
    cause_v: ResetCause | int = ResetCause(cause) if cause in ResetCause._value2member_map_ else cause
    return Hello(role_v, cause_v, cfg_ver, fw)


def _dec_empty(cls: type[ConfigGet] | type[OtaEnd]) -> Callable[[bytes], Payload | Rejection]:
    def dec(raw: bytes) -> Payload | Rejection:
        if raw:
            return _bad(f"{cls.TYPE.name} payload must be empty, got {len(raw)} bytes")
        return cls()
    return dec


def _dec_config(raw: bytes) -> Payload | Rejection:
    if len(raw) < 4:
        return _bad(f"CONFIG payload needs at least 4 bytes, got {len(raw)}")
    (ver,) = struct.unpack_from("<I", raw)
    try:
        obj = json.loads(raw[4:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _bad(f"CONFIG json is not valid UTF-8 JSON: {exc}")
    if not isinstance(obj, dict):
        return _bad("CONFIG json must be a JSON object")
    return Config(ver, obj)


def _dec_ota_begin(raw: bytes) -> Payload | Rejection:
    if len(raw) < 38:
        return _bad(f"OTA_BEGIN payload needs at least 38 bytes, got {len(raw)}")
    (size,) = struct.unpack_from("<I", raw)
    digest = raw[4:36]
    ver_len = raw[36]
    pos = 37 + ver_len
    if len(raw) < pos + 1:
        return _bad("OTA_BEGIN version runs past the payload")
    version = _ascii(raw[37:pos], "OTA_BEGIN version")
    if isinstance(version, Rejection):
        return version
    sig_len = raw[pos]
    if sig_len not in (0, 64):
        return _bad(f"OTA_BEGIN sig_len must be 0 or 64, got {sig_len}")
    if len(raw) != pos + 1 + sig_len:
        return _bad(f"OTA_BEGIN signature length {sig_len} does not match the {len(raw) - pos - 1} bytes that follow")
    return OtaBegin(size, bytes(digest), version, bytes(raw[pos + 1:]))


def _dec_ota_chunk(raw: bytes) -> Payload | Rejection:
    if len(raw) < 4:
        return _bad(f"OTA_CHUNK payload needs at least 4 bytes, got {len(raw)}")
    if len(raw) - 4 > MAX_OTA_CHUNK:
        return _bad(f"OTA_CHUNK carries {len(raw) - 4} bytes, at most {MAX_OTA_CHUNK}")
    (offset,) = struct.unpack_from("<I", raw)
    return OtaChunk(offset, bytes(raw[4:]))


def _dec_ota_status(raw: bytes) -> Payload | Rejection:
    if len(raw) < 2:
        return _bad(f"OTA_STATUS payload needs at least 2 bytes, got {len(raw)}")
    state, ver_len = raw[0], raw[1]
    if len(raw) != 2 + ver_len:
        return _bad(f"OTA_STATUS ver_len {ver_len} does not match the {len(raw) - 2} bytes that follow")
    try:
        st = OtaState(state)
    except ValueError:
        return _bad(f"OTA_STATUS state {state} unknown (0..6)")
    version = _ascii(raw[2:], "OTA_STATUS version")
    if isinstance(version, Rejection):
        return version
    return OtaStatus(st, version)


def _dec_feedback(raw: bytes) -> Payload | Rejection:
    if (r := _exact("FEEDBACK", raw, 5)) is not None:
        return r
    ref, state = struct.unpack("<IB", raw)
    try:
        return Feedback(ref, FeedbackState(state))
    except ValueError:
        return _bad(f"FEEDBACK state {state} unknown (1..3)")


def _dec_time(raw: bytes) -> Payload | Rejection:
    if (r := _exact("TIME", raw, 4)) is not None:
        return r
    return Time(struct.unpack("<I", raw)[0])


def _dec_error(raw: bytes) -> Payload | Rejection:
    if len(raw) < 1:
        return _bad("ERROR payload needs at least the code byte")
    if len(raw) - 1 > MAX_ERROR_MSG:
        return _bad(f"ERROR msg is {len(raw) - 1} bytes, at most {MAX_ERROR_MSG}")
    try:
        msg = raw[1:].decode("utf-8")
    except UnicodeDecodeError:
        return _bad("ERROR msg is not UTF-8")
    code: ErrorCode | int = ErrorCode(raw[0]) if raw[0] in ErrorCode._value2member_map_ else raw[0]
    return Error(code, msg)


_DECODERS: dict[MsgType, Callable[[bytes], Payload | Rejection]] = {
    MsgType.EVENT: decode_event_payload,
    MsgType.ACK: _dec_ack,
    MsgType.HEARTBEAT: _dec_heartbeat,
    MsgType.HELLO: _dec_hello,
    MsgType.CONFIG_GET: _dec_empty(ConfigGet),
    MsgType.CONFIG: _dec_config,
    MsgType.OTA_BEGIN: _dec_ota_begin,
    MsgType.OTA_CHUNK: _dec_ota_chunk,
    MsgType.OTA_END: _dec_empty(OtaEnd),
    MsgType.OTA_STATUS: _dec_ota_status,
    MsgType.FEEDBACK: _dec_feedback,
    MsgType.TIME: _dec_time,
    MsgType.ERROR: _dec_error,
}


def decode_payload(msg_type: MsgType, raw: bytes) -> Payload | Rejection:
    """Decode the payload of a frame of ``msg_type``. Never raises."""
    try:
        return _DECODERS[MsgType(msg_type)](bytes(raw))
    except (ValueError, KeyError):
        return Rejection(RejectReason.UNKNOWN_TYPE, f"message type {int(msg_type)!r} has no payload decoder")


def _ascii_bytes(text: str, what: str) -> bytes:
    data = text.encode("ascii")
    if len(data) > 255:
        raise CodecError(f"{what} longer than 255 bytes")
    return data


def encode_payload(p: Payload) -> bytes:
    """Encode a payload dataclass to its wire bytes (trusted input; raises ValueError)."""
    try:
        return _encode(p)
    except (struct.error, UnicodeEncodeError, OverflowError, TypeError) as exc:
        raise CodecError(f"{type(p).__name__}: value out of range for the wire: {exc}") from exc


def _encode(p: Payload) -> bytes:
    if isinstance(p, EventPayload):
        return encode_event_payload(p)
    if isinstance(p, Ack):
        return struct.pack("<IB", p.acked_seq, int(p.status))
    if isinstance(p, Heartbeat):
        return struct.pack("<BHBIHHb", BATTERY_UNKNOWN if p.battery_pct is None else p.battery_pct,
                           p.battery_mv, int(p.power_flags), p.uptime_s, p.queue_depth, p.rejects,
                           RSSI_UNKNOWN if p.rssi is None else p.rssi)
    if isinstance(p, Hello):
        fw = _ascii_bytes(p.fw_version, "fw_version")
        return struct.pack("<BBIB", int(p.role), int(p.reset_cause), p.config_version, len(fw)) + fw
    if isinstance(p, (ConfigGet, OtaEnd)):
        return b""
    if isinstance(p, Config):
        return struct.pack("<I", p.config_version) + json.dumps(p.config, separators=(",", ":"), sort_keys=True).encode()
    if isinstance(p, OtaBegin):
        if len(p.sha256) != 32 or len(p.signature) not in (0, 64):
            raise CodecError("OTA_BEGIN needs a 32-byte sha256 and a 0- or 64-byte signature")
        ver = _ascii_bytes(p.version, "version")
        return (struct.pack("<I", p.total_size) + p.sha256 + bytes([len(ver)]) + ver
                + bytes([len(p.signature)]) + p.signature)
    if isinstance(p, OtaChunk):
        if len(p.data) > MAX_OTA_CHUNK:
            raise CodecError(f"OTA_CHUNK data at most {MAX_OTA_CHUNK} bytes")
        return struct.pack("<I", p.offset) + p.data
    if isinstance(p, OtaStatus):
        ver = _ascii_bytes(p.version, "version")
        return bytes([int(p.state), len(ver)]) + ver
    if isinstance(p, Feedback):
        return struct.pack("<IB", p.ref_seq, int(p.state))
    if isinstance(p, Time):
        return struct.pack("<I", p.epoch_s)
    if isinstance(p, Error):
        msg = p.msg.encode("utf-8")
        if len(msg) > MAX_ERROR_MSG:
            raise CodecError(f"ERROR msg at most {MAX_ERROR_MSG} bytes")
        return bytes([int(p.code)]) + msg
    raise CodecError(f"not a payload: {p!r}")
