"""Pure codecs of the device <-> gateway protocol (docs/protocol.md).

Every decoder takes any byte string and returns a value or a :class:`Rejection`; none
raises. Encoders are for trusted input (our downlinks, emulators, tests).
"""
from gateway.codec._result import CodecError, RejectCounters, Rejection
from gateway.codec.auth import TAG_LEN, ReplayWindow, frame_tag, verify_tag
from gateway.codec.bthome import Advert, BTHomeObject, advert_events, decode_advert, encode_advert
from gateway.codec.cobs import cobs_decode, cobs_encode
from gateway.codec.crc import crc16_ccitt_false
from gateway.codec.enums import (
    AckStatus,
    ErrorCode,
    FeedbackState,
    FrameFlag,
    MsgType,
    OtaState,
    PowerFlag,
    RejectReason,
    ResetCause,
    SFloatSpecial,
)
from gateway.codec.events import EventPayload, decode_event_data, decode_event_payload, encode_event_data
from gateway.codec.frame import (
    MAX_BODY,
    MAX_PAYLOAD,
    MAX_WIRE,
    Frame,
    decode_body,
    decode_wire,
    encode_body,
    encode_frame,
    encode_payload_frame,
    normalise_device_id,
)
from gateway.codec.gatt import GattReading, decode_gatt, encode_gatt
from gateway.codec.ieee11073 import MedFloat, decode_float, decode_sfloat, encode_float, encode_sfloat
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
    decode_payload,
    encode_payload,
)
from gateway.codec.stream import StreamDecoder

__all__ = [
    "Ack", "AckStatus", "CodecError", "Advert", "BTHomeObject", "Config", "ConfigGet", "Error", "ErrorCode",
    "EventPayload", "Feedback", "FeedbackState", "Frame", "FrameFlag", "GattReading", "Heartbeat",
    "Hello", "MAX_BODY", "MAX_PAYLOAD", "MAX_WIRE", "MedFloat", "MsgType", "OtaBegin", "OtaChunk",
    "OtaEnd", "OtaState", "OtaStatus", "Payload", "PowerFlag", "RejectCounters", "RejectReason",
    "Rejection", "ReplayWindow", "ResetCause", "SFloatSpecial", "StreamDecoder", "TAG_LEN", "Time",
    "advert_events", "cobs_decode", "cobs_encode", "crc16_ccitt_false", "decode_advert", "decode_body",
    "decode_event_data", "decode_event_payload", "decode_float", "decode_gatt", "decode_payload",
    "decode_sfloat", "decode_wire", "encode_advert", "encode_body", "encode_event_data", "encode_float",
    "encode_frame", "encode_gatt", "encode_payload", "encode_payload_frame", "encode_sfloat",
    "frame_tag", "normalise_device_id", "verify_tag",
]
