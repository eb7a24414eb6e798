"""The SCAIP reply state machine (table) and the heartbeat schedule, driven with plain
numbers for time (the tracker is pure)."""
from __future__ import annotations

import random

import pytest

from gateway.domain.model import Event, EventCode, Role
from gateway.domain.scaip import (
    TRANSITIONS,
    Do,
    HeartbeatOutcome,
    HeartbeatSchedule,
    Input,
    ReportKind,
    ReportState,
    ReportTracker,
    RetryPolicy,
    ScaipReply,
    Snu,
    input_for,
)

T = 1000.0


def _event(i: int = 1, code: EventCode = EventCode.BUTTON_PRESS) -> Event:
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", code, 1.79e9, 1.79e9, Role.BUTTON, i)


def _tracker(**kw) -> ReportTracker:
    kw.setdefault("rng", random.Random(7))
    kw.setdefault("retry", RetryPolicy(initial_s=1.0, factor=2.0, cap_s=8.0))
    return ReportTracker(**kw)


def _dos(actions) -> list[Do]:
    return [a.do for a in actions]


def _reply(ref: str, snu: Snu, **kw) -> ScaipReply:
    return ScaipReply(ref=ref, snu=snu, **kw)


# ---- the table ----------------------------------------------------------------------------

def test_terminal_states_have_no_exits():
    assert not [k for k in TRANSITIONS if k[0].terminal]


def test_every_open_state_handles_every_snu_or_ignores_it_deliberately():
    for state in (ReportState.SENDING, ReportState.AWAITING_REPLY):
        for inp in (Input.SNU_OK, Input.SNU_RETRY, Input.SNU_NOT_TREATED, Input.SNU_WRONG, Input.ESCALATION_DUE):
            assert (state, inp) in TRANSITIONS
    # while backing off, only a late snu 0 or an our-message-wrong changes anything
    assert (ReportState.BACKING_OFF, Input.SNU_RETRY) not in TRANSITIONS
    assert TRANSITIONS[(ReportState.BACKING_OFF, Input.SNU_OK)][0] is ReportState.DONE


@pytest.mark.parametrize("snu, inp", [(Snu.OK, Input.SNU_OK), (Snu.HOLD, Input.SNU_RETRY), (Snu.BUSY, Input.SNU_RETRY),
                                      (Snu.NOT_TREATED, Input.SNU_NOT_TREATED), (Snu.TOO_LONG, Input.SNU_WRONG),
                                      (Snu.INVALID_FORMAT, Input.SNU_WRONG), (Snu.WRONG_CONTENT, Input.SNU_WRONG),
                                      (Snu.TAG_MISSING, Input.SNU_WRONG)])
def test_snu_inputs(snu, inp):
    assert input_for(snu) is inp


# ---- scenarios ----------------------------------------------------------------------------

def test_alarm_is_sent_at_once_and_done_on_snu_0():
    tr = _tracker()
    acts = tr.submit(_event(), b"<mrq/>", ref="r1", kind=ReportKind.ALARM, now=T)
    assert _dos(acts) == [Do.SEND] and acts[0].attempt == 1 and acts[0].body == b"<mrq/>"
    acts = tr.on_reply(_reply("r1", Snu.OK), T + 0.1)
    assert _dos(acts) == [Do.DELIVERED] and acts[0].escalated is False
    assert tr.open_count == 0 and tr.counters["delivered"] == 1
    assert tr.views(T + 1)[0].state == "done"


def test_reply_by_separate_message_after_2xx():
    tr = _tracker(reply_timeout_s=5)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    assert tr.on_sip_result("r1", 1, accepted=True, now=T + 0.05) == []
    assert tr.get("r1").state is ReportState.AWAITING_REPLY
    assert tr.next_deadline() == pytest.approx(T + 5 - 0 + 0.05)
    assert _dos(tr.on_reply(_reply("r1", Snu.OK), T + 1)) == [Do.DELIVERED]


def test_no_reply_after_2xx_resends_with_the_same_ref():
    tr = _tracker(reply_timeout_s=5, escalate_after_s=100)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    tr.on_sip_result("r1", 1, accepted=True, now=T)
    assert tr.poll(T + 4.9) == []
    acts = tr.poll(T + 5)
    assert _dos(acts) == [Do.SEND] and acts[0].ref == "r1" and acts[0].attempt == 2
    assert tr.counters["reply_timeout"] == 1


def test_hold_then_ok_backs_off_and_resends():
    tr = _tracker(escalate_after_s=100)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    assert tr.on_reply(_reply("r1", Snu.HOLD), T + 0.1) == []
    rep = tr.get("r1")
    assert rep.state is ReportState.BACKING_OFF and T + 0.1 + 0.5 <= rep.retry_at <= T + 0.1 + 1.0
    due = rep.retry_at
    assert tr.poll(due - 0.01) == []
    acts = tr.poll(due)
    assert _dos(acts) == [Do.SEND] and acts[0].attempt == 2 and rep.retry_at is None
    assert _dos(tr.on_reply(_reply("r1", Snu.OK), due + 0.1)) == [Do.DELIVERED]


def test_busy_back_off_grows_and_is_capped():
    tr = _tracker(escalate_after_s=10_000)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    now, delays = T, []
    for _ in range(8):
        tr.on_reply(_reply("r1", Snu.BUSY), now)
        rep = tr.get("r1")
        delays.append(rep.retry_at - now)
        now = rep.retry_at
        assert _dos(tr.poll(now)) == [Do.SEND]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert max(delays[:2]) <= 2.0 and max(delays[4:]) > 2.0      # grows, then capped at 8 s
    assert tr.get("r1").attempt == 9


def test_snu_wrong_refuses_raises_technical_alarm_and_escalates():
    tr = _tracker()
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    acts = tr.on_reply(_reply("r1", Snu.TAG_MISSING, ste="cid saknas"), T + 0.2)
    assert _dos(acts) == [Do.REFUSED, Do.ESCALATE]
    assert acts[0].reply.ste == "cid saknas" and acts[0].reason == "snu 7"
    assert tr.open_count == 0 and tr.counters["refused"] == 1
    assert tr.on_reply(_reply("r1", Snu.OK), T + 1) == [] and tr.counters["late_reply"] == 1


def test_refused_info_report_reaches_the_listener_but_does_not_escalate():
    tr = _tracker()
    tr.submit(_event(code=EventCode.BED_IN), b"x", ref="r1", kind=ReportKind.INFO, now=T)
    assert _dos(tr.on_reply(_reply("r1", Snu.INVALID_FORMAT), T)) == [Do.REFUSED]


def test_not_treated_escalates_at_once_and_keeps_resending():
    tr = _tracker()
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    acts = tr.on_reply(_reply("r1", Snu.NOT_TREATED), T + 0.1)
    assert _dos(acts) == [Do.ESCALATE] and acts[0].reason == "snu 5"
    assert tr.get("r1").state is ReportState.BACKING_OFF


def test_no_answer_in_time_escalates_once_then_delivered_reports_it():
    tr = _tracker(escalate_after_s=30)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    assert tr.next_deadline() == T + 30
    acts = tr.poll(T + 30)
    assert _dos(acts) == [Do.ESCALATE] and "30 s" in acts[0].reason
    assert tr.poll(T + 60) == []                     # once
    assert tr.counters["escalated"] == 1
    acts = tr.on_reply(_reply("r1", Snu.OK), T + 61)
    assert _dos(acts) == [Do.DELIVERED] and acts[0].escalated is True


def test_sip_failure_backs_off_and_late_results_of_old_attempts_are_ignored():
    tr = _tracker(escalate_after_s=100)
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    assert tr.on_sip_result("r1", 1, accepted=False, now=T + 32, detail="timer F") == []
    rep = tr.get("r1")
    assert rep.state is ReportState.BACKING_OFF and rep.last_error == "timer F"
    due = rep.retry_at
    tr.poll(due)
    assert rep.attempt == 2 and rep.state is ReportState.SENDING
    assert tr.on_sip_result("r1", 1, accepted=True, now=due + 1) == []
    assert tr.counters["stale_sip_result"] == 1 and rep.state is ReportState.SENDING


def test_late_snu_0_while_backing_off_finishes_the_report():
    tr = _tracker()
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    tr.on_sip_result("r1", 1, accepted=False, now=T + 1, detail="503")
    assert _dos(tr.on_reply(_reply("r1", Snu.OK), T + 1.1)) == [Do.DELIVERED]


def test_duplicate_replies_and_unknown_refs_are_counted():
    tr = _tracker()
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    tr.on_reply(_reply("r1", Snu.OK), T)
    assert tr.on_reply(_reply("r1", Snu.OK), T) == []
    assert tr.on_reply(_reply("zz", Snu.OK), T) == []
    assert (tr.counters["late_reply"], tr.counters["unknown_ref"], tr.counters["snu_0"]) == (1, 1, 3)


def test_submit_is_idempotent_while_open():
    tr = _tracker()
    assert len(tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)) == 1
    assert tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T) == []


def test_non_alarms_use_a_window_in_submission_order_and_never_delay_an_alarm():
    tr = _tracker(window=2)
    sent = []
    for i in range(5):
        sent += tr.submit(_event(i, EventCode.BED_IN), b"x", ref=f"i{i}", kind=ReportKind.INFO, now=T)
    assert [a.ref for a in sent] == ["i0", "i1"]
    assert tr.get("i4").state is ReportState.QUEUED
    alarm = tr.submit(_event(99), b"x", ref="a1", kind=ReportKind.ALARM, now=T)
    assert [a.ref for a in alarm] == ["a1"]
    acts = tr.on_reply(_reply("i0", Snu.OK), T + 1)
    assert [(a.do, a.ref) for a in acts] == [(Do.DELIVERED, "i0"), (Do.SEND, "i2")]
    # a report that backs off keeps its slot (a dead centre must not release the backlog)
    tr.on_sip_result("i1", 1, accepted=False, now=T + 1)
    assert tr.get("i3").state is ReportState.QUEUED


def test_views_for_status():
    tr = _tracker()
    tr.submit(_event(), b"x", ref="r1", kind=ReportKind.ALARM, now=T)
    tr.on_reply(_reply("r1", Snu.HOLD), T + 1)
    (v,) = tr.views(T + 2)
    assert (v.ref, v.type, v.kind, v.state, v.attempts, v.last_snu, v.age_s) == (
        "r1", "button_press", "alarm", "backing_off", 1, 4, 2.0)


# ---- heartbeat ----------------------------------------------------------------------------

def test_heartbeat_schedule_and_health():
    hb = HeartbeatSchedule(interval_s=60, adjustable=False)
    assert not hb.due(T)
    hb.start(T)
    assert hb.due(T)
    ref = hb.next_ref(1.79e9)
    assert ref.startswith("hb") and len(ref) == 16 and hb.next_ref(1.79e9) > ref
    hb.sent(ref, T)
    assert not hb.due(T + 59) and hb.due(T + 60)
    assert hb.on_reply(_reply(ref, Snu.OK), T + 0.2) is HeartbeatOutcome.ANSWERED
    assert hb.alive(T + 100) and not hb.alive(T + 200)
    hb.sent("hb2", T + 60)
    hb.sent("hb3", T + 120)                          # hb2 never answered
    assert hb.missed == 1 and hb.counters["missed"] == 1
    hb.failed("hb3", T + 150)
    assert hb.missed == 2
    assert hb.on_reply(_reply("unknown", Snu.OK), T) is HeartbeatOutcome.NOT_OURS


def test_heartbeat_follows_hbi_only_when_adjustable():
    fixed = HeartbeatSchedule(interval_s=120, adjustable=False)
    fixed.start(T)
    fixed.sent("hb1", T)
    assert fixed.on_reply(_reply("hb1", Snu.OK, hbi=1), T) is HeartbeatOutcome.ANSWERED
    assert fixed.interval_s == 120 and fixed.hbi == 1 and fixed.counters["hbi_ignored_fixed"] == 1

    adj = HeartbeatSchedule(interval_s=120, adjustable=True, hbi_intervals_s={1: 60.0, 2: 5.0})
    adj.start(T)
    adj.sent("hb1", T)
    assert adj.on_reply(_reply("hb1", Snu.OK, hbi=1), T + 1) is HeartbeatOutcome.INTERVAL_CHANGED
    assert adj.interval_s == 60 and adj.next_due == T + 60
    adj.sent("hb2", T + 60)
    assert adj.on_reply(_reply("hb2", Snu.OK, hbi=2), T + 61) is HeartbeatOutcome.INTERVAL_CHANGED
    assert adj.interval_s == 10.0                    # clamped to min_interval_s
    adj.sent("hb3", T + 70)
    assert adj.on_reply(_reply("hb3", Snu.OK, hbi=0), T + 71) is HeartbeatOutcome.ANSWERED
    assert adj.interval_s == 10.0 and adj.counters["hbi_unmapped"] == 1


def test_heartbeat_refused_is_not_an_answer():
    hb = HeartbeatSchedule(interval_s=60)
    hb.start(T)
    hb.sent("hb1", T)
    assert hb.on_reply(_reply("hb1", Snu.TAG_MISSING), T) is HeartbeatOutcome.REFUSED
    assert hb.last_answered_at is None and hb.counters["refused"] == 1


def test_heartbeat_interval_bounds_are_checked():
    with pytest.raises(ValueError):
        HeartbeatSchedule(interval_s=1)
    st = HeartbeatSchedule(interval_s=60).status(T)
    assert st["interval_s"] == 60 and st["alive"] is False and st["next_in_s"] is None


def test_an_outage_parks_every_failed_report_behind_one_probe_and_the_return_keeps_submission_order():
    tr = _tracker(escalate_after_s=1000)
    kinds = [("A", ReportKind.ALARM), ("B", ReportKind.FOLLOW_UP), ("C", ReportKind.ALARM),
             ("D", ReportKind.FOLLOW_UP)]
    for i, (ref, kind) in enumerate(kinds):
        assert _dos(tr.submit(_event(i), b"x", ref=ref, kind=kind, now=T)) == [Do.SEND]
    for ref, _ in kinds:                                   # the path is down: every attempt fails
        tr.on_sip_result(ref, 1, accepted=False, now=T + 6, detail="timer F")
    assert not tr.centre_up and tr.counters["centre_unreachable"] == 1
    assert tr.get("A").retry_at is not None                # the probe: the oldest failed report
    assert all(tr.get(r).retry_at is None for r in "BCD")  # parked: no timers, no attempts
    # during the outage: a follow-up waits, an alarm still goes at once
    assert tr.submit(_event(10), b"x", ref="E", kind=ReportKind.FOLLOW_UP, now=T + 7) == []
    assert tr.get("E").state is ReportState.QUEUED
    assert _dos(tr.submit(_event(11), b"x", ref="F", kind=ReportKind.ALARM, now=T + 7)) == [Do.SEND]
    tr.on_sip_result("F", 1, accepted=False, now=T + 13)
    assert tr.get("F").retry_at is None                    # parked too
    probe_due = tr.get("A").retry_at
    acts = tr.poll(probe_due)
    assert [(a.do, a.ref) for a in acts] == [(Do.SEND, "A")]   # only the probe tries
    # the centre is back: the probe's answer releases everything in submission order
    acts = tr.on_reply(_reply("A", Snu.OK), probe_due + 0.01)
    assert [(a.do, a.ref) for a in acts] == [(Do.DELIVERED, "A"), (Do.SEND, "B"), (Do.SEND, "C"),
                                             (Do.SEND, "D"), (Do.SEND, "E"), (Do.SEND, "F")]
    assert tr.centre_up and tr.counters["centre_back"] == 1


def test_a_heartbeat_answer_also_ends_the_outage_and_holds_asked_for_are_not_parked():
    tr = _tracker(escalate_after_s=1000)
    tr.submit(_event(1), b"x", ref="A", kind=ReportKind.ALARM, now=T)
    tr.submit(_event(2), b"x", ref="H", kind=ReportKind.ALARM, now=T)
    tr.on_reply(_reply("H", Snu.HOLD), T + 0.1)            # the centre asked H to wait: its own pace
    tr.on_sip_result("A", 1, accepted=False, now=T + 6)
    hold_due = tr.get("H").retry_at
    assert hold_due is not None and not tr.centre_up
    acts = tr.centre_answered(T + 7)
    assert [(a.do, a.ref) for a in acts] == [(Do.SEND, "A")] and tr.get("H").retry_at == hold_due
