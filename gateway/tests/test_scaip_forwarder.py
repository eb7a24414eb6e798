"""The forwarder with a SCAIP centre as a route (docs/scaip.md "In the gateway"): the real
forwarder, journal and writer, an in-memory centre (gateway/testing/sip_centre.py
FakeCentre) and fake MQTT routes; the test decides every answer.

What each test proves is in its name; the SIPp end-to-end tests are test_scaip_daemon.py.
"""
from __future__ import annotations

import pytest

from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.domain.alarms import AlarmState, CentreState
from gateway.domain.forwarder import Forwarder
from gateway.domain.model import EventCode, Role
from gateway.domain.payload import encode_ack
from gateway.domain.scaip import CURSOR_KEY
from gateway.domain.signal import LoggingLocalSignal
from gateway.testing.clock import DEFAULT_EPOCH, FakeClock
from gateway.testing.platform import FakePublisher
from gateway.testing.sip_centre import FakeCentre
from gateway.testing.stimuli import device_event

GW = "gw-0001"


class Rig:
    """Forwarder + real SQLite journal (writer driven by the test) + FakeCentre + fake MQTT."""

    def __init__(self, tmp_path, *, mqtt: bool = True, centre_first: bool = True, send_info: bool = False,
                 name: str = "j") -> None:
        self.clock = FakeClock()
        self.journal = SqliteJournal(tmp_path / f"{name}.sqlite", clock=self.clock)
        self.writer = JournalWriter(self.journal)
        self.pub = FakePublisher("primary", clock=self.clock) if mqtt else None
        self.signal = LoggingLocalSignal()
        self.acks: list[tuple[str, str]] = []
        self.escalated: list[tuple[str, int]] = []
        self.fwd = Forwarder(gateway_id=GW, journal=self.writer, primary=self.pub, clock=self.clock,
                             local_signal=self.signal, ack_timeout_s=10,
                             centre=lambda listener: FakeCentre(listener, send_info=send_info),
                             centre_first=centre_first,
                             on_platform_ack=lambda i, s, e: self.acks.append((i, s.value)),
                             on_alarm_escalated=lambda e, step: self.escalated.append((e.event_id, step)))
        self.centre: FakeCentre = self.fwd.centre  # type: ignore[assignment]
        self.fwd.start()
        self.settle()

    def settle(self) -> None:
        for _ in range(4):
            self.writer.run_pending()

    def poll(self, advance_s: float = 0.0) -> None:
        self.clock.advance(advance_s)
        self.fwd.poll()
        self.settle()

    def alarm_copies(self) -> list:
        return [d for d in self.pub.decoded() if d.alarm] if self.pub else []

    def technical(self) -> list:
        """The ``data`` of every alarm_unacknowledged copy on MQTT."""
        return [d.body["data"] for d in self.alarm_copies() if d.body["type"] == "alarm_unacknowledged"]

    def close(self) -> None:
        self.journal.close()


@pytest.fixture
def rig(tmp_path):
    made: list[Rig] = []

    def make(**kw) -> Rig:
        r = Rig(tmp_path, name=f"j{len(made)}", **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def press(seq: int = 1, code: EventCode = EventCode.BUTTON_PRESS, role: Role = Role.BUTTON, t: float = DEFAULT_EPOCH):
    return device_event(seq, code, t, role=role)


def test_primary_centre_gets_the_alarm_alone_and_snu0_acknowledges_it_like_a_platform_ack(rig):
    r = rig()
    answered: list = []
    ev = press(1)
    r.fwd.submit(ev, lambda e, new: answered.append(new))
    assert [e.event_id for e in r.centre.submitted] == [ev.event_id]
    assert r.pub.published == []                              # MQTT is not the primary alarm route
    r.settle()
    assert answered == [True]                                 # the device is ACKed after the journal, as always
    r.clock.advance(0.040)
    r.centre.answer(ev.event_id, 0)
    r.settle()
    st = r.fwd.status()
    assert st.alarms_unacknowledged == 0
    rec = st.last_alarms[-1]
    assert (rec.ack, rec.snu, rec.route, rec.centre_latency_ms) == ("received", 0, "scaip", 40.0)
    assert r.acks == [(ev.event_id, "received")]              # FEEDBACK 1 to the device
    r.poll()                                                  # (delivered marks are coalesced per poll)
    assert r.journal.ack_status(ev.event_id) == "received" and r.journal.is_delivered(ev.event_id)
    r.poll(60)                                                # no escalation later
    assert r.pub.published == [] and not r.signal.active


def test_centre_silent_escalates_to_mqtt_with_a_local_signal_and_snu0_later_ends_it(rig):
    r = rig()
    ev = press(2)
    r.fwd.submit(ev)
    r.settle()
    r.centre.escalate(ev.event_id, "no snu 0 within 30 s")
    r.settle()
    copies = r.alarm_copies()
    assert [c.event_id for c in copies if c.body["type"] == "button_press"] == [ev.event_id]
    assert ev.event_id in r.signal.active and r.escalated == [(ev.event_id, 1)]
    tech = r.technical()
    assert len(tech) == 1 and tech[0]["event_id"] == ev.event_id
    assert tech[0]["reason"] == "scaip_no_answer" and tech[0]["route"] == "scaip"
    # the technical alarm is about the centre: only MQTT carries it
    assert [e.event_id for e in r.centre.submitted] == [ev.event_id]
    r.centre.escalate(ev.event_id)                            # a second escalation from the route: ignored
    assert len(r.technical()) == 1
    r.centre.answer(ev.event_id, 0)
    r.settle()
    assert ev.event_id not in r.signal.active                 # signal off once the centre has it
    assert r.fwd.status().alarms_unacknowledged == 1          # (the technical alarm waits for the platform)


@pytest.mark.parametrize("snu", [1, 2, 3, 7])
def test_snu_wrong_raises_a_technical_alarm_on_mqtt_and_the_alarm_goes_there_never_back_to_the_centre(rig, snu):
    r = rig()
    ev = press(3)
    r.fwd.submit(ev)
    r.settle()
    r.centre.answer(ev.event_id, snu, ste="tag missing")
    r.settle()
    tech = r.technical()
    assert len(tech) == 1
    assert (tech[0]["reason"], tech[0]["snu"]) == ("scaip_refused", snu)
    assert "tag missing" in tech[0]["detail"]
    assert ev.event_id in [c.event_id for c in r.alarm_copies()]
    a = r.fwd._alarms[ev.event_id]
    assert a.centre is CentreState.REFUSED and a.record.snu == snu
    for _ in range(3):                                         # re-sends go to MQTT only
        r.poll(11)
    assert [e.event_id for e in r.centre.submitted] == [ev.event_id]
    r.pub.deliver(f"wt/v1/gw/{GW}/ack", encode_ack(event_id=ev.event_id, status="received", by="arc", at=0))
    assert ev.event_id not in r.fwd._alarms


def test_a_refused_technical_alarm_never_raises_another(rig):
    r = rig(mqtt=False)
    ev = press(4)
    r.fwd.submit(ev)
    r.settle()
    r.centre.answer(ev.event_id, 7)
    r.settle()
    tech = [e for e in r.centre.submitted if e.code is EventCode.ALARM_UNACKNOWLEDGED]
    assert len(tech) == 1                                       # SCAIP only: the technical alarm goes to the centre
    r.centre.answer(tech[0].event_id, 7)
    r.settle()
    assert [e.code for e in r.centre.submitted].count(EventCode.ALARM_UNACKNOWLEDGED) == 1
    assert r.fwd.stats["centre_refused"] == 2


def test_fallback_role_mqtt_first_centre_when_no_broker_and_on_escalation(rig):
    r = rig(centre_first=False)
    a1 = press(5)
    r.fwd.submit(a1)
    assert r.centre.submitted == [] and [c.event_id for c in r.alarm_copies()] == [a1.event_id]
    r.poll(11)                                                 # no platform ack: escalation reaches the centre
    assert [e.event_id for e in r.centre.submitted] == [a1.event_id]
    assert r.technical() and "reason" not in r.technical()[0]   # the platform's silence, not the centre's
    r.pub.set_connected(False)
    a2 = press(6)
    r.fwd.submit(a2)                                           # no broker: the centre takes it at once
    assert r.centre.submitted[-1].event_id == a2.event_id
    assert r.fwd._alarms[a2.event_id].state is AlarmState.SENT


def test_platform_ack_first_then_the_centre_snu0_changes_nothing(rig):
    r = rig(centre_first=False)
    ev = press(7)
    r.fwd.submit(ev)
    r.poll(11)                                                 # escalated: MQTT + centre
    r.pub.deliver(f"wt/v1/gw/{GW}/ack", encode_ack(event_id=ev.event_id, status="accepted", by="p", at=0))
    r.settle()
    r.centre.answer(ev.event_id, 0)
    r.settle()
    assert r.journal.ack_status(ev.event_id) == "accepted"     # not overwritten by the centre's received
    assert r.acks == [(ev.event_id, "accepted")]


def test_scaip_only_alarm_waits_for_the_centre_signals_locally_and_the_feed_owns_delivery(rig):
    r = rig(mqtt=False)
    ev = press(8)
    r.fwd.submit(ev)
    r.settle()
    r.centre.escalate(ev.event_id)
    r.settle()
    assert ev.event_id in r.signal.active
    assert r.fwd._alarms[ev.event_id].state is AlarmState.HELD        # no other route: held, in the journal
    st = r.fwd.status()
    assert st.routes == {"scaip": True} and st.connected
    r.centre.answer(ev.event_id, 0)
    r.settle()
    r.poll()
    assert r.journal.is_delivered(ev.event_id) and r.journal.ack_status(ev.event_id) == "received"
    assert not r.signal.active


def test_follow_ups_reach_the_centre_in_journal_order_and_the_cursor_survives_a_restart(rig, tmp_path):
    r = rig()
    alarm = press(10)
    r.fwd.submit(alarm)
    later = [press(11, EventCode.BUTTON_CANCEL), press(12, EventCode.DOOR_OPEN, Role.DOOR),
             press(13, EventCode.MAINS_RESTORED), press(14, EventCode.DEVICE_RECOVERED)]
    for e in later:
        r.fwd.submit(e)
    r.settle()
    r.poll()
    sent = [e.event_id for e in r.centre.submitted]
    # the alarm first; then the follow-ups in journal order; door_open is information (send_info off)
    assert sent == [alarm.event_id, later[0].event_id, later[2].event_id, later[3].event_id]
    r.centre.answer(later[0].event_id, 0)
    r.poll(6)                                                   # cursor saved (every 5 s while it moves)
    saved = int(r.journal.get_state(CURSOR_KEY))
    assert saved >= 3                                           # rows 1 (alarm) .. 3 (door) are finished
    # a restart: a fresh forwarder on the same journal reads the rows after the cursor again
    fwd2 = Forwarder(gateway_id=GW, journal=r.writer, primary=r.pub, clock=r.clock, ack_timeout_s=10,
                     centre=lambda listener: FakeCentre(listener))
    fwd2.start()
    r.settle()
    again = [e.event_id for e in fwd2.centre.submitted]           # type: ignore[union-attr]
    assert again[0] == alarm.event_id                            # the unacknowledged alarm, restored
    assert again[1:] == [later[2].event_id, later[3].event_id]    # the follow-ups not yet answered, in order


def test_a_newly_configured_centre_does_not_get_the_history(tmp_path):
    clock = FakeClock()
    journal = SqliteJournal(tmp_path / "old.sqlite", clock=clock)
    try:
        journal.apply([press(30 + i, EventCode.BUTTON_CANCEL) for i in range(3)])   # before SCAIP was configured
        writer = JournalWriter(journal)
        fwd = Forwarder(gateway_id=GW, journal=writer, primary=FakePublisher(clock=clock), clock=clock,
                        centre=lambda listener: FakeCentre(listener))
        fwd.start()
        writer.run_pending()
        assert fwd.centre.submitted == []                                          # type: ignore[union-attr]
        fwd.submit(press(40, EventCode.MAINS_RESTORED))
        for _ in range(3):
            writer.run_pending()
        assert [e.event_id for e in fwd.centre.submitted] == [press(40).event_id]  # type: ignore[union-attr]
        clock.advance(6)
        fwd.poll()
        writer.run_pending()
        assert int(journal.get_state(CURSOR_KEY)) == 3            # rows 1-3 finished (never the centre's)
    finally:
        journal.close()
