"""The SCAIP route and the SIP user agent against SIPp scripted as an alarm centre.

Each test starts its own SIPp on a free loopback port with a scenario from
gateway/tests/sipp/ and checks both sides: what our route reported (delivered /
escalated / refused) and what the centre received (SIPp's message trace).
"""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from gateway.adapters.sip import (
    ScaipRoute,
    ScaipSettings,
    SipAccount,
    SipStatusError,
    SipUserAgent,
    Timers,
    Transport,
    UaConfig,
    parse_message,
)
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import SystemClock
from gateway.domain.scaip import RetryPolicy, Snu, decode_request, ref_for
from gateway.tests.sipp import peers
from gateway.tests.sipp.peers import LossyUdpRelay, SippCentre

pytestmark = pytest.mark.timeout(120)

CID = "4700112233"
FAST = Timers(t1=0.1, t2=0.4, t4=0.5)


def _press(i: int = 1, code: EventCode = EventCode.BUTTON_PRESS) -> Event:
    now = time.time()
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", code, now, now, Role.BUTTON, i)


class Recorder:
    """A ScaipListener that records what the route reports."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def scaip_delivered(self, event, reply, *, escalated, at=None):
        self.seen.append(("delivered", event.event_id, reply, escalated))

    def scaip_escalate(self, event, reason):
        self.seen.append(("escalate", event.event_id, reason))

    def scaip_refused(self, event, reply, reason):
        self.seen.append(("refused", event.event_id, reply, reason))

    def kinds(self) -> list[str]:
        return [s[0] for s in self.seen]

    async def wait_for(self, kind: str, timeout_s: float = 15.0) -> tuple:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for s in self.seen:
                if s[0] == kind:
                    return s
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} within {timeout_s}s; saw {self.seen}")


def _ua(target: str, transport: Transport = Transport.UDP, **kw) -> SipUserAgent:
    return SipUserAgent(UaConfig(target=target, local_user=CID, transport=transport, local_host="127.0.0.1",
                                 timers=kw.pop("timers", FAST), **kw))


def _route(ua: SipUserAgent, rec: Recorder, **settings) -> ScaipRoute:
    settings.setdefault("heartbeats", False)
    settings.setdefault("retry", RetryPolicy(initial_s=0.2, cap_s=1.0))
    return ScaipRoute(ua, ScaipSettings(cid=CID, **settings), listener=rec, clock=SystemClock())


@pytest.fixture
def centre(tmp_path):
    started: list[SippCentre] = []

    def make(scenario: str, **kw) -> SippCentre:
        c = SippCentre(scenario, tmp_path / f"sipp-{len(started)}", **kw).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


def _body(msg: str) -> bytes:
    return msg.split("\n\n", 1)[1].strip().encode() if "\n\n" in msg else b""


def _header(msg: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*)$", msg, re.M | re.I)
    return m.group(1).strip() if m else ""


async def _deliver(centre: SippCentre, transport: Transport = Transport.UDP, account: SipAccount | None = None,
                   **settings):
    rec = Recorder()
    route = _route(_ua(centre.uri, transport, account=account), rec, **settings)
    await route.async_start()
    try:
        ev = _press()
        ref = route.submit(ev)
        delivered = await rec.wait_for("delivered")
        assert await centre.async_wait() == 0, centre.output()
        return route, rec, ev, ref, delivered
    finally:
        await route.async_close()


@pytest.mark.parametrize("transport, sipp_t", [(Transport.UDP, "u1"), (Transport.TCP, "t1")])
def test_reply_in_the_200_ok(centre, transport, sipp_t):
    c = centre("centre_reply_in_200.xml", transport=sipp_t)
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c, transport))
    assert ref == ref_for(ev.event_id)
    assert delivered[2].snu is Snu.OK and delivered[3] is False
    (msg,) = c.received("MESSAGE")
    assert _header(msg, "Content-Type") == "application/scaip+xml"
    req = decode_request(_body(msg))
    assert (req.ref, req.cid, req.mty, req.dty, req.stc, req.dco) == (ref, CID, "ME", "0003", "0010", "002")
    assert rec.kinds() == ["delivered"]


@pytest.mark.parametrize("transport, sipp_t", [(Transport.UDP, "u1"), (Transport.TCP, "t1")])
def test_reply_by_separate_message_from_the_centre(centre, transport, sipp_t):
    c = centre("centre_separate_reply.xml", transport=sipp_t)
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c, transport))
    assert delivered[2].ref == ref and delivered[2].ste == "OK"
    assert route.counters["replies_by_message"] == 1
    assert route.ua.stats["requests_in_message"] == 1
    # the centre got our 200 OK for its MESSAGE (SIPp's scenario waits for it)
    assert [m.split(" ", 2)[1] for m in c.messages() if m.startswith("SIP/2.0")] == ["200"]


@pytest.mark.slow
def test_slow_centre_retransmissions_are_absorbed(centre):
    c = centre("centre_delay.xml")
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c))
    assert delivered[2].snu is Snu.OK
    assert route.ua.stats["retransmissions"] >= 2          # every T2 (0.4 s) while proceeding
    copies = c.received("MESSAGE")
    assert len(copies) == 1 + route.ua.stats["retransmissions"]
    assert len({_header(m, "Via") for m in copies}) == 1   # one transaction: same branch
    assert rec.kinds() == ["delivered"]


def test_lost_first_copies_are_retransmitted_over_udp(centre):
    c = centre("centre_reply_in_200.xml")

    async def run():
        relay = LossyUdpRelay(("127.0.0.1", c.port), drop_requests=2)
        host, port = await relay.async_start()
        try:
            rec = Recorder()
            route = _route(_ua(f"sip:arc@{host}:{port}"), rec)
            await route.async_start()
            t0 = time.monotonic()
            route.submit(_press())
            await rec.wait_for("delivered")
            took = time.monotonic() - t0
            await route.async_close()
            assert await c.async_wait() == 0, c.output()
            return route, relay, took
        finally:
            relay.close()

    route, relay, took = asyncio.run(run())
    assert relay.dropped == 2
    assert route.ua.stats["retransmissions"] >= 2
    assert 0.25 <= took < 2.0                               # T1 (0.1) + 2·T1 (0.2), then the answer
    assert len(c.received("MESSAGE")) == 1


@pytest.mark.slow
def test_centre_without_reply_gets_a_resend_with_the_same_ref(centre):
    c = centre("centre_ignores_first.xml")
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c, reply_timeout_s=0.5))
    first, second = c.received("MESSAGE")
    assert decode_request(_body(first)).ref == decode_request(_body(second)).ref == ref
    assert _header(first, "Call-ID") == _header(second, "Call-ID")
    assert [_header(m, "CSeq") for m in (first, second)] == ["1 MESSAGE", "2 MESSAGE"]
    assert route.tracker.counters["reply_timeout"] == 1


def test_hold_then_ok(centre):
    c = centre("centre_hold_then_ok.xml")
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c))
    assert delivered[2].snu is Snu.OK
    assert route.tracker.counters["snu_4"] == 1 and route.tracker.counters["attempts"] == 2
    assert len(c.received("MESSAGE")) == 2
    assert rec.kinds() == ["delivered"]


def test_snu_7_refuses_and_escalates(centre):
    c = centre("centre_snu7.xml")

    async def run():
        rec = Recorder()
        route = _route(_ua(c.uri), rec)
        await route.async_start()
        route.submit(_press())
        await rec.wait_for("escalate")
        assert await c.async_wait() == 0, c.output()
        await route.async_close()
        return route, rec

    route, rec = asyncio.run(run())
    assert rec.kinds() == ["refused", "escalate"]
    refused = rec.seen[0]
    assert refused[2].snu is Snu.TAG_MISSING and refused[2].ste == "mandatory tag missing" and refused[3] == "snu 7"
    assert route.tracker.open_count == 0


def test_digest_challenge_from_the_centre(centre):
    c = centre("centre_digest.xml", extra=("-set", "user", CID, "-set", "pass", "pa55word"))
    route, rec, ev, ref, delivered = asyncio.run(_deliver(c, account=SipAccount(CID, "pa55word")))
    first, second = c.received("MESSAGE")
    assert not _header(first, "Authorization")
    auth = _header(second, "Authorization")
    for part in ("Digest ", f'username="{CID}"', 'realm="centre.test"', "qop=auth", "nc=00000001",
                 "algorithm=MD5", 'opaque="op4que"'):
        assert part in auth
    assert route.ua.stats["challenges"] == 1


def test_wrong_password_is_a_clear_error(centre):
    c = centre("centre_digest.xml", extra=("-set", "user", CID, "-set", "pass", "pa55word"))

    async def run():
        ua = _ua(c.uri, account=SipAccount(CID, "wrong"))
        await ua.async_start()
        try:
            with pytest.raises(SipStatusError) as exc:
                await ua.async_send_message(b"<mrq><ref>1</ref><cid>1</cid><dty>3</dty></mrq>")
        finally:
            await ua.async_close()
        return exc.value

    err = asyncio.run(run())
    assert err.status == 403


def test_heartbeat_follows_hbi(centre):
    c = centre("centre_heartbeat.xml")

    async def run():
        rec = Recorder()
        route = _route(_ua(c.uri), rec, heartbeats=True, heartbeat_interval_s=600, heartbeat_adjustable=True,
                       hbi_intervals_s={1: 60.0})
        await route.async_start()
        deadline = time.monotonic() + 10
        while route.heartbeat.last_answered_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await c.async_wait() == 0, c.output()
        status = route.status()
        await route.async_close()
        return route, status

    route, status = asyncio.run(run())
    assert route.heartbeat.interval_s == 60.0 and route.heartbeat.hbi == 1
    assert status["heartbeat"]["alive"] is True and status["healthy"] is True
    (msg,) = c.received("MESSAGE")
    req = decode_request(_body(msg))
    assert (req.mty, req.dty, req.hbo, req.cid) == ("PI", "0002", "1", CID)
    assert req.ref.startswith("hb")


def test_the_centre_trace_parses_with_our_parser(centre):
    """What SIPp logged as received is our own bytes: our parser must read them back."""
    c = centre("centre_reply_in_200.xml")
    asyncio.run(_deliver(c))
    (msg,) = c.received("MESSAGE")
    parsed = parse_message(msg.replace("\n", "\r\n").encode())
    assert getattr(parsed, "method", None) == "MESSAGE"


def test_a_missing_peer_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(peers.shutil, "which", lambda name: None)
    monkeypatch.setattr(peers.os.path, "exists", lambda path: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package sip-tester"):
        peers.require("sipp")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Debian package kamailio"):
        peers.require("kamailio")


def test_a_picked_port_taken_before_sipp_binds_is_picked_again(tmp_path):
    """Parallel test shards: another process can take the port between the pick and SIPp's
    bind (seen once as errno 98 in a full run). A port SippCentre picked is picked again; one
    the caller chose is not (the caller may have written it into a configuration). The
    race cannot be staged reliably, so SIPp's first attempt is replaced by one that finds its
    port taken."""
    from gateway.testing.sip_centre import _PortTaken

    def taken_once(c):
        real, calls = c._start_once, []

        def attempt(wait_s):
            calls.append(c.port)
            if len(calls) == 1:
                raise _PortTaken()
            return real(wait_s)
        c._start_once = attempt
        return calls

    auto = SippCentre("centre_reply_in_200.xml", tmp_path / "auto")
    calls = taken_once(auto)
    try:
        auto.start()
        assert len(calls) == 2 and calls[0] != calls[1] == auto.port
        assert auto.proc is not None and auto.proc.poll() is None
    finally:
        auto.stop()
    fixed = SippCentre("centre_reply_in_200.xml", tmp_path / "fixed", port=calls[0])
    fixed_calls = taken_once(fixed)
    with pytest.raises(RuntimeError, match="could not bind"):
        fixed.start()
    assert fixed_calls == [calls[0]] and fixed.port == calls[0]
