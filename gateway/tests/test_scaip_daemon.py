"""The whole gateway with a SCAIP alarm receiving centre (docs/scaip.md "In the gateway").

The real composition root (``bootstrap``: journal on disk and its writer thread, ingress,
forwarder, SIP user agent, SCAIP route, rules, status) on the test's event loop; a button
device speaks real frames over a fake serial link; the centre is SIPp on loopback (or a
scripted UDP/TLS peer for the bad-input cases); the MQTT side is an in-memory route or a
real Mosquitto with the platform simulator — or nothing at all (SCAIP only).
"""
from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from gateway.adapters.sip import Headers, SipResponse, parse_message
from gateway.adapters.status import render_table
from gateway.codec import Feedback, FeedbackState, MsgType, StreamDecoder
from gateway.codec.frame import Frame
from gateway.codec.payloads import decode_payload
from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.domain.model import EventCode
from gateway.domain.scaip import CURSOR_KEY, ref_for
from gateway.testing.platform import FakePublisher, PlatformSim
from gateway.testing.sip_centre import CENTRE_OK, UdpRelay
from gateway.testing.stimuli import TEST_DEVICE, TEST_KEY, event_frame
from gateway.tests.sipp.peers import SippCentre
from testkit.pki import make_pki

pytestmark = pytest.mark.timeout(120)

GW = "gw-scaip"
CID = "4700112233"
DEV = TEST_DEVICE


class Link:
    """The device's end of a serial link: what the gateway sends back (ACK, FEEDBACK)."""

    name = "serial:fake"

    def __init__(self) -> None:
        self.dec = StreamDecoder()
        self.frames: list[Frame] = []

    def send(self, data: bytes) -> None:
        self.frames += [f for f in self.dec.feed(data) if isinstance(f, Frame)]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict:
        return {"name": self.name, "kind": "fake", "state": "up"}

    def acked(self, seq: int) -> bool:
        """The device's event ``seq`` was ACKed (stored, or a duplicate of a stored one)."""
        return any(f.type is MsgType.ACK and getattr(decode_payload(f.type, f.payload), "acked_seq", None) == seq
                   for f in self.frames)

    def feedback(self) -> list[FeedbackState]:
        out = []
        for f in self.frames:
            if f.type is MsgType.FEEDBACK:
                p = decode_payload(f.type, f.payload)
                if isinstance(p, Feedback):
                    out.append(p.state)
        return out


class Gateway:
    """The daemon wired by ``bootstrap`` with ``[scaip]`` pointing at ``centre_uri``."""

    def __init__(self, tmp_path: Path, centre_uri: str, *, publisher: Any = None, scaip: dict | None = None,
                 uplink: dict | None = None) -> None:
        self.tmp_path = tmp_path
        self.publisher = publisher
        overrides: dict[str, Any] = {
            "gateway": {"id": GW, "data_dir": str(tmp_path / "gw")},
            "status": {"enabled": False}, "discovery": {"enabled": False},
            "devices": {DEV: {"role": "button", "key": TEST_KEY.hex()}},
            "scaip": {"enabled": True, "centre": centre_uri, "cid": CID, "t1_ms": 100, "escalate_after_s": 30,
                      "reply_timeout_s": 2, "heartbeat_interval_s": 10, **(scaip or {})},
        }
        if uplink is not None:
            overrides["uplink"] = uplink
        self.cfg = load_config(None, env={}, overrides=overrides)
        self.link = Link()
        self.rt: Any = None

    async def start(self) -> "Gateway":
        self.rt = bootstrap(self.cfg, publisher=self.publisher, serial=False, advertise=False)
        self.rt.add_link(self.link)
        await self.rt.async_start()
        return self

    async def stop(self) -> None:
        if self.rt is not None:
            await self.rt.async_stop()

    def press(self, seq: int, code: EventCode = EventCode.BUTTON_PRESS) -> str:
        self.rt.on_link_bytes(self.link.name, event_frame(seq, code, device=DEV, key=TEST_KEY))
        return f"{DEV}-{seq:08x}"

    @property
    def route(self) -> Any:
        return self.rt.routes.centre

    def record(self, event_id: str) -> Any:
        return next((r for r in self.rt.forwarder.status().last_alarms if r.event_id == event_id), None)

    def signalled(self) -> set[str]:
        return set(self.rt.forwarder._signal.active)

    def journal_row(self, event_id: str) -> tuple[bool | None, str | None]:
        return self.rt.journal.is_delivered(event_id), self.rt.journal.ack_status(event_id)


async def until(pred: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def sipp(tmp_path):
    started: list[SippCentre] = []

    def make(scenario: str = "centre_ok.xml", text: str | None = None) -> SippCentre:
        c = SippCentre(scenario, tmp_path / f"sipp-{len(started)}", calls=0, timeout_s=0,
                       scenario_text=text).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


def _mqtt_alarms(pub: FakePublisher) -> list[dict]:
    return [d.body for d in pub.decoded() if d.alarm]


# ---- the happy path and status ------------------------------------------------------------
def test_alarm_delivered_via_scaip_acknowledged_in_the_journal_and_visible_in_status(tmp_path, sipp):
    centre = sipp(text=CENTRE_OK)
    pub = FakePublisher(clock=None)

    async def go():
        gw = await Gateway(tmp_path, centre.uri, publisher=pub).start()
        try:
            await until(lambda: gw.route.healthy, 10, "first heartbeat answered")
            eid = gw.press(1)
            await until(lambda: (r := gw.record(eid)) is not None and r.ack == "received", 10, "snu 0")
            await until(lambda: gw.link.acked(1) and FeedbackState.RECEIVED in gw.link.feedback(), 5, "ACK+FEEDBACK")
            gw.rt.forwarder.poll()
            await until(lambda: gw.journal_row(eid) == (True, "received"), 5, "journal marks")
            snap = gw.rt.snapshot()
            gw.rt.publish_health()
            return gw, eid, snap
        finally:
            await gw.stop()

    gw, eid, snap = asyncio.run(go())
    rec = gw.record(eid)
    assert (rec.route, rec.snu, rec.attempts) == ("scaip", 0, 1) and rec.centre_latency_ms < 2000
    assert _mqtt_alarms(pub) == []                          # SCAIP is the primary alarm route
    sc = snap["uplink"]["scaip"]
    assert sc["healthy"] and sc["last_snu"] == 0 and sc["heartbeat"]["alive"]
    assert snap["uplink"]["routes"] == {"primary": True, "scaip": True}
    table = render_table(snap)
    assert "scaip   healthy" in table and "last snu=0" in table and "snu 0" in table
    health = [d for d in pub.published if d.topic.endswith("/health")]
    import json
    doc = json.loads(health[-1].payload)
    assert doc["uplink"]["scaip"]["state"] == "healthy" and doc["uplink"]["scaip"]["last_snu"] == 0
    assert ref_for(eid) in centre.refs()


def test_scaip_only_gateway_needs_no_broker_and_follow_ups_reach_the_centre(tmp_path, sipp):
    centre = sipp(text=CENTRE_OK)

    async def go():
        gw = await Gateway(tmp_path, centre.uri, uplink={"enabled": False}).start()
        try:
            await until(lambda: gw.rt.uplink_connected(), 10, "connected = centre answers heartbeats")
            a = gw.press(1)
            c = gw.press(2, EventCode.BUTTON_CANCEL)
            await until(lambda: gw.record(a) is not None and gw.record(a).ack == "received", 10, "alarm snu 0")
            await until(lambda: ref_for(c) in centre.refs(), 10, "the cancel at the centre")
            await until(lambda: gw.rt.forwarder._feed.open_count == 0, 10, "cancel answered")
            gw.rt.forwarder.poll()
            await until(lambda: gw.journal_row(a) == (True, "received") and gw.journal_row(c)[0], 5, "delivered")
            return gw, a, c, gw.rt.forwarder.status(), gw.rt.publish_health()
        finally:
            await gw.stop()

    gw, a, c, st, published = asyncio.run(go())
    assert not published                                     # no MQTT: no health, and nothing broke
    assert st.routes == {"scaip": True} and st.connected and st.backlog == 0
    assert centre.refs().index(ref_for(a)) < centre.refs().index(ref_for(c))


def test_reply_by_separate_message_acknowledges_the_alarm_too(tmp_path, sipp):
    centre = sipp("centre_separate_reply.xml")

    async def go():
        gw = await Gateway(tmp_path, centre.uri, publisher=FakePublisher()).start()
        try:
            eid = gw.press(1)
            await until(lambda: (r := gw.record(eid)) is not None and r.ack == "received", 10, "snu 0 by MESSAGE")
            return gw, eid, gw.route.status()
        finally:
            await gw.stop()

    gw, eid, st = asyncio.run(go())
    assert st["counters"]["replies_by_message"] >= 1 and gw.record(eid).snu == 0


# ---- escalation, refusal, hold --------------------------------------------------------------
def test_centre_silent_escalates_to_the_mqtt_fallback_with_a_local_signal(tmp_path, sipp, mosquitto):
    centre = sipp(text=CENTRE_OK)
    platform = PlatformSim.on_broker(mosquitto.host, mosquitto.port, auto_ack=False).start()

    async def go():
        relay = UdpRelay(("127.0.0.1", centre.port))
        host, port = await relay.async_start()
        gw = Gateway(tmp_path, f"sip:arc@{host}:{port}", scaip={"escalate_after_s": 2},
                     uplink={"host": mosquitto.host, "port": mosquitto.port})
        await gw.start()
        try:
            await until(lambda: gw.rt.routes.primary.connected, 10, "MQTT up")
            relay.cut()                                      # the centre goes silent
            eid = gw.press(1)
            await until(lambda: eid in gw.signalled(), 8, "local signal after escalate_after_s")
            arrivals = await asyncio.to_thread(platform.wait_for, lambda a: a.alarm, 10.0, 2)
            relay.restore()                                  # the centre comes back: its snu 0 ends it
            await until(lambda: eid not in gw.signalled(), 20, "signal off after the centre's snu 0")
            return eid, arrivals, gw.rt.forwarder.status()
        finally:
            await gw.stop()
            relay.close()

    try:
        eid, arrivals, st = asyncio.run(go())
    finally:
        platform.stop()
    by_type = {a.type: a for a in arrivals}
    assert by_type["button_press"].event_id == eid
    tech = by_type["alarm_unacknowledged"].payload["data"]
    assert (tech["event_id"], tech["reason"], tech["route"]) == (eid, "scaip_no_answer", "scaip")
    rec = next(r for r in st.last_alarms if r.event_id == eid)
    assert rec.ack == "received" and rec.escalations == 1


def test_snu7_raises_a_technical_alarm_on_mqtt_and_sends_the_alarm_there(tmp_path, sipp):
    centre = sipp("centre_snu7.xml")
    pub = FakePublisher()

    async def go():
        gw = await Gateway(tmp_path, centre.uri, publisher=pub).start()
        try:
            eid = gw.press(1)
            await until(lambda: any(b["type"] == "alarm_unacknowledged" for b in _mqtt_alarms(pub)), 10, "tech")
            await until(lambda: gw.link.acked(1), 5, "ACKed")
            return gw, eid, gw.journal_row(eid)
        finally:
            await gw.stop()

    gw, eid, row = asyncio.run(go())
    bodies = _mqtt_alarms(pub)
    assert [b["event_id"] for b in bodies if b["type"] == "button_press"] == [eid]
    tech = next(b["data"] for b in bodies if b["type"] == "alarm_unacknowledged")
    assert (tech["event_id"], tech["reason"], tech["snu"]) == (eid, "scaip_refused", 7)
    assert gw.route.status()["counters"]["refused"] >= 1
    assert row == (False, None)                               # still owed: kept until the platform acks


def test_snu4_then_0_is_delivered_after_a_back_off(tmp_path, sipp):
    centre = sipp("centre_hold_then_ok.xml")
    pub = FakePublisher()

    async def go():
        gw = await Gateway(tmp_path, centre.uri, publisher=pub).start()
        try:
            eid = gw.press(1)
            await until(lambda: (r := gw.record(eid)) is not None and r.ack == "received", 15, "snu 0 after 4")
            return gw, eid
        finally:
            await gw.stop()

    gw, eid = asyncio.run(go())
    rec = gw.record(eid)
    assert rec.attempts == 1 and rec.escalations == 0 and _mqtt_alarms(pub) == []
    assert centre.refs().count(ref_for(eid)) == 2            # the same ref, re-sent after the hold
    reports = {r["event_id"]: r for r in gw.route.status()["reports"]}
    assert reports[eid]["attempts"] == 2 and reports[eid]["last_snu"] == 0


@pytest.mark.slow
def test_an_outage_then_the_backlog_reaches_the_centre_in_journal_order(tmp_path, sipp):
    centre = sipp(text=CENTRE_OK)
    pub = FakePublisher()

    async def go():
        relay = UdpRelay(("127.0.0.1", centre.port))
        host, port = await relay.async_start()
        gw = await Gateway(tmp_path, f"sip:arc@{host}:{port}", publisher=pub, scaip={"t1_ms": 50}).start()
        try:
            await until(lambda: gw.route.healthy, 10, "centre up")
            relay.cut()
            ids = []
            for seq, code in ((1, EventCode.BUTTON_PRESS), (2, EventCode.BUTTON_CANCEL), (3, EventCode.BUTTON_PRESS),
                              (4, EventCode.BUTTON_CANCEL)):
                ids.append(gw.press(seq, code))
                await until(lambda s=seq: gw.link.acked(s), 5, "stored before the next one happens")
            # an outage longer than timer F: every attempt has failed (a shorter one lets the
            # retransmissions of still-open transactions through in their own order)
            await until(lambda: all(r.state == "backing_off" for r in gw.route.tracker.views(0)[:4])
                        and gw.route.tracker.open_count == 4, 15, "all four failed, three parked")
            assert not gw.route.tracker.centre_up
            await until(lambda: all(gw.link.acked(s) for s in (1, 2, 3, 4)), 5, "devices ACKed (journal)")
            relay.restore()
            await until(lambda: all(ref_for(i) in centre.refs() for i in ids), 30, "backlog at the centre")
            await until(lambda: gw.route.tracker.open_count == 0, 10, "all answered")
            return ids
        finally:
            await gw.stop()
            relay.close()

    ids = asyncio.run(go())
    refs = centre.refs()
    first = sorted(ids, key=lambda i: refs.index(ref_for(i)))
    assert first == ids                                       # first arrivals in journal order


# ---- bad input ----------------------------------------------------------------------------
class BadCentre(asyncio.DatagramProtocol):
    """A scripted UDP centre: answers each MESSAGE the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.seen = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        req = parse_message(data)
        if not hasattr(req, "method"):
            return
        self.seen += 1
        pairs = [("Via", v) for v in req.headers.get_all("Via")]
        pairs += [("From", req.headers.get("From")), ("To", f"{req.headers.get('To')};tag=bad"),
                  ("Call-ID", req.headers.get("Call-ID")), ("CSeq", req.headers.get("CSeq"))]
        m = re.search(rb"<ref>([A-Za-z0-9]+)</ref>", req.body)
        ref = m.group(1).decode() if m else "x"
        if self.mode == "malformed":
            out = b"SIP/2.0 200 OK\r\nVia: " + b"\xff" * 40 + b"\r\nContent-Length: 9999\r\n\r\n<mrs>"
        else:
            body = {
                "hostile": (b'<?xml version="1.0"?><!DOCTYPE mrs [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                            b"<mrs><ref>&b;</ref><snu>0</snu></mrs>"),
                "unknown_ref": b"<mrs><ref>ffffffffffffffff</ref><snu>0</snu></mrs>",
                "busy_forever": f"<mrs><ref>{ref}</ref><snu>6</snu></mrs>".encode(),
            }[self.mode]
            pairs.append(("Content-Type", "application/scaip+xml"))
            out = SipResponse(200, "OK", Headers.of(pairs), body).to_bytes()
        assert self.transport is not None
        self.transport.sendto(out, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@pytest.mark.parametrize("mode, counter, log_text", [
    ("malformed", "sip_rejected", "sip: refused a message"),
    ("hostile", "reply_rejected", "scaip: refused a reply"),
    ("unknown_ref", "unknown_ref", "reply for unknown ref"),
    ("busy_forever", "snu_6", "escalating button_press"),
])
def test_bad_centre_input_is_counted_logged_escalated_and_nothing_stored_is_lost(tmp_path, caplog, mode, counter,
                                                                                 log_text):
    pub = FakePublisher()

    async def go():
        bad = BadCentre(mode)
        port = await bad.start()
        gw = await Gateway(tmp_path, f"sip:arc@127.0.0.1:{port}", publisher=pub,
                           scaip={"escalate_after_s": 1.5, "reply_timeout_s": 1}).start()
        try:
            eid = gw.press(1)
            await until(lambda: any(b["event_id"] == eid for b in _mqtt_alarms(pub)), 10, "escalated to MQTT")
            second = gw.press(2)                            # the daemon keeps going
            await until(lambda: gw.link.acked(1) and gw.link.acked(2), 5, "both alarms stored and ACKed")
            return gw, gw.route.status(), bad.seen, gw.journal_row(eid), gw.journal_row(second)
        finally:
            await gw.stop()
            bad.close()

    with caplog.at_level(logging.INFO):
        gw, st, seen, row1, row2 = asyncio.run(go())
    assert seen >= 1 and log_text in caplog.text
    counts = {**st["counters"], **{f"sip_{k}": v for k, v in st["sip"].items()}}
    assert any(k.startswith(counter) and v for k, v in counts.items()), counts
    assert row1 == (False, None) and row2[0] is not None      # both in the journal, still owed


def test_tls_certificate_mismatch_is_a_clear_error_and_the_alarm_escalates(tmp_path, caplog):
    pki = make_pki(tmp_path / "pki")
    pub = FakePublisher()

    async def go():
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        gw = await Gateway(tmp_path, f"sips:arc@127.0.0.1:{port}", publisher=pub,
                           scaip={"transport": "tls", "escalate_after_s": 1.5,
                                  "tls": {"ca": str(pki.ca), "server_name": "arc.example.org"}}).start()
        try:
            eid = gw.press(1)
            await until(lambda: any(b["event_id"] == eid for b in _mqtt_alarms(pub)), 10, "escalated to MQTT")
            await until(lambda: gw.link.acked(1), 5, "ACKed")
            return gw, gw.route.status(), gw.journal_row(eid)
        finally:
            await gw.stop()
            server.close()

    with caplog.at_level(logging.WARNING):
        gw, st, row = asyncio.run(go())
    assert "did not verify for 'arc.example.org'" in caplog.text
    assert st["sip"]["connect_failures"] >= 1
    assert row == (False, None)


def test_a_port_in_use_fails_the_start_naming_the_key(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]

        async def go():
            gw = Gateway(tmp_path, "sip:arc@127.0.0.1:5060", publisher=FakePublisher(), scaip={"local_port": port})
            try:
                await gw.start()
            finally:
                await gw.stop()

        from gateway.daemon import DaemonError
        with pytest.raises(DaemonError) as ei:
            asyncio.run(go())
    assert "scaip.local_port" in str(ei.value) and str(port) in str(ei.value)


def test_the_cursor_of_the_centre_feed_is_kept_in_the_journal(tmp_path, sipp):
    centre = sipp(text=CENTRE_OK)

    async def go():
        gw = await Gateway(tmp_path, centre.uri, publisher=FakePublisher()).start()
        try:
            c = gw.press(1, EventCode.BUTTON_CANCEL)
            await until(lambda: ref_for(c) in centre.refs() and gw.rt.forwarder._feed.open_count == 0, 10, "done")
        finally:
            await gw.stop()                                  # flushes the cursor
        return gw

    gw = asyncio.run(go())
    from gateway.adapters.journal import SqliteJournal
    j = SqliteJournal(gw.cfg.journal_path)
    try:
        assert int(j.get_state(CURSOR_KEY)) >= 1
    finally:
        j.close()
