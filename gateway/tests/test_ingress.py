"""Ingress with fakes: authentication, replay, duplicates, resync, adverts, downlinks."""
from __future__ import annotations

import logging

import pytest

from gateway.codec import (
    Ack,
    AckStatus,
    Error,
    ErrorCode,
    Heartbeat,
    Hello,
    MsgType,
    OtaStatus,
    OtaState,
    PowerFlag,
    RejectReason,
    ResetCause,
    StreamDecoder,
    decode_wire,
    encode_advert,
    encode_frame,
    encode_payload_frame,
)
from gateway.codec import bthome
from gateway.codec.gatt import BPM, encode_gatt
from gateway.codec.ieee11073 import MedFloat
from gateway.domain.device_seqs import clock_seed
from gateway.domain.ingress import SYNTHETIC_SEQ_BASE, Ingress, RejectLog
from gateway.domain.model import EventCode, Role
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import TEST_DEVICE as DEV, TEST_KEY as KEY, event_frame
from gateway.tests._kit import FakeJournal

PLAIN_DEV = "0011223344aa"
GW = "gw-test"


def make(journal, clock, **kw) -> Ingress:
    return Ingress(GW, {DEV: KEY}, journal, clock, **kw)


def decode_reply(raw: bytes):
    frame = decode_wire(raw)
    assert not isinstance(frame, type(None))
    return frame, frame.decode_payload()


def test_authenticated_event_accepted(journal, clock):
    ing = make(journal, clock)
    res = ing.feed("ttyUSB0", event_frame(42, age_ms=1500))
    assert not res.rejects
    [ev] = res.events
    assert ev.event_id == "a4c1380a1b2c-0000002a"
    assert ev.code is EventCode.BUTTON_PRESS and ev.seq == 42
    assert ev.received_at == clock.t and ev.occurred_at == pytest.approx(clock.t - 1.5)
    assert res.event_links == {ev.event_id: "ttyUSB0"}
    assert [u.device_id for u in res.device_updates] == [DEV]
    assert res.replies == []          # ACK only after the journal stored it
    assert ing.link_for(DEV) == "ttyUSB0"


def test_ack_frame_is_authenticated_downlink_with_persisted_seq(journal, clock):
    ing = make(journal, clock)
    [ev] = ing.feed("l", event_frame(7)).events
    frame, ack = decode_reply(ing.ack_frame(ev))
    assert frame.downlink and frame.authenticated and frame.verify(KEY)
    assert ack == Ack(7, AckStatus.STORED)
    first = frame.seq
    frame2, ack2 = decode_reply(ing.ack_frame(ev, duplicate=True))
    assert ack2.status is AckStatus.DUPLICATE and frame2.seq == first + 1
    # a restarted gateway never reuses a downlink seq
    ing2 = make(journal, clock)
    frame3, _ = decode_reply(ing2.ack_frame(ev))
    assert frame3.seq > frame2.seq


def test_forged_tag_rejected(journal, clock):
    ing = make(journal, clock)
    wire = event_frame(5, key=bytes(16))  # signed with the wrong key
    res = ing.feed("l", wire)
    assert not res.events
    assert [r.reason for r in res.rejects] == [RejectReason.BAD_AUTH]
    assert ing.counters["bad_auth"] == 1
    # the forged frame did not consume seq 5
    assert len(ing.feed("l", event_frame(5)).events) == 1


def test_replayed_heartbeat_rejected_and_counted(journal, clock):
    ing = make(journal, clock)
    hb = encode_payload_frame(Heartbeat(80, 3900, PowerFlag.NONE, 10, 0, 0, -60), DEV, 9, key=KEY)
    assert len(ing.feed("l", hb).device_updates) == 1
    res = ing.feed("l", hb)
    assert [r.reason for r in res.rejects] == [RejectReason.REPLAY]
    assert not res.device_updates
    assert ing.counters["replay"] == 1
    assert ing.counters.for_device(DEV) == {"replay": 1}


def test_replay_window_survives_restart(journal, clock):
    ing = make(journal, clock)
    hb = encode_payload_frame(Heartbeat(80, 3900, PowerFlag.NONE, 10, 0, 0, -60), DEV, 9, key=KEY)
    ing.feed("l", hb)
    ing2 = make(journal, clock)
    assert [r.reason for r in ing2.feed("l", hb).rejects] == [RejectReason.REPLAY]


def test_old_event_outside_window_is_replay(journal, clock):
    ing = make(journal, clock)
    ing.feed("l", event_frame(100))
    res = ing.feed("l", event_frame(10))
    assert [r.reason for r in res.rejects] == [RejectReason.REPLAY]
    assert not res.events


def test_retransmit_of_journaled_event_gets_ack_duplicate(journal, clock):
    ing = make(journal, clock)
    [ev] = ing.feed("l", event_frame(42)).events
    journal.append(ev)
    ing.ack_frame(ev)  # the device lost this ACK and resends
    res = ing.feed("l", event_frame(42, age_ms=2000))
    assert res.events == [] and res.rejects == []
    [(link, raw)] = res.replies
    frame, ack = decode_reply(raw)
    assert link == "l" and frame.verify(KEY) and ack == Ack(42, AckStatus.DUPLICATE)
    assert ing.duplicates == 1


def test_retransmit_while_first_copy_is_being_stored_is_not_reemitted(journal, clock):
    ing = make(journal, clock)
    assert len(ing.feed("l", event_frame(42)).events) == 1
    res = ing.feed("l", event_frame(42))
    assert res.events == [] and res.rejects == [] and res.replies == []


def test_seen_but_never_stored_event_is_reemitted_after_restart(journal, clock):
    """Crash between the window update and the journal commit must not lose the alarm."""
    ing = make(journal, clock)
    [ev] = ing.feed("l", event_frame(42)).events
    ing2 = make(journal, clock)  # restart: window persisted, journal never got the event
    [again] = ing2.feed("l", event_frame(42)).events
    assert again.event_id == ev.event_id


def test_out_of_order_within_window_accepted(journal, clock):
    ing = make(journal, clock)
    got = []
    for seq in (10, 12, 11, 9, 60):
        got += [e.seq for e in ing.feed("l", event_frame(seq, code=EventCode.MOTION)).events]
    assert got == [10, 12, 11, 9, 60]


def test_unknown_device_rejected(journal, clock):
    ing = make(journal, clock, known_devices=[DEV])
    res = ing.feed("l", event_frame(1, device="ffeeddccbbaa", key=None, code=EventCode.MOTION))
    assert [r.reason for r in res.rejects] == [RejectReason.UNKNOWN_DEVICE]
    assert res.rejects[0].device_id == "ffeeddccbbaa"
    assert ing.feed("l", event_frame(1)).events  # the known one still works


def test_unauthenticated_event_from_keyed_device_rejected(journal, clock):
    ing = make(journal, clock)
    res = ing.feed("l", event_frame(3, key=None))
    assert [r.reason for r in res.rejects] == [RejectReason.UNAUTHENTICATED]
    assert not res.events


def test_unkeyed_device_telemetry_ok_alarm_needs_opt_in(journal, clock):
    ing = make(journal, clock)
    res = ing.feed("l", event_frame(1, code=EventCode.DOOR_OPEN, key=None, device=PLAIN_DEV))
    assert [e.code for e in res.events] == [EventCode.DOOR_OPEN]
    res = ing.feed("l", event_frame(2, code=EventCode.BUTTON_PRESS, key=None, device=PLAIN_DEV))
    assert [r.reason for r in res.rejects] == [RejectReason.UNAUTHENTICATED]
    ing2 = Ingress(GW, {}, FakeJournal(), clock, allow_unencrypted_alarms=True)
    assert ing2.feed("l", event_frame(2, key=None, device=PLAIN_DEV)).events


def test_garbage_between_frames_resynchronises(journal, clock):
    ing = make(journal, clock)
    stream = event_frame(1) + b"\x13\x37garbage\xff\x00" + event_frame(2) + b"\x00\x00" + event_frame(3)
    res = ing.feed("l", stream)
    assert [e.seq for e in res.events] == [1, 2, 3]
    assert len(res.rejects) == 1 and res.rejects[0].reason in (RejectReason.COBS, RejectReason.SHORT, RejectReason.CRC)


def test_arbitrary_chunking_gives_same_events(journal, clock):
    ing = make(journal, clock)
    stream = b"".join(event_frame(s, code=EventCode.MOTION) for s in range(1, 6))
    seqs = []
    for i in range(0, len(stream), 3):
        seqs += [e.seq for e in ing.feed("gatt:aa", stream[i:i + 3]).events]
    assert seqs == [1, 2, 3, 4, 5]


def test_oversized_frame_rejected_and_stream_recovers(journal, clock):
    ing = make(journal, clock)
    res = ing.feed("l", bytes([0x42]) * 1000 + b"\x00" + event_frame(4))
    assert [r.reason for r in res.rejects] == [RejectReason.OVERSIZE]
    assert [e.seq for e in res.events] == [4]


def test_unknown_code_rejected_with_error_reply(journal, clock):
    ing = make(journal, clock)
    wire = encode_frame(MsgType.EVENT, DEV, 8, bytes([0x7E, 0, 0, 0, 0]), key=KEY)
    res = ing.feed("l", wire)
    assert [r.reason for r in res.rejects] == [RejectReason.UNKNOWN_CODE]
    [(link, raw)] = res.replies
    frame, err = decode_reply(raw)
    assert frame.downlink and frame.verify(KEY)
    assert isinstance(err, Error) and err.code is ErrorCode.BAD_PAYLOAD and "0x7e" in err.msg


def test_bad_payload_rejected(journal, clock):
    ing = make(journal, clock)
    wire = encode_frame(MsgType.EVENT, DEV, 8, bytes([0x10, 0, 0, 0, 0, 1]), key=KEY)
    res = ing.feed("l", wire)
    assert [r.reason for r in res.rejects] == [RejectReason.BAD_PAYLOAD]
    assert not res.events


def test_reflected_downlink_rejected(journal, clock):
    ing = make(journal, clock)
    wire = encode_payload_frame(Ack(1, AckStatus.STORED), DEV, 1, key=KEY, downlink=True)
    assert [r.reason for r in ing.feed("l", wire).rejects] == [RejectReason.DIRECTION]


def test_hello_and_heartbeat_give_device_updates_and_role(journal, clock):
    ing = make(journal, clock)
    hello = encode_payload_frame(Hello(Role.FALL, ResetCause.WATCHDOG, 3, "1.4.2"), DEV, 1, key=KEY)
    hb = encode_payload_frame(Heartbeat(55, 3700, PowerFlag.CHARGING, 99, 2, 1, -70), DEV, 2, key=KEY)
    res = ing.feed("l", hello + hb)
    u1, u2 = res.device_updates
    assert (u1.role, u1.fw_version, u1.reset_cause, u1.config_version) == (Role.FALL, "1.4.2", 2, 3)
    assert (u2.battery_pct, u2.battery_mv, u2.power_flags, u2.rssi, u2.queue_depth, u2.device_rejects, u2.uptime_s) == \
        (55, 3700, 1, -70, 2, 1, 99)
    assert u2.role is Role.FALL and u2.link == "l"
    [ev] = ing.feed("l", event_frame(3, code=EventCode.FALL_DETECTED, data={"peak_cg": 300, "placement": 0})).events
    assert ev.role is Role.FALL and ev.data == {"peak_cg": 300, "placement": 0}


def test_other_uplink_messages_are_passed_on(journal, clock):
    ing = make(journal, clock)
    res = ing.feed("l", encode_payload_frame(OtaStatus(OtaState.COMMITTED, "1.5.0"), DEV, 4, key=KEY))
    [msg] = res.messages
    assert msg.payload == OtaStatus(OtaState.COMMITTED, "1.5.0") and msg.seq == 4 and msg.link == "l"


def test_feedback_and_generic_downlink(journal, clock):
    ing = make(journal, clock)
    frame, fb = decode_reply(ing.feedback_frame(DEV, 42, 2))
    assert frame.type is MsgType.FEEDBACK and fb.ref_seq == 42 and int(fb.state) == 2 and frame.verify(KEY)
    frame2, _ = decode_reply(ing.downlink(DEV.upper(), MsgType.TIME, b"\x01\x02\x03\x04"))
    assert frame2.seq == frame.seq + 1 and frame2.device_id == DEV


def test_downlink_seq_persisted_in_blocks(journal, clock):
    ing = make(journal, clock)
    writes = []
    orig = journal.set_state

    def spy(k, v):
        writes.append(k)
        orig(k, v)
    journal.set_state = spy
    seqs = [decode_wire(ing.downlink(DEV, MsgType.TIME, b"\0\0\0\0")).seq for _ in range(130)]
    first = clock_seed(clock.time())    # no saved value: the first block starts from the wall clock (F13)
    assert seqs == list(range(first, first + 130))
    assert 2 <= writes.count(f"downlink_seq/{DEV}") <= 4


# ---------------------------------------------------------------- adverts

def test_encrypted_bthome_button_press_becomes_event(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.BATTERY, 91), (bthome.BUTTON, 1), (bthome.DEVICE_TYPE, int(Role.BUTTON))],
                         key=KEY, mac=DEV, counter=77, trigger_based=True)
    res = ing.advert("A4:C1:38:0A:1B:2C", data, -67)
    assert not res.rejects
    [ev] = res.events
    assert ev.code is EventCode.BUTTON_PRESS and ev.event_id == f"{DEV}-0000004d" and ev.role is Role.BUTTON
    [u] = res.device_updates
    assert (u.battery_pct, u.rssi, u.role, u.link) == (91, -67, Role.BUTTON, "ble")


def test_repeated_advert_counts_as_repeat_then_replay(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.BUTTON, 1)], key=KEY, mac=DEV, counter=5)
    assert len(ing.advert(DEV, data, None).events) == 1
    for _ in range(3):
        res = ing.advert(DEV, data, None)
        assert not res.events and [r.reason for r in res.rejects] == [RejectReason.REPEAT]
    assert ing.counters["repeat"] == 3 and ing.counters["replay"] == 0
    clock.advance(600)
    assert [r.reason for r in ing.advert(DEV, data, None).rejects] == [RejectReason.REPLAY]


def test_advert_with_wrong_key_or_unencrypted_from_keyed_device(journal, clock):
    ing = make(journal, clock)
    forged = encode_advert([(bthome.BUTTON, 1)], key=bytes(16), mac=DEV, counter=9)
    assert [r.reason for r in ing.advert(DEV, forged, None).rejects] == [RejectReason.BAD_AUTH]
    plain = encode_advert([(bthome.BUTTON, 1)])
    assert [r.reason for r in ing.advert(DEV, plain, None).rejects] == [RejectReason.UNAUTHENTICATED]


def test_unencrypted_advert_alarm_rejected_unless_allowed(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.PACKET_ID, 1), (bthome.BATTERY, 70), (bthome.BUTTON, 1), (bthome.DOOR, 1)])
    res = ing.advert(PLAIN_DEV, data, -80)
    assert [e.code for e in res.events] == [EventCode.DOOR_OPEN]       # telemetry passes
    assert [r.reason for r in res.rejects] == [RejectReason.UNAUTHENTICATED]
    assert res.device_updates[0].battery_pct == 70
    assert res.events[0].event_id == f"{PLAIN_DEV}-{SYNTHETIC_SEQ_BASE + 1:08x}"
    allowed = Ingress(GW, {}, FakeJournal(), clock, allow_unencrypted_alarms=True)
    res = allowed.advert(PLAIN_DEV, data, -80)
    assert [e.code for e in res.events] == [EventCode.DOOR_OPEN, EventCode.BUTTON_PRESS]  # object id order
    assert len({e.event_id for e in res.events}) == 2


def test_unencrypted_repeat_suppressed(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.PACKET_ID, 3), (bthome.DOOR, 1)])
    assert len(ing.advert(PLAIN_DEV, data, None).events) == 1
    assert [r.reason for r in ing.advert(PLAIN_DEV, data, None).rejects] == [RejectReason.REPEAT]


def test_raw_object_event_and_bad_advert(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.RAW, bytes([0x10, 0x60, 0x01, 0x01]))], key=KEY, mac=DEV, counter=1)
    [ev] = ing.advert(DEV, data, None).events
    assert ev.code is EventCode.FALL_DETECTED and ev.data == {"peak_cg": 352, "placement": 1}
    assert [r.reason for r in ing.advert(DEV, b"\x40\xfe", None).rejects] == [RejectReason.UNAUTHENTICATED]
    assert [r.reason for r in ing.advert("zz", b"\x40", None).rejects] == [RejectReason.BAD_PAYLOAD]
    assert [r.reason for r in ing.advert(PLAIN_DEV, b"\x40\xfe", None).rejects] == [RejectReason.UNKNOWN_OBJECT]


def test_gatt_measurement_event(journal, clock):
    ing = make(journal, clock)
    value = encode_gatt(BPM, 0x00, {"systolic": MedFloat(182, 0), "diastolic": MedFloat(95, 0),
                                    "mean_arterial_pressure": MedFloat(124, 0)})
    [ev] = ing.gatt_measurement("0A:0B:0C:0D:0E:0F", 0x2A35, value).events
    assert ev.code is EventCode.MEASUREMENT and ev.data["systolic"] == 182 and ev.role is Role.HEALTH
    assert [r.reason for r in ing.gatt_measurement("0a0b0c0d0e0f", 0x2A35, b"\x00").rejects] == [RejectReason.SHORT]


# ---------------------------------------------------------------- robustness

def test_rejections_are_rate_limited_in_the_log(journal, clock, caplog):
    ing = make(journal, clock, log_interval_s=60)
    caplog.set_level(logging.DEBUG, logger="gateway.domain.ingress")
    for seq in range(1, 21):
        ing.feed("l", event_frame(seq, key=None))
    lines = [r for r in caplog.records if "unauthenticated" in r.getMessage()]
    assert len(lines) == 1
    assert ing.counters["unauthenticated"] == 20
    clock.advance(61)
    ing.feed("l", event_frame(99, key=None))
    lines = [r.getMessage() for r in caplog.records if "unauthenticated" in r.getMessage()]
    assert len(lines) == 2 and "+19 more" in lines[1]


def test_reject_log_keys_per_device(clock, caplog):
    from gateway.codec import Rejection
    rl = RejectLog(clock, 60)
    assert rl(Rejection(RejectReason.CRC, "x", "a"), "l")
    assert rl(Rejection(RejectReason.CRC, "x", "b"), "l")
    assert not rl(Rejection(RejectReason.CRC, "x", "a"), "l")


def test_corrupt_window_state_does_not_lock_out_the_device(journal, clock, caplog):
    journal.state[f"replay/frame/{DEV}"] = b"\x99garbage"
    ing = make(journal, clock)
    assert ing.feed("l", event_frame(1)).events


def test_bad_key_length_refused(journal, clock):
    with pytest.raises(ValueError, match="16 bytes"):
        Ingress(GW, {DEV: b"short"}, journal, clock)


def test_stream_decoder_is_per_link(journal, clock):
    ing = make(journal, clock)
    a, b = event_frame(1), event_frame(2)
    assert not ing.feed("x", a[:10]).events
    assert not ing.feed("y", b[:10]).events
    assert [e.seq for e in ing.feed("x", a[10:]).events] == [1]
    assert [e.seq for e in ing.feed("y", b[10:]).events] == [2]
    assert isinstance(StreamDecoder().feed(b""), list)


def test_advert_with_mac_included_uses_the_payload_identity(journal, clock):
    ing = make(journal, clock)
    data = encode_advert([(bthome.BUTTON, 1)], key=KEY, mac=DEV, counter=3, mac_included=True)
    [ev] = ing.advert("7e:00:00:00:00:01", data, None).events  # random advertising address
    assert ev.device_id == DEV and ev.code is EventCode.BUTTON_PRESS


def test_every_vector_frame_through_ingress():
    """The committed vectors, fed to a gateway that holds the vector keys."""
    import json
    from gateway.codec.vectors import DEFAULT_PATH

    vec = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    keys = {d: bytes.fromhex(k) for d, k in vec["keys"].items()}
    for case in vec["frames"]:
        d = case["decoded"]
        ing = Ingress(GW, keys if case["key_hex"] else {}, FakeJournal(), FakeClock(), allow_unencrypted_alarms=True)
        res = ing.feed("l", bytes.fromhex(case["wire_hex"]))
        if d["flags"] & 0x04:
            assert [r.reason for r in res.rejects] == [RejectReason.DIRECTION], case["name"]
            continue
        assert not res.rejects, (case["name"], res.rejects)
        if d["type_name"] == "EVENT":
            [ev] = res.events
            assert (int(ev.code), ev.seq, ev.data) == (d["fields"]["code"], d["seq"], d["fields"]["data"]), case["name"]
            assert ev.event_id == f"{d['device_id']}-{d['seq']:08x}"
        else:
            assert len(res.device_updates) == 1 and not res.events, case["name"]
    for case in vec["invalid_frames"]:
        ing = Ingress(GW, {DEV: KEY}, FakeJournal(), FakeClock())
        res = ing.feed("l", bytes.fromhex(case["wire_hex"]))
        reasons = [r.reason.value for r in res.rejects]
        if case["reason"] == "empty":
            assert reasons == [], case["name"]  # a lone delimiter is ignored by the stream decoder
        else:
            assert reasons == [case["reason"]], case["name"]
