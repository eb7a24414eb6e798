"""The SCAIP route (adapter) against a scripted centre on loopback: bad input from the
centre, a dead centre, heartbeats, and what the listener hears. (Real centres:
test_sip_sipp.py / test_sip_kamailio.py.)"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import pytest

from gateway.adapters.sip import (
    Headers,
    ScaipRoute,
    ScaipSettings,
    SipRequest,
    SipUserAgent,
    Timers,
    UaConfig,
    top_via,
)
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import SystemClock
from gateway.domain.scaip import RetryPolicy, ScaipReply, Snu, decode_request, encode_reply
from gateway.tests.sipp.scripted import UdpPeer, answer

pytestmark = pytest.mark.timeout(60)

CID = "4700112233"


def _event(i: int = 1, code: EventCode = EventCode.BUTTON_PRESS) -> Event:
    now = time.time()
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", code, now, now, Role.BUTTON, i)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple] = []
        self.fail = fail

    def _add(self, item: tuple) -> None:
        self.seen.append(item)
        if self.fail:
            raise RuntimeError("listener bug")

    def scaip_delivered(self, event, reply, *, escalated, at=None):
        self._add(("delivered", event.event_id, escalated))

    def scaip_escalate(self, event, reason):
        self._add(("escalate", event.event_id, reason))

    def scaip_refused(self, event, reply, reason):
        self._add(("refused", event.event_id, reason))


Policy = Callable[[SipRequest], "tuple[int, bytes] | None"]


class Centre:
    """Answers each MESSAGE by ``policy(request) -> (status, body) | None`` (None: silence)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.peer = UdpPeer()
        self.requests: list[SipRequest] = []
        self.responses: list[int] = []          # statuses of our answers to the centre's MESSAGEs
        self._task: asyncio.Task | None = None

    async def start(self) -> int:
        port = await self.peer.start()
        self._task = asyncio.create_task(self._serve())
        return port

    async def _serve(self) -> None:
        while True:
            msg, addr, _ = await self.peer.queue.get()
            if not isinstance(msg, SipRequest):
                if hasattr(msg, "status"):
                    self.responses.append(msg.status)
                continue
            self.requests.append(msg)
            out = self.policy(msg)
            if out is not None:
                self.peer.send(answer(msg, out[0], body=out[1]), addr)

    def message_to(self, addr: tuple, body: bytes, ctype: str = "application/scaip+xml", branch: str = "z9hG4bKc1"):
        port = self.peer.transport.get_extra_info("sockname")[1]
        pairs = [("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch={branch}"), ("From", "<sip:arc@c>;tag=x"),
                 ("To", f"<sip:{CID}@gw>"), ("Call-ID", f"in-{branch}"), ("CSeq", "1 MESSAGE"), ("Content-Type", ctype)]
        self.peer.send(SipRequest("MESSAGE", f"sip:{CID}@gw", Headers.of(pairs), body).to_bytes(), addr)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        self.peer.close()


def _ok(req: SipRequest, snu: Snu = Snu.OK, **kw) -> tuple[int, bytes]:
    ref = decode_request(req.body).ref
    return 200, encode_reply(ScaipReply(ref=ref, snu=snu, **kw))


async def _start(policy: Policy, rec: Recorder | None = None, prepare: Callable[[ScaipRoute], None] | None = None,
                 **settings) -> tuple[ScaipRoute, Centre, Recorder]:
    centre = Centre(policy)
    port = await centre.start()
    rec = rec or Recorder()
    settings.setdefault("heartbeats", False)
    settings.setdefault("retry", RetryPolicy(initial_s=0.05, cap_s=0.2))
    ua = SipUserAgent(UaConfig(target=f"sip:arc@127.0.0.1:{port}", local_user=CID, local_host="127.0.0.1",
                               timers=Timers(t1=0.02, t2=0.08, t4=0.1)))
    route = ScaipRoute(ua, ScaipSettings(cid=CID, **settings), listener=rec, clock=SystemClock())
    if prepare is not None:
        prepare(route)
    await route.async_start()
    return route, centre, rec


async def _until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_unknown_ref_malformed_reply_and_wrong_content_type_from_the_centre(caplog):
    async def go():
        route, centre, rec = await _start(lambda req: (200, b""), reply_timeout_s=5)
        addr = ("127.0.0.1", route.ua.local_address[1])
        route.submit(_event())
        await _until(lambda: bool(centre.requests))
        centre.message_to(addr, encode_reply(ScaipReply(ref="feedfeedfeedfeed", snu=Snu.OK)), branch="z9hG4bKa")
        centre.message_to(addr, b"<!DOCTYPE x><mrs/>", branch="z9hG4bKb")
        centre.message_to(addr, b"<mrs><ref>1</ref><snu>0</snu></mrs>", ctype="text/plain", branch="z9hG4bKc")
        await _until(lambda: len(centre.responses) == 3)
        answers = centre.responses
        status = route.status()
        await route.async_close()
        await centre.close()
        return answers, status, rec

    with caplog.at_level(logging.WARNING):
        answers, status, rec = asyncio.run(go())
    assert sorted(answers) == [200, 400, 415]
    c = status["counters"]
    assert c["unknown_ref"] == 1 and c["reply_rejected_forbidden_markup"] == 1 and c["message_bad_content_type"] == 1
    assert rec.seen == [] and status["open"] == 1            # the alarm is still waiting for its reply
    logs = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown ref feedfeedfeedfeed" in logs and "forbidden_markup" in logs


@pytest.mark.slow
def test_dead_centre_escalates_in_time_and_the_route_keeps_trying():
    async def go():
        route, centre, rec = await _start(lambda req: None, escalate_after_s=0.8)
        t0 = time.monotonic()
        route.submit(_event())
        await _until(lambda: bool(rec.seen))
        took = time.monotonic() - t0
        await asyncio.sleep(1.5)                               # a timer F (1.28 s) passes: back-off, re-send
        status = route.status()
        await route.async_close()
        await centre.close()
        return took, rec, status, centre

    took, rec, status, centre = asyncio.run(go())
    assert rec.seen == [("escalate", "a4c1380a1b2c-00000001", "no snu 0 within 0.8 s")]
    assert 0.75 <= took < 1.5
    (report,) = status["reports"]
    assert report["escalated"] and report["attempts"] >= 2 and "timer F" in report["last_error"]
    assert len({r.headers.get("Call-ID") for r in centre.requests}) == 1


def test_late_ok_after_escalation_tells_the_listener_it_was_escalated():
    calls = {"n": 0}

    def policy(req):
        calls["n"] += 1
        return _ok(req, Snu.BUSY) if calls["n"] < 4 else _ok(req)

    async def go():
        route, centre, rec = await _start(policy, escalate_after_s=0.1)
        route.submit(_event())
        await _until(lambda: any(s[0] == "delivered" for s in rec.seen))
        await route.async_close()
        await centre.close()
        return rec, route

    rec, route = asyncio.run(go())
    assert [s[0] for s in rec.seen] == ["escalate", "delivered"] and rec.seen[1][2] is True
    assert route.tracker.counters["snu_6"] == 3


def test_not_treated_escalates_and_info_events_are_optional():
    async def go():
        route, centre, rec = await _start(lambda req: _ok(req, Snu.NOT_TREATED) if b"<mty>ME" in req.body
                                          else _ok(req), send_info=False)
        assert route.submit(_event(2, EventCode.BED_IN)) is None
        route.submit(_event(1))
        await _until(lambda: bool(rec.seen))
        await route.async_close()
        await centre.close()
        route2, centre2, rec2 = await _start(lambda req: _ok(req), send_info=True)
        ref = route2.submit(_event(3, EventCode.BED_IN))
        await _until(lambda: bool(rec2.seen))
        await route2.async_close()
        await centre2.close()
        return route, rec, ref, rec2, centre2

    route, rec, ref, rec2, centre2 = asyncio.run(go())
    assert route.counters["info_skipped"] == 1 and rec.seen[0][0] == "escalate" and rec.seen[0][2] == "snu 5"
    assert ref is not None and rec2.seen == [("delivered", "a4c1380a1b2c-00000003", False)]
    assert decode_request(centre2.requests[0].body).mty == "IN"


def test_reply_for_another_report_in_a_200_is_routed_by_ref():
    refs: list[str] = []

    def policy(req):
        refs.append(decode_request(req.body).ref)
        if len(refs) == 2:                                    # the second 200 answers the first report
            return 200, encode_reply(ScaipReply(ref=refs[0], snu=Snu.OK))
        return 200, b""

    async def go():
        route, centre, rec = await _start(policy, reply_timeout_s=5)
        route.submit(_event(1))
        await _until(lambda: len(refs) == 1)
        route.submit(_event(2))
        await _until(lambda: bool(rec.seen))
        views = {v["event_id"]: v["state"] for v in route.status()["reports"]}
        await route.async_close()
        await centre.close()
        return rec, views

    rec, views = asyncio.run(go())
    assert rec.seen == [("delivered", "a4c1380a1b2c-00000001", False)]
    assert views == {"a4c1380a1b2c-00000002": "awaiting_reply", "a4c1380a1b2c-00000001": "done"}


def test_listener_failure_does_not_stop_the_route(caplog):
    async def go():
        route, centre, rec = await _start(lambda req: _ok(req), rec=Recorder(fail=True))
        route.submit(_event(1))
        route.submit(_event(2))
        await _until(lambda: len(rec.seen) == 2)
        await route.async_close()
        await centre.close()
        return rec

    with caplog.at_level(logging.ERROR):
        rec = asyncio.run(go())
    assert [s[0] for s in rec.seen] == ["delivered", "delivered"]
    assert "listener scaip_delivered failed" in caplog.text


def test_an_event_we_cannot_encode_is_refused_at_once_not_dropped():
    async def go():
        centre = Centre(lambda req: _ok(req))
        port = await centre.start()
        rec = Recorder()
        ua = SipUserAgent(UaConfig(target=f"sip:arc@127.0.0.1:{port}", local_user="x", local_host="127.0.0.1"))
        route = ScaipRoute(ua, ScaipSettings(cid="not-digits", heartbeats=False), listener=rec, clock=SystemClock())
        await route.async_start()
        ref = route.submit(_event())
        told_inside_submit = list(rec.seen)
        await asyncio.sleep(0)                  # reported on the next loop iteration, not inside submit()
        await route.async_close()
        await centre.close()
        return ref, rec, route, told_inside_submit

    ref, rec, route, inside = asyncio.run(go())
    assert inside == []
    assert ref is None and rec.seen[0][0] == "refused" and "cannot encode" in rec.seen[0][2]
    assert route.counters["encode_failed"] == 1


def test_heartbeats_on_schedule_and_missed_ones_are_counted():
    answer_them = {"on": True}

    def policy(req):
        return _ok(req, hbi=2) if answer_them["on"] else None

    async def go():
        def fast(route: ScaipRoute) -> None:
            route.heartbeat.min_interval_s = 0.1        # a test may go below the production floor

        route, centre, rec = await _start(policy, prepare=fast, heartbeats=True, heartbeat_interval_s=10.0,
                                          heartbeat_adjustable=True, hbi_intervals_s={2: 0.3})
        await _until(lambda: route.heartbeat.counters["answered"] >= 2, 5)
        alive = route.healthy
        answer_them["on"] = False
        await _until(lambda: route.heartbeat.missed >= 1, 5)
        status = route.status()
        await route.async_close()
        await centre.close()
        return alive, status, centre

    alive, status, centre = asyncio.run(go())
    assert alive
    hb = status["heartbeat"]
    assert hb["interval_s"] == 0.3 and hb["hbi"] == 2 and hb["missed"] >= 1 and hb["configured_interval_s"] == 10.0
    assert hb["counters"]["interval_changed"] == 1
    bodies = [decode_request(r.body) for r in centre.requests]
    assert all(b.mty == "PI" and b.hbo == "1" for b in bodies)
    # one ref per heartbeat: as many refs as transactions (retransmissions share a branch)
    assert len({b.ref for b in bodies}) == len({top_via(r.headers).branch for r in centre.requests}) >= 3
