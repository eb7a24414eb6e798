"""kill -9 of the gateway at every point of a burst's delivery path loses no event.

The real wiring (``bootstrap``: ingress, journal on disk, journal writer, forwarder,
runtime) with a fake MQTT route and a device model that behaves like the firmware's
event queue (firmware/lib/evq.py + app.py): every event stays queued and is re-sent until
an ACK STORED/DUPLICATE names its seq. The journal writer's thread is not started; the
test steps it (``run_pending``) and the event loop by hand, so each crash point is exact.

A "kill -9" abandons the runtime: queued journal writes and unacknowledged publications
are lost (worst case: the broker never saw them), only what SQLite committed survives.
Then a new runtime opens the same journal and the device re-sends what it still holds.

Checked for every crash point:
- each ACK the device receives names an event that was durable (committed in the journal
  file, read through a separate connection) or already at the broker (PUBACK) at that moment;
- after the restart every press reaches the platform and the device's queue drains.
"""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.codec import AckStatus, MsgType, StreamDecoder, encode_frame
from gateway.codec.events import EventPayload
from gateway.codec.frame import Frame
from gateway.codec.payloads import Ack, decode_payload
from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.domain.model import EventCode
from gateway.domain.payload import Published, decode_published
from gateway.testing.clock import FakeClock
from gateway.testing.platform import FakePublisher

DEV = "a4c1380a1b2c"
KEY = bytes(range(16))
GW = "gw-crash"


class DeviceModel:
    """The firmware's side: persistent queue, re-send until ACKed, ACK checked on arrival."""

    def __init__(self, durable: "callable") -> None:
        self.queue: dict[int, bytes] = {}
        self.next_seq = 3
        self.pressed: list[str] = []
        self.dec = StreamDecoder()
        self._durable = durable
        self.unsafe_acks: list[str] = []

    def press(self) -> bytes:
        seq = self.next_seq
        self.next_seq += 1
        frame = encode_frame(MsgType.EVENT, DEV, seq, EventPayload(EventCode.BUTTON_PRESS, 0, {}), key=KEY,
                             urgent=True)
        self.queue[seq] = frame
        self.pressed.append(f"{DEV}-{seq:08x}")
        return frame

    def receive(self, data: bytes) -> None:
        for f in self.dec.feed(data):
            if not isinstance(f, Frame) or f.type is not MsgType.ACK:
                continue
            ack = decode_payload(f.type, f.payload)
            assert isinstance(ack, Ack)
            if ack.status in (AckStatus.STORED, AckStatus.DUPLICATE) and ack.acked_seq in self.queue:
                eid = f"{DEV}-{ack.acked_seq:08x}"
                if not self._durable(eid):
                    self.unsafe_acks.append(eid)
                del self.queue[ack.acked_seq]


class FakeLink:
    """A serial link to the device model; a dead link (crashed gateway) delivers nothing."""

    def __init__(self, device: DeviceModel) -> None:
        self.name = "serial:fake"
        self.device = device
        self.alive = True

    def send(self, data: bytes) -> None:
        if self.alive:
            self.device.receive(data)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict:
        return {"name": self.name, "kind": "fake", "state": "up"}


class Bench:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.publishers: list[FakePublisher] = []
        self.device = DeviceModel(self.durable)
        self.cfg = load_config(None, env={}, overrides={
            "gateway": {"id": GW, "data_dir": str(tmp_path / "gw")},
            "uplink": {"ack_timeout_s": 5},
            "status": {"enabled": False}, "discovery": {"enabled": False},
            "devices": {DEV: {"role": "button", "key": KEY.hex()}}})
        self.rt = None
        self.boot()

    # what the platform has: every publication the broker acknowledged, in any incarnation
    def at_platform(self) -> set[str]:
        out = set()
        for pub in self.publishers:
            for p in pub.published:
                d = decode_published(p.payload)
                if p.acked and isinstance(d, Published):
                    out.add(d.event_id)
        return out

    def durable(self, event_id: str) -> bool:
        if event_id in self.at_platform():
            return True
        conn = sqlite3.connect(self.cfg.journal_path)
        try:
            return conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None
        finally:
            conn.close()

    def boot(self) -> None:
        pub = FakePublisher(clock=self.clock)
        self.publishers.append(pub)
        self.rt = bootstrap(self.cfg, clock=self.clock, loop=self.loop, publisher=pub, serial=False, advertise=False)
        self.link = FakeLink(self.device)
        self.rt.add_link(self.link)
        self.pub = pub
        self.rt.forwarder.start()

    def kill9(self) -> None:
        self.link.alive = False
        self.rt.journal.close()      # uncommitted work is gone; the writer's queue is abandoned
        self.rt = None

    # the steps a running gateway interleaves
    def press(self) -> None:
        self.rt.on_link_bytes(self.link.name, self.device.press())

    def commit(self) -> None:
        self.rt.writer.run_pending()

    def dispatch(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    def puback(self, n: int | None = None) -> None:
        self.pub.puback(n)

    def flush(self) -> None:
        self.rt.forwarder.poll()

    def settle(self) -> None:
        for _ in range(4):
            self.commit()
            self.dispatch()
            self.puback()
            self.flush()

    def resend_all(self) -> None:
        for seq in sorted(self.device.queue):
            self.rt.on_link_bytes(self.link.name, self.device.queue[seq])

    def close(self) -> None:
        if self.rt is not None:
            self.rt.journal.close()
        self.loop.close()


SCHEDULE = ["press", "press", "puback1", "commit", "dispatch", "press", "commit", "puback", "press",
            "dispatch", "flush", "commit", "press", "dispatch", "commit", "dispatch"]


def _run(b: Bench, op: str) -> None:
    {"press": b.press, "commit": b.commit, "dispatch": b.dispatch, "flush": b.flush,
     "puback1": lambda: b.puback(1), "puback": b.puback}[op]()


@pytest.mark.parametrize("cut", range(len(SCHEDULE) + 1))
def test_kill9_at_every_point_of_a_burst_loses_nothing(tmp_path, cut):
    b = Bench(tmp_path)
    try:
        for op in SCHEDULE[:cut]:
            _run(b, op)
        b.kill9()
        b.boot()                          # restarted on the same journal
        b.settle()                        # pending alarms restored and re-published
        for _ in range(3):                # the device re-sends what it still holds
            b.resend_all()
            b.settle()
        for op in SCHEDULE[cut:]:         # ...and the rest of the burst happens after the restart
            if op == "press":
                b.press()
        b.settle()
        b.resend_all()
        b.settle()
        assert b.device.unsafe_acks == [], "device ACKed for events neither journaled nor at the broker"
        assert b.device.queue == {}, f"device still holds {sorted(b.device.queue)}"
        missing = set(b.device.pressed) - b.at_platform()
        assert not missing, f"lost at crash point {cut}: {sorted(missing)}"
        assert len(b.device.pressed) == SCHEDULE.count("press")
    finally:
        b.close()


def test_kill9_twice_during_recovery_loses_nothing(tmp_path):
    """A second power cut while the first restart re-publishes and re-acks the backlog."""
    b = Bench(tmp_path)
    try:
        for op in ["press", "press", "press", "commit"]:
            _run(b, op)
        b.kill9()
        b.boot()
        b.resend_all()                    # re-sent frames: ACK DUPLICATE (journaled) / re-emitted
        b.dispatch()
        b.kill9()                         # before the restored alarms were PUBACKed
        b.boot()
        for _ in range(3):
            b.settle()
            b.resend_all()
        b.settle()
        assert b.device.unsafe_acks == [] and b.device.queue == {}
        assert set(b.device.pressed) <= b.at_platform()
    finally:
        b.close()


def test_broken_disk_still_forwards_alarms_and_acks_only_after_the_broker_has_them(tmp_path):
    """Every journal write fails (SD card broken): ingress still accepts the alarm frame (its replay
    window stays in memory), the forwarder publishes it, and the device is ACKed only after PUBACK."""
    import sqlite3 as _sq

    b = Bench(tmp_path)
    try:
        def disk_error() -> None:
            raise _sq.OperationalError("disk I/O error")
        b.rt.journal._before_commit = disk_error
        b.press()
        b.commit()
        b.dispatch()
        assert b.device.queue and b.pub.unacked(), "the alarm was not published while the disk is broken"
        b.settle()
        assert b.device.queue == {} and b.device.unsafe_acks == []
        assert set(b.device.pressed) <= b.at_platform() and b.rt.writer.state_failures >= 1
    finally:
        b.rt.journal._before_commit = None
        b.close()


def test_no_ack_for_an_alarm_that_is_neither_journaled_nor_at_the_broker(tmp_path):
    """Double fault: the journal cannot write and the broker is unreachable. The alarm lives only
    in the gateway's memory, so the device must keep it (no ACK) until one of them has it."""
    import sqlite3 as _sq

    b = Bench(tmp_path)
    try:
        b.pub.set_connected(False)

        def disk_error() -> None:
            raise _sq.OperationalError("disk I/O error")
        b.rt.journal._before_commit = disk_error          # every write transaction fails from now on
        b.press()
        b.settle()
        assert b.device.queue and b.device.unsafe_acks == []
        b.clock.advance(31.0)                              # past ingress' pending window: the re-send is re-emitted
        b.resend_all()
        b.settle()
        assert b.device.unsafe_acks == [], "ACKed an alarm held only in RAM"
    finally:
        b.rt.journal._before_commit = None
        b.close()
