"""Property tests: no decoder ever raises on any bytes; encoders round-trip."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec import (
    Ack,
    AckStatus,
    Config,
    ConfigGet,
    Error,
    ErrorCode,
    EventPayload,
    Feedback,
    FeedbackState,
    Heartbeat,
    Hello,
    MsgType,
    OtaBegin,
    OtaChunk,
    OtaEnd,
    OtaState,
    OtaStatus,
    PowerFlag,
    Rejection,
    ReplayWindow,
    ResetCause,
    StreamDecoder,
    Time,
    cobs_decode,
    cobs_encode,
    decode_advert,
    decode_body,
    decode_event_payload,
    decode_float,
    decode_gatt,
    decode_payload,
    decode_sfloat,
    decode_wire,
    encode_advert,
    encode_body,
    encode_float,
    encode_gatt,
    encode_payload,
    encode_sfloat,
)
from gateway.codec.bthome import OBJECTS, parse_objects
from gateway.codec.events import EVENT_DATA
from gateway.codec.frame import wire_from_body
from gateway.codec.gatt import BPM, GLUCOSE, PLX_CONTINUOUS, PLX_SPOT, SUPPORTED_UUIDS, TEMPERATURE, WEIGHT, DateTime
from gateway.codec.ieee11073 import MedFloat
from gateway.codec.jsonify import frame_to_json
from gateway.domain.model import EventCode, Role
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import TEST_DEVICE as DEV, TEST_KEY as KEY
from gateway.tests._kit import FakeJournal

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
device_ids = st.binary(min_size=6, max_size=6).map(bytes.hex)


def _frame_like() -> st.SearchStrategy[bytes]:
    """Bodies that pass the early checks often, so the fuzzer reaches the deep paths."""
    def build(t, flags, payload, tag, fix_crc):
        from gateway.codec.crc import crc16_ccitt_false
        body = bytes([1, t, flags]) + bytes(6) + struct.pack("<IH", 1, len(payload)) + payload + tag
        return body + (struct.pack("<H", crc16_ccitt_false(body)) if fix_crc else b"\0\0")
    return st.builds(build, st.sampled_from([int(m) for m in MsgType] + [0, 0x55]), st.sampled_from([0, 1, 2, 3, 4, 7, 0x80]),
                     st.binary(max_size=60), st.sampled_from([b"", bytes(8)]), st.booleans())


class _Journal(FakeJournal):
    """Every event id ending in 1 counts as already stored (the duplicate path is fuzzed too)."""

    def contains(self, event_id: str) -> bool:
        return event_id.endswith("1")


# ------------------------------------------------------------------ never raises

@FUZZ
@given(st.binary(max_size=400))
def test_cobs_decode_never_raises(data):
    assert isinstance(cobs_decode(data), (bytes, Rejection))


@FUZZ
@given(st.one_of(st.binary(max_size=300), _frame_like()))
def test_decode_body_and_wire_never_raise(data):
    for fn in (decode_body, decode_wire):
        r = fn(data)
        if not isinstance(r, Rejection):
            r.decode_payload()
            frame_to_json(r)
            r.verify(KEY)
    r = decode_wire(wire_from_body(data))
    if not isinstance(r, Rejection):
        frame_to_json(r)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_stream_decoder_never_raises_and_stays_bounded(chunks):
    dec = StreamDecoder()
    for chunk in chunks:
        for item in dec.feed(chunk):
            assert not isinstance(item, Exception)
        assert dec.buffered <= 300


@FUZZ
@given(st.sampled_from(list(MsgType)), st.binary(max_size=260))
def test_decode_payload_never_raises(msg_type, data):
    decode_payload(msg_type, data)


@FUZZ
@given(st.sampled_from([int(c) for c in EventCode] + [0x00, 0x7E, 0xFF]), u32, st.binary(max_size=20))
def test_decode_event_payload_never_raises(code, age, data):
    decode_event_payload(bytes([code]) + struct.pack("<I", age) + data)


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([None, KEY]), st.sampled_from([None, DEV, "zz"]))
def test_decode_advert_never_raises(data, key, mac):
    decode_advert(data, mac=mac, key=key)
    decode_advert(b"\x41" + data, mac=DEV, key=KEY)
    decode_advert(b"\x40" + data)
    parse_objects(data)


@FUZZ
@given(st.sampled_from(sorted(SUPPORTED_UUIDS) + [0x2A37]), st.binary(max_size=40))
def test_decode_gatt_never_raises(uuid, data):
    r = decode_gatt(uuid, data)
    if not isinstance(r, Rejection):
        r.to_json()


@FUZZ
@given(st.sampled_from(sorted(SUPPORTED_UUIDS)), u8, st.binary(min_size=0, max_size=40))
def test_decode_gatt_with_every_flag_combination(uuid, flags, rest):
    r = decode_gatt(uuid, bytes([flags]) + rest)
    if not isinstance(r, Rejection):
        r.to_json()


@FUZZ
@given(st.binary(max_size=20))
def test_replay_state_never_raises(blob):
    ReplayWindow.from_bytes(blob)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=60), _frame_like().map(wire_from_body)), max_size=6),
       st.binary(max_size=40))
def test_ingress_never_raises(chunks, advert):
    from gateway.domain.ingress import Ingress

    ing = Ingress("gw", {DEV: KEY, "000000000000": KEY}, _Journal(), FakeClock(1_795_413_600.0, mono=50.0))
    for c in chunks:
        ing.feed("l", c)
    ing.advert(DEV, advert, -50)
    ing.advert("010203040506", advert, None)
    ing.gatt_measurement(DEV, 0x2A35, advert)


# ------------------------------------------------------------------ round trips

@ROUND
@given(st.binary(max_size=600))
def test_cobs_roundtrip(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


def _event_payloads() -> st.SearchStrategy[EventPayload]:
    def build(code, age, draw_vals):
        fmt, names = EVENT_DATA[code]
        vals = draw_vals(fmt)
        data = dict(zip(names, vals))
        if "lat_e7" in data:
            data = {"lat": data.pop("lat_e7") / 1e7, "lon": data.pop("lon_e7") / 1e7, **data}
        return EventPayload(code, age, data)

    def values(fmt):
        out = []
        limits = {"B": (0, 255), "H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF), "i": (-2**31, 2**31 - 1), "I": (0, 2**32 - 1)}
        for i, ch in enumerate(fmt[1:] if fmt else ""):
            lo, hi = limits[ch]
            out.append((lo * 7 + hi * (i + 3)) // (i + 10) % (hi - lo + 1) + lo)
        return out

    return st.builds(lambda code, age, seed: build(code, age, lambda fmt: [v ^ seed & 0x7F for v in values(fmt)]),
                     st.sampled_from(sorted(EVENT_DATA)), u32, st.integers(0, 0x7F))


def _payloads():
    return st.one_of(
        _event_payloads(),
        st.builds(Ack, u32, st.sampled_from(list(AckStatus))),
        st.builds(Heartbeat, st.one_of(st.none(), st.integers(0, 100)), u16, st.sampled_from([PowerFlag(i) for i in range(8)]),
                  u32, u16, u16, st.one_of(st.none(), st.integers(-128, 126))),
        st.builds(Hello, st.sampled_from(list(Role)), st.sampled_from(list(ResetCause)), u32, ascii_text),
        st.just(ConfigGet()), st.just(OtaEnd()),
        st.builds(Config, u32, st.dictionaries(ascii_text.map(lambda t: t[:8]), st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.text(max_size=6)), max_size=4)),
        st.builds(OtaBegin, u32, st.binary(min_size=32, max_size=32), ascii_text, st.sampled_from([b"", bytes(range(64))])),
        st.builds(OtaChunk, u32, st.binary(max_size=200)),
        st.builds(OtaStatus, st.sampled_from(list(OtaState)), ascii_text),
        st.builds(Feedback, u32, st.sampled_from(list(FeedbackState))),
        st.builds(Time, u32),
        st.builds(Error, st.sampled_from(list(ErrorCode)), st.text(max_size=16)),
    )


@ROUND
@given(_payloads())
def test_payload_roundtrip(p):
    from gateway.codec.payloads import payload_type
    raw = encode_payload(p)
    assert decode_payload(payload_type(p), raw) == p


@ROUND
@given(_payloads(), device_ids, st.integers(1, 0xFFFFFFFF), st.sampled_from([None, KEY]), st.booleans(), st.booleans())
def test_frame_roundtrip(p, device, seq, key, urgent, downlink):
    from gateway.codec.payloads import payload_type
    body = encode_body(payload_type(p), device, seq, p, key=key, urgent=urgent, downlink=downlink)
    frame = decode_wire(wire_from_body(body))
    assert not isinstance(frame, Rejection)
    assert (frame.device_id, frame.seq, frame.urgent, frame.downlink, frame.authenticated) == (device, seq, urgent, downlink, key is not None)
    assert frame.decode_payload() == p
    if key is not None:
        assert frame.verify(key) and not frame.verify(bytes(16))


@ROUND
@given(st.lists(st.tuples(_payloads(), st.integers(1, 1000)), min_size=1, max_size=5), st.integers(1, 40), st.binary(max_size=30))
def test_stream_chunking_roundtrip(items, step, junk):
    from gateway.codec.payloads import payload_type
    wires = [wire_from_body(encode_body(payload_type(p), DEV, s, p, key=KEY)) for p, s in items]
    stream = junk.replace(b"\0", b"") + b"\0" + b"".join(wires)
    dec = StreamDecoder()
    frames = []
    for i in range(0, len(stream), step):
        frames += [f for f in dec.feed(stream[i:i + step]) if not isinstance(f, Rejection)]
    assert [(f.seq, f.decode_payload()) for f in frames] == [(s, p) for p, s in items]


def _objects():
    def value_for(oid):
        spec = OBJECTS[oid]
        if spec.size == 0:
            return st.text(max_size=10) if oid == 0x53 else st.binary(max_size=10)
        bits = spec.size * 8
        raw = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.signed else st.integers(0, (1 << bits) - 1)
        return raw.map(lambda r, spec=spec, oid=oid: _decoded_value(oid, spec, r))
    return st.sampled_from(sorted(OBJECTS)).flatmap(lambda oid: st.tuples(st.just(oid), value_for(oid)))


def _decoded_value(oid, spec, raw):
    from gateway.codec.bthome import _value
    return _value(oid, spec, raw)


@ROUND
@given(st.lists(_objects(), max_size=6), st.sampled_from([None, KEY]), u32, st.booleans())
def test_bthome_roundtrip(objects, key, counter, trigger):
    data = encode_advert(objects, key=key, mac=DEV, counter=counter if key else None, trigger_based=trigger)
    adv = decode_advert(data, mac=DEV, key=key)
    assert not isinstance(adv, Rejection)
    assert [(o.object_id, o.value) for o in adv.objects] == sorted(objects, key=lambda kv: kv[0])
    assert adv.encrypted == (key is not None) and adv.trigger_based == trigger
    if key:
        assert adv.counter == counter
        assert isinstance(decode_advert(data, mac="a4c1380a1b2d", key=key), Rejection)  # MAC is in the nonce


@ROUND
@given(u16)
def test_sfloat_roundtrip(raw):
    assert encode_sfloat(decode_sfloat(raw)) == raw


@ROUND
@given(u32)
def test_float_roundtrip(raw):
    assert encode_float(decode_float(raw)) == raw


def _sf():
    return st.builds(MedFloat, st.integers(-2045, 2045), st.integers(-8, 7))


def _dt():
    return st.builds(DateTime, st.one_of(st.just(0), st.integers(1582, 9999)), st.integers(0, 12), st.integers(0, 31),
                     st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))


@ROUND
@given(st.data())
def test_gatt_roundtrip(data):
    uuid = data.draw(st.sampled_from(sorted(SUPPORTED_UUIDS)))
    flags = data.draw(st.integers(0, 0x1F))
    f = {"systolic": data.draw(_sf()), "diastolic": data.draw(_sf()), "mean_arterial_pressure": data.draw(_sf()),
         "timestamp": data.draw(_dt()), "base_time": data.draw(_dt()), "pulse_rate": data.draw(_sf()), "user_id": data.draw(u8),
         "measurement_status": data.draw(u16), "temperature": MedFloat(data.draw(st.integers(-(2**23 - 3), 2**23 - 3)), data.draw(st.integers(-128, 127))),
         "temperature_type": data.draw(u8), "weight": data.draw(st.integers(0, 0xFFFE)), "bmi": data.draw(u16), "height": data.draw(u16),
         "spo2": data.draw(_sf()), "device_and_sensor_status": data.draw(st.integers(0, 0xFFFFFF)),
         "pulse_amplitude_index": data.draw(_sf()), "spo2_fast": data.draw(_sf()), "pulse_rate_fast": data.draw(_sf()),
         "spo2_slow": data.draw(_sf()), "pulse_rate_slow": data.draw(_sf()), "sequence_number": data.draw(u16),
         "time_offset_min": data.draw(st.integers(-0x8000, 0x7FFF)), "concentration": data.draw(_sf()),
         "sample_type": data.draw(st.integers(0, 15)), "sample_location": data.draw(st.integers(0, 15)), "sensor_status": data.draw(u16)}
    imperial = bool(flags & 1)
    f["weight"] = f["weight"] * (0.01 if imperial else 0.005)
    f["bmi"] = f["bmi"] * 0.1
    f["height"] = f["height"] * (0.1 if imperial else 0.001)
    raw = encode_gatt(uuid, flags, f)
    reading = decode_gatt(uuid, raw)
    assert not isinstance(reading, Rejection)
    assert encode_gatt(uuid, flags, reading.fields) == raw
    for k, v in reading.fields.items():
        if isinstance(v, (MedFloat, DateTime)) or k in ("user_id", "sequence_number", "measurement_status", "sensor_status"):
            assert v == f[k], k


@ROUND
@given(st.lists(st.integers(0, 300), max_size=80))
def test_replay_window_matches_a_reference_model(seqs):
    w = ReplayWindow()
    accepted: set[int] = set()
    highest = 0
    for s in seqs:
        expect = s > 0 and (s > highest or (highest - s < 64 and s not in accepted))
        assert w.accept(s) == expect
        if expect:
            accepted.add(s)
            highest = max(highest, s)
        restored = ReplayWindow.from_bytes(w.to_bytes())
        assert restored == w
