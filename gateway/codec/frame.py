"""Serial frame body layout, CRC, tag and COBS wire form (docs/protocol.md §1)."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gateway.codec._result import CodecError, Rejection
from gateway.codec.auth import TAG_LEN, frame_tag, verify_tag
from gateway.codec.cobs import cobs_decode, cobs_encode
from gateway.codec.crc import crc16_ccitt_false
from gateway.codec.enums import FRAME_FLAGS_MASK, PROTOCOL_VERSION, FrameFlag, MsgType, RejectReason
from gateway.codec.payloads import Payload, decode_payload, encode_payload, payload_type

HEADER = struct.Struct("<BBB6sIH")
HEADER_LEN = HEADER.size  # 15
CRC_LEN = 2
MAX_PAYLOAD = 240
MIN_BODY = HEADER_LEN + CRC_LEN                      # 17
MAX_BODY = HEADER_LEN + MAX_PAYLOAD + TAG_LEN + CRC_LEN  # 265
MAX_WIRE = 300                                        # encoded length cap (without delimiter)
DELIMITER = b"\x00"


def device_id_text(raw: bytes) -> str:
    return raw.hex()


def device_id_bytes(device_id: str) -> bytes:
    """``a4c1380a1b2c`` or ``A4:C1:38:0A:1B:2C`` -> 6 bytes (raises ValueError)."""
    text = device_id.replace(":", "").replace("-", "").strip().lower()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise CodecError(f"device id {device_id!r} must be 6 bytes (12 hex digits, e.g. a4c1380a1b2c)",
                         field="device_id", value=device_id)
    return raw


def normalise_device_id(device_id: str) -> str:
    return device_id_bytes(device_id).hex()


@dataclass(frozen=True)
class Frame:
    """A structurally valid frame (CRC checked). The tag is verified separately (needs a key)."""

    type: MsgType
    flags: FrameFlag
    device_id: str
    seq: int
    payload: bytes
    tag: bytes | None = None
    ver: int = PROTOCOL_VERSION
    signed: bytes = field(default=b"", repr=False, compare=False)  # body[0:15+len], the HMAC input

    @property
    def urgent(self) -> bool:
        return bool(self.flags & FrameFlag.URGENT)

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & FrameFlag.AUTH)

    @property
    def downlink(self) -> bool:
        return bool(self.flags & FrameFlag.DOWNLINK)

    def verify(self, key: bytes) -> bool:
        return self.authenticated and verify_tag(key, self.signed, self.tag)

    def decode_payload(self) -> Payload | Rejection:
        return decode_payload(self.type, self.payload)


def encode_body(msg_type: MsgType, device_id: str, seq: int, payload: bytes | Payload,
                *, key: bytes | None = None, urgent: bool = False, downlink: bool = False) -> bytes:
    """Build a frame body (without COBS). ``key`` given -> AUTH flag and tag. Raises ValueError."""
    raw = payload if isinstance(payload, (bytes, bytearray)) else encode_payload(payload)
    if len(raw) > MAX_PAYLOAD:
        raise CodecError(f"payload {len(raw)} bytes exceeds {MAX_PAYLOAD}")
    if not 0 <= seq <= 0xFFFFFFFF:
        raise CodecError(f"seq {seq} out of u32 range")
    flags = FrameFlag.NONE
    if urgent:
        flags |= FrameFlag.URGENT
    if key is not None:
        flags |= FrameFlag.AUTH
    if downlink:
        flags |= FrameFlag.DOWNLINK
    signed = HEADER.pack(PROTOCOL_VERSION, int(msg_type), int(flags), device_id_bytes(device_id), seq, len(raw)) + bytes(raw)
    body = signed + (frame_tag(key, signed) if key is not None else b"")
    return body + struct.pack("<H", crc16_ccitt_false(body))


def encode_frame(msg_type: MsgType, device_id: str, seq: int, payload: bytes | Payload,
                 *, key: bytes | None = None, urgent: bool = False, downlink: bool = False) -> bytes:
    """Wire bytes: COBS(body) + 0x00."""
    return wire_from_body(encode_body(msg_type, device_id, seq, payload, key=key, urgent=urgent, downlink=downlink))


def encode_payload_frame(p: Payload, device_id: str, seq: int, *, key: bytes | None = None,
                         urgent: bool = False, downlink: bool = False) -> bytes:
    return encode_frame(payload_type(p), device_id, seq, p, key=key, urgent=urgent, downlink=downlink)


def wire_from_body(body: bytes) -> bytes:
    return cobs_encode(body) + DELIMITER


def decode_body(body: bytes) -> Frame | Rejection:
    """Decode a frame body (after COBS). Checks size, CRC, version, flags, type, length.

    Never raises. The payload is not decoded here (see :meth:`Frame.decode_payload`) so a
    frame with a bad payload can still be attributed to its device.
    """
    body = bytes(body)
    if not body:
        return Rejection(RejectReason.EMPTY, "empty frame")
    if len(body) > MAX_BODY:
        return Rejection(RejectReason.OVERSIZE, f"frame body {len(body)} bytes exceeds {MAX_BODY}")
    if len(body) < MIN_BODY:
        return Rejection(RejectReason.SHORT, f"frame body {len(body)} bytes, at least {MIN_BODY} needed")
    (crc,) = struct.unpack_from("<H", body, len(body) - CRC_LEN)
    calc = crc16_ccitt_false(body[:-CRC_LEN])
    if crc != calc:
        return Rejection(RejectReason.CRC, f"CRC 0x{crc:04x} on the wire, 0x{calc:04x} computed")
    ver, type_b, flags_b, dev, seq, length = HEADER.unpack_from(body)
    device_id = dev.hex()
    if ver != PROTOCOL_VERSION:
        return Rejection(RejectReason.VERSION, f"protocol version {ver}, this gateway speaks {PROTOCOL_VERSION}", device_id)
    if flags_b & ~FRAME_FLAGS_MASK:
        return Rejection(RejectReason.FLAGS, f"reserved flag bits set in 0x{flags_b:02x}", device_id)
    try:
        msg_type = MsgType(type_b)
    except ValueError:
        return Rejection(RejectReason.UNKNOWN_TYPE, f"message type 0x{type_b:02x} unknown", device_id)
    if length > MAX_PAYLOAD:
        return Rejection(RejectReason.LENGTH, f"payload length {length} exceeds {MAX_PAYLOAD}", device_id)
    flags = FrameFlag(flags_b)
    tag_len = TAG_LEN if flags & FrameFlag.AUTH else 0
    expected = HEADER_LEN + length + tag_len + CRC_LEN
    if len(body) != expected:
        return Rejection(RejectReason.LENGTH, f"len field {length} (+tag {tag_len}) implies a {expected}-byte body, got {len(body)}", device_id)
    end = HEADER_LEN + length
    return Frame(msg_type, flags, device_id, seq, body[HEADER_LEN:end],
                 body[end:end + TAG_LEN] if tag_len else None, ver, body[:end])


def decode_wire(wire: bytes) -> Frame | Rejection:
    """Decode one wire frame (COBS data, with or without its trailing 0x00). Never raises."""
    wire = bytes(wire)
    if wire.endswith(DELIMITER):
        wire = wire[:-1]
    if len(wire) > MAX_WIRE:
        return Rejection(RejectReason.OVERSIZE, f"encoded frame {len(wire)} bytes exceeds {MAX_WIRE}")
    body = cobs_decode(wire)
    if isinstance(body, Rejection):
        return body
    return decode_body(body)
