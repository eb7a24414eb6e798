"""Re-keying and re-flashing a device (issue 10 F12): the replay state is bound to the key it
was built under, and a device whose counter restarted learns where to continue.

- a new key: the frame window keeps refusing seqs up to the old highest (the floor) and
  answers them ERROR 3 "seq=S highest=H" - never ACK DUPLICATE, although an event with
  that id is in the journal: that was another event, under the old key - so nothing the
  re-keyed device raises is dropped as a duplicate; the BTHome window starts empty;
- the same key after a restart: nothing is reset (DUPLICATE as before);
- an EVENT or HELLO below the window that is not in the journal is answered ERROR 3, an
  authenticated downlink, so the device renumbers above the window."""
from __future__ import annotations

import pytest

from gateway.codec import (
    AckStatus,
    Error,
    ErrorCode,
    Hello,
    MsgType,
    RejectReason,
    ResetCause,
    bthome,
    decode_wire,
    encode_advert,
    encode_frame,
)
from gateway.codec.frame import Frame
from gateway.domain.ingress import Ingress
from gateway.domain.model import Role
from gateway.testing.stimuli import TEST_DEVICE as DEV
from gateway.testing.stimuli import TEST_KEY as KEY
from gateway.testing.stimuli import event_frame

KEY2 = bytes(range(100, 116))


def _reply(raw: bytes, key: bytes):
    frame = decode_wire(raw)
    assert isinstance(frame, Frame)
    assert frame.downlink and frame.authenticated and frame.verify(key)   # never unauthenticated
    return frame.decode_payload()


def _hello(seq: int, key: bytes) -> bytes:
    return encode_frame(MsgType.HELLO, DEV, seq, Hello(Role.BUTTON, ResetCause.POWER_ON, 0, "1.0.0"), key=key)


def _deliver(ing: Ingress, journal, seqs, key: bytes) -> None:
    for s in seqs:
        res = ing.feed("l", event_frame(s, key=key))
        for ev in res.events:
            journal.append(ev)


@pytest.mark.security
def test_F12_after_a_rekey_old_seqs_are_answered_error_3_and_the_device_continues_above(journal, clock):
    _deliver(Ingress("gw", {DEV: KEY}, journal, clock), journal, range(1, 201), KEY)
    assert journal.contains(f"{DEV}-00000001")
    # the device is re-flashed and re-keyed; the gateway restarts with the new key
    ing = Ingress("gw", {DEV: KEY2}, journal, clock)
    res = ing.feed("l", _hello(1, KEY2))
    [(link, raw)] = res.replies
    assert link == "l" and _reply(raw, KEY2) == Error(ErrorCode.REPLAY, "seq=1 highest=200")
    # an event with an id the journal already has (another event, under the old key)
    res = ing.feed("l", event_frame(2, key=KEY2))
    assert not res.events and [r.reason for r in res.rejects] == [RejectReason.REPLAY]
    [(_, raw)] = res.replies
    assert _reply(raw, KEY2) == Error(ErrorCode.REPLAY, "seq=2 highest=200")     # not ACK DUPLICATE
    # the device renumbers above the floor: accepted and stored
    [ev] = ing.feed("l", event_frame(201, key=KEY2)).events
    assert ev.event_id == f"{DEV}-000000c9"
    # the binding survives a restart: still the floor, no second reset
    ing2 = Ingress("gw", {DEV: KEY2}, journal, clock)
    assert not ing2.feed("l", event_frame(202, key=KEY2)).rejects
    [(_, raw)] = ing2.feed("l", event_frame(150, key=KEY2)).replies
    assert _reply(raw, KEY2) == Error(ErrorCode.REPLAY, "seq=150 highest=202")


def test_the_same_key_after_a_restart_resets_nothing(journal, clock):
    _deliver(Ingress("gw", {DEV: KEY}, journal, clock), journal, range(1, 11), KEY)
    ing = Ingress("gw", {DEV: KEY}, journal, clock)
    res = ing.feed("l", event_frame(10, key=KEY))                  # our ACK was lost: DUPLICATE
    [(_, raw)] = res.replies
    ack = _reply(raw, KEY)
    assert ack.status is AckStatus.DUPLICATE and ack.acked_seq == 10
    assert [r.reason for r in ing.feed("l", _hello(9, KEY)).rejects] == [RejectReason.REPLAY]


def test_state_of_an_older_gateway_is_kept_and_bound_to_the_current_key(journal, clock):
    _deliver(Ingress("gw", {DEV: KEY}, journal, clock), journal, range(1, 6), KEY)
    del journal.state[f"replay_key/{DEV}"]            # written by a gateway before this change
    ing = Ingress("gw", {DEV: KEY}, journal, clock)
    assert [r.reason for r in ing.feed("l", event_frame(3, key=None)).rejects] == [RejectReason.UNAUTHENTICATED]
    assert ing.feed("l", event_frame(5, key=KEY)).replies                 # DUPLICATE: window kept
    assert len(journal.state[f"replay_key/{DEV}"]) == 12


def test_event_below_the_window_not_in_the_journal_is_answered_error_3(journal, clock):
    ing = Ingress("gw", {DEV: KEY}, journal, clock)
    _deliver(ing, journal, [300], KEY)
    res = ing.feed("l", event_frame(100, key=KEY))        # e.g. queued through many resets, never stored
    assert not res.events
    [(_, raw)] = res.replies
    assert _reply(raw, KEY) == Error(ErrorCode.REPLAY, "seq=100 highest=300")


def test_a_rekeyed_advertiser_starts_a_fresh_bthome_window(journal, clock):
    ing = Ingress("gw", {DEV: KEY}, journal, clock)
    assert ing.advert(DEV, encode_advert([(bthome.BUTTON, 1)], key=KEY, mac=DEV, counter=5000), None).events
    ing2 = Ingress("gw", {DEV: KEY2}, journal, clock)
    res = ing2.advert(DEV, encode_advert([(bthome.BUTTON, 1)], key=KEY2, mac=DEV, counter=1), None)
    assert not res.rejects and len(res.events) == 1
