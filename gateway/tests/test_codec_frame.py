"""Known-answer tests for COBS, CRC, frame layout and the replay window."""
from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.codec import (
    EventPayload,
    FrameFlag,
    MsgType,
    RejectCounters,
    Rejection,
    RejectReason,
    ReplayWindow,
    StreamDecoder,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_body,
    decode_wire,
    encode_body,
    encode_frame,
    frame_tag,
)
from gateway.codec.events import decode_event_payload, encode_event_data
from gateway.domain.model import EventCode

KEY = bytes(range(16))


@pytest.mark.parametrize("raw,enc", [
    ("00", "0101"), ("0000", "010101"), ("001100", "01021101"), ("11220033", "0311220233"),
    ("11223344", "0511223344"), ("11000000", "0211010101"),
    (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), "01ff" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
    ((bytes(range(2, 256)) + b"\0").hex(), "ff" + bytes(range(2, 256)).hex() + "0101"),
    ((bytes(range(3, 256)) + b"\0\1").hex(), "fe" + bytes(range(3, 256)).hex() + "0201"),
])
def test_cobs_wikipedia_examples(raw, enc):
    assert cobs_encode(bytes.fromhex(raw)).hex() == enc
    assert cobs_decode(bytes.fromhex(enc)) == bytes.fromhex(raw)


@pytest.mark.parametrize("bad,reason", [(b"", "empty"), (b"\x03\x01", "cobs"), (b"\x02\x00", "cobs"), (b"\x00", "cobs")])
def test_cobs_rejections(bad, reason):
    r = cobs_decode(bad)
    assert isinstance(r, Rejection) and r.reason.value == reason


def test_crc_check_value():
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_worked_example_bytes():
    """The byte-level example of docs/protocol.md §1."""
    body = encode_body(MsgType.EVENT, "a4c1380a1b2c", 42, EventPayload(EventCode.BUTTON_PRESS, 120, {}), key=KEY, urgent=True)
    assert body[:15].hex() == "010103a4c1380a1b2c2a0000000500"
    assert body[15:20].hex() == "0178000000"
    assert body[20:28] == frame_tag(KEY, body[:20])
    assert int.from_bytes(body[28:], "little") == crc16_ccitt_false(body[:28])
    assert len(body) == 30
    wire = encode_frame(MsgType.EVENT, "a4c1380a1b2c", 42, EventPayload(EventCode.BUTTON_PRESS, 120, {}), key=KEY, urgent=True)
    assert wire == cobs_encode(body) + b"\x00"


def test_flags_and_minimal_body():
    body = encode_body(MsgType.OTA_END, "000000000001", 1, b"", downlink=True)
    assert len(body) == 17
    f = decode_body(body)
    assert f.flags == FrameFlag.DOWNLINK and f.tag is None and f.payload == b""
    assert not f.verify(KEY)


def test_max_payload_and_oversize():
    body = encode_body(MsgType.OTA_CHUNK, "000000000001", 1, bytes(240), key=KEY)
    assert len(body) == 265 and not isinstance(decode_body(body), Rejection)
    with pytest.raises(ValueError):
        encode_body(MsgType.OTA_CHUNK, "000000000001", 1, bytes(241))
    assert decode_body(body + b"\0").reason is RejectReason.OVERSIZE
    assert decode_wire(b"\x01" * 301).reason is RejectReason.OVERSIZE


def test_device_id_forms():
    a = encode_body(MsgType.TIME, "A4:C1:38:0A:1B:2C", 1, b"\0\0\0\0")
    assert decode_body(a).device_id == "a4c1380a1b2c"
    with pytest.raises(ValueError):
        encode_body(MsgType.TIME, "a4c1", 1, b"")


def test_rejections_carry_device_when_known():
    body = bytearray(encode_body(MsgType.EVENT, "a4c1380a1b2c", 1, b"\x01\0\0\0\0"))
    body[1] = 0x66
    body[-2:] = crc16_ccitt_false(bytes(body[:-2])).to_bytes(2, "little")
    r = decode_body(bytes(body))
    assert r.reason is RejectReason.UNKNOWN_TYPE and r.device_id == "a4c1380a1b2c"


def test_stream_decoder_oversize_reported_once_and_resyncs():
    dec = StreamDecoder()
    good = encode_frame(MsgType.EVENT, "a4c1380a1b2c", 1, b"\x01\0\0\0\0")
    out = dec.feed(b"\x05" * 200)
    assert out == []
    out = dec.feed(b"\x05" * 200)
    assert [r.reason for r in out] == [RejectReason.OVERSIZE]
    assert dec.buffered == 0
    out = dec.feed(b"\x05" * 5000 + b"\x00" + good)
    assert len(out) == 1 and out[0].seq == 1


def test_event_data_fields():
    p = decode_event_payload(b"\x40" + (5).to_bytes(4, "little") + encode_event_data(EventCode.GPS_POSITION, {
        "lat": 59.9138688, "lon": 10.7522454, "alt_m": -3, "fix_quality": 1, "sats": 9, "zone": 255})[1:])
    assert p.data == {"lat": 59.9138688, "lon": 10.7522454, "alt_m": -3, "fix_quality": 1, "sats": 9, "zone": 255}
    assert decode_event_payload(b"\x01\0\0\0").reason is RejectReason.BAD_PAYLOAD
    assert decode_event_payload(b"\x70\0\0\0\0").reason is RejectReason.UNKNOWN_CODE   # gateway-internal
    assert decode_event_payload(b"\x01\0\0\0\0\0").reason is RejectReason.BAD_PAYLOAD  # trailing byte


def test_replay_window_edges():
    w = ReplayWindow()
    assert not w.accept(0)
    assert w.accept(1000) and w.accept(937) and not w.accept(936)
    assert w.accept(1000 + 64) and not w.accept(1000) and w.accept(1001)
    assert w.accept(0xFFFFFFFF) and not w.accept(0xFFFFFFFF + 1)
    assert ReplayWindow.from_bytes(w.to_bytes()) == w
    assert ReplayWindow.from_bytes(b"\x02" + w.to_bytes()[1:]).reason is RejectReason.VERSION


def test_reject_counters():
    c = RejectCounters()
    c.count(Rejection(RejectReason.CRC))
    c.count(Rejection(RejectReason.CRC, device_id="x"))
    c.count(Rejection(RejectReason.REPLAY, device_id="x"))
    assert c["crc"] == 2 and c.total == 3 and c.snapshot() == {"crc": 2, "replay": 1}
    assert c.for_device("x") == {"crc": 1, "replay": 1}


def test_domain_modules_import_no_io_libraries():
    code = ("import sys, gateway.codec, gateway.domain.ingress, gateway.codec.vectors;"
            "bad=[m for m in ('paho','bleak','serial','zeroconf','psycopg','sqlite3','dbus_fast','asyncio') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
