"""Forwarder domain logic with fakes: fast path, replay order, acks, escalation, journal faults."""
from __future__ import annotations

import errno
import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.journal import JournalWriter, Recovery, SqliteJournal
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.payload import AckStatus
from gateway.domain.forwarder import Forwarder
from gateway.domain.payload import encode_ack
from gateway.testing.clock import FakeClock
from gateway.testing.platform import FakePublisher, RecordingSignal

GW = "gw-0001"
ACK = f"wt/v1/gw/{GW}/ack"


@dataclass
class Rig:
    clock: FakeClock
    journal: SqliteJournal
    writer: JournalWriter
    pub: FakePublisher
    fallback: FakePublisher | None
    signal: RecordingSignal
    fwd: Forwarder
    stored: list
    acks: list
    escalated: list

    def run(self) -> None:
        """Let the 'writer thread' run (single-threaded here) and the loop flush."""
        for _ in range(50):
            self.fwd.flush()
            if not self.writer.run_pending():
                return

    def pump(self, rounds: int = 200) -> None:
        """Broker PUBACKs everything, repeatedly, until nothing moves."""
        for _ in range(rounds):
            self.run()
            if not self.pub.puback():
                self.run()
                if not self.pub.unacked():
                    return

    def ev(self, i: int, code: EventCode = EventCode.MOTION) -> Event:
        t = self.clock.time()
        return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", code, t, t, role=Role.BUTTON, seq=i)

    def submit(self, e: Event) -> None:
        self.fwd.submit(e, lambda ev, new: self.stored.append((ev.event_id, new)))


def rig(tmp_path, *, fallback: bool = False, before_commit=None, journal_recovery=None, **kw) -> Rig:
    clock = FakeClock()
    j = SqliteJournal(tmp_path / "j.db", before_commit=before_commit, clock=clock)
    w = JournalWriter(j)
    pub = FakePublisher("primary", clock=clock)
    fb = FakePublisher("fallback", clock=clock) if fallback else None
    sig = RecordingSignal()
    acks: list = []
    esc: list = []
    kw.setdefault("replay_window", 8)
    kw.setdefault("replay_batch", 16)
    f = Forwarder(gateway_id=GW, journal=w, primary=pub, fallback=fb, clock=clock, local_signal=sig,
                  ack_timeout_s=10, on_platform_ack=lambda i, s, e: acks.append((i, s, e)),
                  on_alarm_escalated=lambda e, step: esc.append((e.event_id, step)),
                  journal_recovery=journal_recovery, **kw)
    r = Rig(clock, j, w, pub, fb, sig, f, [], acks, esc)
    f.start()
    r.run()
    return r


def payloads(pub: FakePublisher, leaf: str | None = None) -> list[dict]:
    return [json.loads(p.payload) for p in pub.published if leaf is None or p.topic.endswith("/" + leaf)]


def test_alarm_is_published_before_the_journal_write(tmp_path):
    r = rig(tmp_path)
    r.submit(r.ev(1, EventCode.BUTTON_PRESS))
    (p,) = r.pub.published                       # on the wire already ...
    body = json.loads(p.payload)
    assert p.topic == f"wt/v1/gw/{GW}/alarm" and p.user_properties == {"event_id": "a4c1380a1b2c-00000001"}
    assert (body["schema"], body["attempt"], body["route"], body["class"]) == ("wt.alarm/1", 1, "primary", "care")
    assert r.stored == []                        # ... while the fsync has not happened yet
    r.run()
    assert r.stored == [("a4c1380a1b2c-00000001", True)]
    assert r.journal.contains("a4c1380a1b2c-00000001")


def test_telemetry_goes_through_the_journal_then_live(tmp_path):
    r = rig(tmp_path)
    r.submit(r.ev(1))
    assert r.pub.published == []                 # telemetry waits for the journal
    r.run()
    assert [b["event_id"] for b in payloads(r.pub, "event")] == ["a4c1380a1b2c-00000001"]
    assert r.fwd.stats["live"] == 1 and r.stored == [("a4c1380a1b2c-00000001", True)]
    r.pump()
    assert r.journal.depth().undelivered == 0    # PUBACK -> marked delivered


def test_alarm_jumps_the_backlog_and_backlog_replays_in_order(tmp_path):
    r = rig(tmp_path)
    r.pub.set_connected(False)
    for i in range(1, 101):
        r.submit(r.ev(i))
    r.run()
    assert r.pub.published == [] and r.journal.depth().undelivered == 100
    r.pub.set_connected(True)
    r.run()
    assert len(r.pub.unacked()) == 8             # replay window, not the whole backlog
    r.submit(r.ev(1000, EventCode.FALL_DETECTED))
    assert r.pub.published[-1].topic.endswith("/alarm")
    assert len(r.pub.published) == 9             # at most one window of telemetry ahead of it
    r.pump()
    ids = [b["event_id"] for b in payloads(r.pub, "event")]
    assert ids == [f"a4c1380a1b2c-{i:08x}" for i in range(1, 101)]   # journal order, no duplicates
    assert r.journal.depth().undelivered == 0


def test_outage_with_alarms_and_telemetry(tmp_path):
    r = rig(tmp_path, fallback=False)
    r.pub.set_connected(False)
    for i in range(1, 41):
        r.submit(r.ev(i, EventCode.BUTTON_PRESS if i % 10 == 0 else EventCode.MOTION))
    r.run()
    assert r.fwd.status().alarms_held == 4
    r.pub.set_connected(True)
    alarms_first = [p.topic.rsplit("/", 1)[1] for p in r.pub.published[:4]]
    assert alarms_first == ["alarm"] * 4          # held alarms go before the backlog
    r.pump()
    ev_ids = [b["event_id"] for b in payloads(r.pub, "event")]
    assert ev_ids == [f"a4c1380a1b2c-{i:08x}" for i in range(1, 41) if i % 10]
    assert len(payloads(r.pub, "alarm")) == 4


def test_disconnected_primary_alarm_goes_to_fallback(tmp_path):
    r = rig(tmp_path, fallback=True)
    r.pub.set_connected(False)
    r.submit(r.ev(7, EventCode.BUTTON_PRESS))
    assert r.pub.published == []
    (body,) = payloads(r.fallback)
    assert body["route"] == "fallback" and body["attempt"] == 1


def test_unacknowledged_alarm_is_resent_and_escalated(tmp_path):
    r = rig(tmp_path, fallback=True)
    a = r.ev(1, EventCode.FALL_DETECTED)
    r.submit(a)
    r.pump()
    r.fallback.puback()
    r.clock.advance(9.9)
    r.fwd.poll()
    assert len(payloads(r.pub, "alarm")) == 1 and r.signal.on == []
    r.clock.advance(0.2)
    r.fwd.poll()
    r.run()
    prim, fb = payloads(r.pub, "alarm"), payloads(r.fallback, "alarm")
    resent = [b for b in prim + fb if b["event_id"] == a.event_id and b["attempt"] == 2]
    assert sorted(b["route"] for b in resent) == ["fallback", "primary"]   # same event_id, attempt+1, both routes
    assert r.signal.on == [a.event_id] and r.escalated == [(a.event_id, 1)]
    tech = [b for b in prim if b["type"] == "alarm_unacknowledged"]
    assert len(tech) == 1 and tech[0]["class"] == "technical" and tech[0]["data"]["event_id"] == a.event_id
    assert tech[0]["event_id"].startswith(f"{GW}-g") and len(tech[0]["event_id"]) == len(GW) + 12
    # a second interval: re-sent again, no second technical alarm
    r.pump()
    r.clock.advance(10.1)
    r.fwd.poll()
    r.run()
    assert [b["attempt"] for b in payloads(r.pub, "alarm") if b["event_id"] == a.event_id] == [1, 2, 3]
    assert len({b["event_id"] for b in payloads(r.pub, "alarm") if b["type"] == "alarm_unacknowledged"}) == 1
    # the platform finally acks: signal off, hook called, journal updated, no more re-sends
    r.pub.deliver(ACK, encode_ack(event_id=a.event_id, status="received", by="arc", at=r.clock.time()))
    assert r.signal.off == [a.event_id]
    assert r.acks[0][:2] == (a.event_id, AckStatus.RECEIVED) and r.acks[0][2] == a
    r.run()
    assert r.journal.ack_status(a.event_id) == "received"
    n = len(r.pub.published)
    r.clock.advance(100)
    r.fwd.poll()
    assert all(b["event_id"] != a.event_id for b in payloads(r.pub)[n:])


def test_acked_alarm_does_not_escalate_and_accepted_reaches_the_hook(tmp_path):
    r = rig(tmp_path)
    a = r.ev(1, EventCode.BUTTON_PRESS)
    r.submit(a)
    r.pump()
    r.pub.deliver(ACK, encode_ack(event_id=a.event_id, status="received", by="arc", at=0))
    r.pub.deliver(ACK, encode_ack(event_id=a.event_id, status="accepted", by="arc", at=0))
    r.clock.advance(60)
    r.fwd.poll()
    assert len(payloads(r.pub, "alarm")) == 1 and r.signal.on == []
    assert [(i, s) for i, s, _ in r.acks] == [(a.event_id, AckStatus.RECEIVED), (a.event_id, AckStatus.ACCEPTED)]
    assert r.acks[1][2] == a                      # the event is still known for FEEDBACK
    assert r.fwd.status().alarms_unacknowledged == 0


def test_duplicate_alarm_from_device_is_not_republished(tmp_path):
    r = rig(tmp_path)
    a = r.ev(3, EventCode.BUTTON_PRESS)
    r.submit(a)
    r.submit(a)                                   # the device retransmitted (its ACK was lost)
    r.run()
    assert len(r.pub.published) == 1
    assert r.stored == [(a.event_id, True), (a.event_id, False)]


def test_pending_alarms_restored_after_restart(tmp_path):
    r = rig(tmp_path)
    delivered, lost = r.ev(1, EventCode.BUTTON_PRESS), r.ev(2, EventCode.FALL_DETECTED)
    r.journal.apply([delivered, lost, r.ev(3)])
    r.journal.mark_delivered([delivered.event_id])
    r.journal.close()
    r2 = rig(tmp_path)                            # the gateway restarted
    bodies = payloads(r2.pub)
    assert [(b["event_id"], b["attempt"]) for b in bodies if b["schema"] == "wt.alarm/1"] == [(lost.event_id, 2)]
    assert [b["event_id"] for b in bodies if b["schema"] == "wt.event/1"] == [r.ev(3).event_id]
    r2.pump()
    r2.clock.advance(10.5)                        # the delivered one never got a platform ack
    r2.fwd.poll()
    assert delivered.event_id in [b["event_id"] for b in payloads(r2.pub, "alarm")]


def test_journal_write_failure_alarm_still_forwarded_and_reported(tmp_path):
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    r = rig(tmp_path, before_commit=full)
    a = r.ev(1, EventCode.FALL_DETECTED)
    r.submit(a)
    r.run()
    assert r.stored == []                         # not durable anywhere yet
    r.pub.puback()
    assert r.stored == [(a.event_id, True)]       # durable at the broker: the device may be ACKed
    r.run()
    tech = [b for b in payloads(r.pub, "alarm") if b["type"] == "journal_fault"]
    assert len(tech) == 1 and tech[0]["data"]["reason"] == "write_failed"
    t = r.ev(2)
    r.submit(t)
    r.run()
    assert t.event_id not in dict(r.stored)      # shed on a full disk: counted, not ACKed (F11: the device keeps it)
    assert r.journal.depth().shed == 1


def test_journal_recovery_raises_a_technical_alarm(tmp_path):
    rec = Recovery(quarantined_to=tmp_path / "j.db.corrupt-x", reason="file is not a database", at=0.0)
    r = rig(tmp_path, journal_recovery=rec)
    (b,) = payloads(r.pub, "alarm")
    assert b["type"] == "journal_recovered" and b["data"]["reason"] == "corrupt_journal_quarantined"


def test_refused_and_timed_out_telemetry_is_sent_again(tmp_path):
    r = rig(tmp_path, puback_timeout_s=5)
    r.submit(r.ev(1))
    r.run()
    r.pub.puback(ok=False)                       # broker refused it
    r.run()
    assert [b["event_id"] for b in payloads(r.pub, "event")] == [r.ev(1).event_id] * 2
    r.clock.advance(6)                           # no PUBACK at all
    r.fwd.poll()
    r.run()
    assert len(payloads(r.pub, "event")) == 3
    r.pump()
    assert r.journal.depth().undelivered == 0


def test_status_snapshot(tmp_path):
    r = rig(tmp_path)
    a = r.ev(1, EventCode.BUTTON_PRESS)
    r.submit(a)
    r.pub.set_connected(False)
    r.submit(r.ev(2))
    r.run()
    r.clock.advance(0.004)
    r.pub.puback()
    r.run()
    s = r.fwd.status()
    assert (s.connected, s.route, s.backlog, s.alarms_unacknowledged) == (False, None, 1, 1)
    assert s.last_alarms[0].latency_ms == pytest.approx(4.0, abs=0.01)
    d = s.to_dict()
    assert d["last_alarms"][0]["event_id"] == a.event_id and json.dumps(d)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_on_the_ack_topic_never_raises(tmp_path_factory, data):
    r = _shared_rig(tmp_path_factory)
    r.fwd.on_ack_message(ACK, data)


_RIG: dict = {}


def _shared_rig(factory) -> Rig:
    if "r" not in _RIG:
        _RIG["r"] = rig(factory.mktemp("fuzz"))
    return _RIG["r"]


def test_alarm_lane_carries_alarms_and_falls_back_to_primary(tmp_path):
    clock = FakeClock()
    j = SqliteJournal(tmp_path / "j.db", clock=clock)
    w = JournalWriter(j)
    pub, lane = FakePublisher("primary", clock=clock), FakePublisher("primary", clock=clock)
    f = Forwarder(gateway_id=GW, journal=w, primary=pub, alarm_lane=lane, clock=clock, ack_timeout_s=10)
    f.start()
    w.run_pending()
    t = clock.time()
    f.submit(Event("d-00000001", "d", EventCode.BUTTON_PRESS, t, t))
    f.submit(Event("d-00000002", "d", EventCode.MOTION, t, t))
    w.run_pending()
    assert [p.topic.rsplit("/", 1)[1] for p in lane.published] == ["alarm"]      # alarms only
    assert [p.topic.rsplit("/", 1)[1] for p in pub.published] == ["event"]
    assert ACK in pub.handlers and ACK not in lane.handlers                     # one ack, once
    lane.set_connected(False)
    f.submit(Event("d-00000003", "d", EventCode.FALL_DETECTED, t, t))
    assert pub.published[-1].topic.endswith("/alarm")
    clock.advance(10.5)
    lane.set_connected(True)
    f.poll()                                     # escalation: one re-send per route label
    resent = [json.loads(p.payload) for p in lane.published + pub.published if json.loads(p.payload)["attempt"] == 2]
    assert sorted(b["event_id"] for b in resent) == ["d-00000001", "d-00000003"]


def test_replay_window_respects_the_brokers_receive_maximum(tmp_path):
    r = rig(tmp_path, replay_window=64)
    r.pub.receive_maximum = 10
    r.pub.set_connected(False)
    for i in range(1, 41):
        r.submit(r.ev(i))
    r.run()
    r.pub.set_connected(True)
    r.run()
    assert len(r.pub.unacked()) == 6          # 10 - 4 kept free for alarms


def test_alarms_stranded_on_a_dead_lane_are_resent_before_held_ones_in_order(tmp_path):
    """The lane dies with alarm 1 un-PUBACKed in its session, alarm 2 is held while no
    route is up; when the primary returns first, the platform must get 1 then 2 (not 2
    now and 1 whenever the lane's session comes back). A PUBACKed alarm is not re-sent."""
    clock = FakeClock()
    j = SqliteJournal(tmp_path / "j.db", clock=clock)
    w = JournalWriter(j)
    pub, lane = FakePublisher("primary", clock=clock), FakePublisher("primary", clock=clock)
    f = Forwarder(gateway_id=GW, journal=w, primary=pub, alarm_lane=lane, clock=clock, ack_timeout_s=60)
    f.start()
    w.run_pending()
    t = clock.time()
    f.submit(Event("d-00000001", "d", EventCode.BUTTON_PRESS, t, t))
    f.submit(Event("d-00000002", "d", EventCode.BUTTON_PRESS, t + 1, t + 1))
    assert lane.puback(1) == 1                       # alarm 1 reached the broker, 2 did not
    lane.set_connected(False)
    pub.set_connected(False)
    f.submit(Event("d-00000003", "d", EventCode.BUTTON_PRESS, t + 2, t + 2))   # held: no route
    w.run_pending()
    assert [b.event_id for b in pub.decoded()] == []
    pub.set_connected(True)                          # primary back first, lane still down
    alarms = [json.loads(p.payload)["event_id"] for p in pub.published if p.topic.endswith("/alarm")]
    assert alarms == ["d-00000002", "d-00000003"]
