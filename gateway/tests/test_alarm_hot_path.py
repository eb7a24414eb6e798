"""The alarm hot path never waits for a journal commit (slow SD card: 50 ms per fsync).

Real wiring (``bootstrap``: ingress, journal on disk, journal writer THREAD, forwarder,
runtime) with a fake MQTT route. Every commit sleeps 50 ms (the bench's slow-sync seam) and
then blocks on a gate the test holds closed: an ingress or rule engine that waited for a
commit on the event loop would hang until the gate's timeout instead of publishing.

Also checked: the device ACK comes only after the event's commit, and by then the replay
window written for that frame is durable too (same FIFO writer, queued first).
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from gateway.codec import MsgType, StreamDecoder, encode_frame
from gateway.codec.events import EventPayload
from gateway.codec.frame import Frame
from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.adapters.journal import JournalWriter, SqliteJournal
from gateway.domain.model import EventCode
from gateway.domain.rules import Raised
from gateway.domain.payload import Published, decode_published
from gateway.testing.clock import FakeClock
from gateway.testing.platform import FakePublisher

DEV = "a4c1380a1b2c"
KEY = bytes(range(16))
GW = "gw-hot"
GATE_TIMEOUT_S = 5.0


class GatedCommit:
    """``before_commit`` seam: 50 ms like a slow SD card, then wait for the test's gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.finished = 0
        self.entered = 0

    def __call__(self) -> None:
        self.entered += 1
        time.sleep(0.05)
        self.gate.wait(GATE_TIMEOUT_S)
        self.finished += 1


class Link:
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


class TickRule:
    """Raises one care alarm on the next tick (a rule-raised alarm: gateway counter id)."""

    name = "hot_path_probe"

    def __init__(self) -> None:
        self.fire = False
        self.raised = 0

    def on_event(self, event):
        return ()

    def tick(self, now):
        if self.fire:
            self.fire = False
            self.raised += 1
            return [Raised(EventCode.INACTIVITY, DEV, now, {"hours": 12})]
        return ()

    def snapshot(self) -> dict:           # pending state persisted by the engine (journal state)
        return {"raised": self.raised}

    def restore(self, state: dict) -> None:
        self.raised = int(state.get("raised", 0))


def _setup(tmp_path: Path):
    loop = asyncio.new_event_loop()
    clock = FakeClock()
    pub = FakePublisher(clock=clock)
    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": GW, "data_dir": str(tmp_path / "gw")},
        "status": {"enabled": False}, "discovery": {"enabled": False},
        "devices": {DEV: {"role": "button", "key": KEY.hex()}}})
    rt = bootstrap(cfg, clock=clock, loop=loop, publisher=pub, serial=False, advertise=False)
    link = Link()
    rt.add_link(link)
    rt.forwarder.start()
    rt.writer.start()
    return loop, rt, pub, link, cfg


def _alarms(pub: FakePublisher) -> list[Published]:
    out = [decode_published(p.payload) for p in pub.published if p.topic.endswith("/alarm")]
    return [d for d in out if isinstance(d, Published)]


def _run_until(loop: asyncio.AbstractEventLoop, cond, timeout_s: float = 10.0) -> bool:
    async def wait() -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(0.005)
        return cond()
    return loop.run_until_complete(wait())


def test_device_alarm_is_published_before_the_commit_and_acked_only_after_it(tmp_path):
    loop, rt, pub, link, cfg = _setup(tmp_path)
    seam = GatedCommit()
    try:
        rt.journal._before_commit = seam
        frame = encode_frame(MsgType.EVENT, DEV, 7, EventPayload(EventCode.BUTTON_PRESS, 0, {}), key=KEY, urgent=True)
        t0 = time.monotonic()
        rt.on_link_bytes(link.name, frame)           # the daemon's ingress path, on the loop thread
        took = time.monotonic() - t0
        published = [a.event_id for a in _alarms(pub)]
        assert published == [f"{DEV}-00000007"], "the alarm did not reach the publisher at once"
        assert seam.finished == 0, "a commit completed before the publish: the hot path waited on the journal"
        assert took < GATE_TIMEOUT_S / 2, f"ingress blocked {took:.2f} s (waited for the gated commit)"
        assert link.frames == [], "the device was ACKed before its event was durable"

        seam.gate.set()                              # let the (slow) commits complete
        assert _run_until(loop, lambda: any(f.type is MsgType.ACK for f in link.frames)), "no ACK after the commit"
        # at ACK time the event AND the frame's replay window are committed on disk
        conn = sqlite3.connect(cfg.journal_path)
        try:
            assert conn.execute("SELECT 1 FROM events WHERE event_id = ?", (f"{DEV}-00000007",)).fetchone()
            blob = conn.execute("SELECT value FROM state WHERE key = ?", (f"replay/frame/{DEV}",)).fetchone()
            assert blob is not None, "replay window not durable when the ACK was sent"
            seq_blob = conn.execute("SELECT value FROM state WHERE key = ?", (f"downlink_seq/{DEV}",)).fetchone()
            assert seq_blob is not None, "downlink seq block not durable when the ACK used a seq from it"
        finally:
            conn.close()
        from gateway.codec.auth import ReplayWindow
        window = ReplayWindow.from_bytes(bytes(blob[0]))
        assert isinstance(window, ReplayWindow) and window.highest == 7
    finally:
        seam.gate.set()
        rt.writer.stop()
        rt.journal.close()
        loop.close()


def test_rule_raised_alarm_is_published_without_waiting_for_a_commit(tmp_path):
    loop, rt, pub, link, cfg = _setup(tmp_path)
    seam = GatedCommit()
    rule = TickRule()
    rt.engine.rules.append(rule)
    try:
        rt.journal._before_commit = seam
        rt.writer.set_state("probe", b"x")           # a commit is in progress (holding the write lock)
        assert _run_until(loop, lambda: seam.entered >= 1)
        rule.fire = True
        t0 = time.monotonic()
        raised = rt.engine.tick()
        took = time.monotonic() - t0
        assert [e.code for e in raised] == [EventCode.INACTIVITY]
        assert [a.event_id for a in _alarms(pub)] == [raised[0].event_id]
        assert raised[0].event_id.startswith(f"{GW}-g")
        assert seam.finished == 0 and took < GATE_TIMEOUT_S / 2, f"rule path blocked {took:.2f} s"
        assert rt.writer.get_state(f"rules.{rule.name}") == b'{"raised": 1}'   # queued, visible at once
    finally:
        seam.gate.set()
        rt.writer.stop()
        rt.journal.close()
        loop.close()


def test_gateway_counter_blocks_are_reserved_ahead_on_the_writer_and_never_reused(tmp_path):
    j = SqliteJournal(tmp_path / "j.db", counter_block=10)
    w = JournalWriter(j)          # thread not started: run_pending() plays the writer thread
    first = [w.next_gateway_counter() for _ in range(6)]   # crosses half a block: refill queued
    assert j.counters_left() == 4, "the loop-side call must not reserve (no fsync on the loop)"
    w.run_pending()
    assert j.counters_left() == 14
    more = [w.next_gateway_counter() for _ in range(20)]
    w.run_pending()
    j.close()
    j2 = SqliteJournal(tmp_path / "j.db", counter_block=10)   # restart: continues above the reservation
    after = j2.next_gateway_counter()
    j2.close()
    values = first + more
    assert values == list(range(values[0], values[0] + 26))
    assert after > max(values)


def test_technical_alarm_is_published_at_once_and_falls_back_to_a_time_id(tmp_path, monkeypatch):
    loop, rt, pub, link, cfg = _setup(tmp_path)
    seam = GatedCommit()
    try:
        rt.journal._before_commit = seam
        rt.writer.set_state("probe", b"x")           # a commit is in progress
        assert _run_until(loop, lambda: seam.entered >= 1)
        rt.forwarder.raise_technical(EventCode.UPLINK_LOST, {"route": "fallback"})
        techs = [a for a in _alarms(pub) if a.body["type"] == "uplink_lost"]
        assert len(techs) == 1 and techs[0].event_id.startswith(f"{GW}-g") and seam.finished == 0

        from gateway.adapters.journal import JournalError

        def broken() -> int:
            raise JournalError("cannot reserve gateway counters: disk full", path=cfg.journal_path)
        monkeypatch.setattr(rt.journal, "next_gateway_counter", broken)
        rt.forwarder.raise_technical(EventCode.UPLINK_LOST, {"route": "primary"})
        techs = [a for a in _alarms(pub) if a.body["type"] == "uplink_lost"]
        assert len(techs) == 2 and techs[1].event_id.startswith(f"{GW}-t"), techs[1].event_id
    finally:
        seam.gate.set()
        rt.writer.stop()
        rt.journal.close()
        loop.close()
