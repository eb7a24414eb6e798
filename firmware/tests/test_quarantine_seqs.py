"""F13 (issue 10): after a journal quarantine old captured frames were accepted again and
the downlink seq restarted at 1 (a device with its flash kept then refused every ACK of
the gateway as a replay and re-sent its alarm for ever).

Now keyed devices' uplink and downlink high-water marks are kept beside the journal
(``<journal>.seqs``, written atomically) and seeded into the fresh journal: a captured old
frame is refused as a replay, the device is answered ERROR 3 and renumbers above the mark,
and the new journal's downlink seqs continue above the old ones. With no saved value at
all (dead SD card), the first downlink block starts from the wall clock.

End to end: the real firmware (MicroPython unix port, hil_tests/fw_runner.py) on a pty
against the real Ingress over a real :class:`SqliteJournal` (the wiring of
test_rekey_ingress)."""
from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from firmware.tests.test_rekey_ingress import DEV, K1, IngressGateway, Store, _device, _wait
from gateway.adapters.journal import SqliteJournal
from gateway.codec import AckStatus, ErrorCode, MsgType, decode_wire
from gateway.domain.device_seqs import clock_seed
from gateway.domain.ingress import Ingress
from gateway.domain.ports import SystemClock
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import TEST_DEVICE, TEST_KEY, event_frame

pytestmark = pytest.mark.security


class JournalStore(Store):
    """Ingress state in a real SqliteJournal (events kept as in Store)."""

    def __init__(self, journal: SqliteJournal) -> None:
        super().__init__()
        self.journal = journal

    def get_state(self, key: str) -> bytes | None:
        return self.journal.get_state(key)

    def set_state(self, key: str, value: bytes) -> None:
        self.journal.set_state(key, value)


def _quarantine(path: Path, journal: SqliteJournal) -> SqliteJournal:
    journal.close()
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    path.write_bytes(b"\x13\x37 not a database " * 300)
    fresh = SqliteJournal(path)
    assert fresh.recovery is not None and fresh.depth().total == 0
    return fresh


def test_F13_quarantined_journal_refuses_old_frames_and_continues_downlink_seqs(tmp_path):
    path = tmp_path / "j.db"
    clock = FakeClock()
    j = SqliteJournal(path)
    ing = Ingress("gw", {TEST_DEVICE: TEST_KEY}, j, clock)
    captured = [event_frame(seq) for seq in range(1, 301)]
    for raw in captured:
        [ev] = ing.feed("l", raw).events
        assert j.append(ev)
        last_dl = decode_wire(ing.ack_frame(ev)).seq
    j2 = _quarantine(path, j)
    ing2 = Ingress("gw", {TEST_DEVICE: TEST_KEY}, j2, clock)
    for raw in (captured[0], captured[150], captured[-1]):   # an attacker replays captured frames
        res = ing2.feed("radio", raw)
        assert not res.events and [r.reason.value for r in res.rejects] == ["replay"]
        [(_, reply)] = res.replies
        err = decode_wire(reply)
        assert err.type is MsgType.ERROR and err.seq > last_dl        # ERROR 3, a fresh downlink seq
        assert err.decode_payload().code is ErrorCode.REPLAY
    highest = int(err.decode_payload().msg.rsplit("highest=", 1)[1])
    assert highest >= 300
    [ev] = ing2.feed("l", event_frame(highest + 1)).events             # the renumbered device
    ack = decode_wire(ing2.ack_frame(ev))
    assert ack.seq > last_dl and ack.decode_payload().status is AckStatus.STORED


def test_F13_dead_sd_card_downlink_seqs_start_from_the_wall_clock(tmp_path):
    clock = FakeClock()
    ing = Ingress("gw", {TEST_DEVICE: TEST_KEY}, SqliteJournal(tmp_path / "new.db"), clock)
    [ev] = ing.feed("l", event_frame(5)).events
    seq = decode_wire(ing.ack_frame(ev)).seq
    assert seq == clock_seed(clock.time()) > 100_000_000     # a fresh journal: not 1
    assert clock_seed(0) == 1 and clock_seed(1_577_836_800 + 10) == 21
    marks = SqliteJournal(tmp_path / "new.db").seq_marks.items()
    assert dict(marks)[f"seq_mark/dl/{TEST_DEVICE}"] > struct.pack("<I", 0)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_F13_real_firmware_after_quarantine_takes_the_new_gateways_ack(tmp_path, micropython_bin):
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    gw = IngressGateway(JournalStore(journal), K1)
    try:
        fw = _device(tmp_path, gw, K1, 2500)
        _wait(lambda: len(gw.stored) == 1 and gw.acks_sent, 40, "first alarm stored and acked", fw)
        time.sleep(0.5)
        fw.stop()
        (old_id, _), = gw.stored
        old_seq = int(old_id.split("-")[1], 16)
        # the SD card's journal is corrupt: quarantined at the restart; the device keeps its flash
        gw.online = False
        time.sleep(0.2)
        journal = _quarantine(path, journal)
        gw.use(JournalStore(journal), K1)
        replay = Ingress("gw", {DEV: bytes.fromhex(K1)}, JournalStore(journal), SystemClock())
        res = replay.feed("radio", event_frame(old_seq, device=DEV, key=bytes.fromhex(K1)))
        gw.online = True
        assert not res.events and [r.reason.value for r in res.rejects] == ["replay"]
        acks_before = len(gw.acks_sent)
        fw = _device(tmp_path, gw, K1, 4000)
        _wait(lambda: len(gw.stored) == 2, 60, "the alarm after the quarantine stored", fw)
        time.sleep(4.0)   # the device would re-send an alarm whose ACK it refused (retry_ms)
        fw.stop()
    finally:
        gw.stop()
        journal.close()
    new_id, code = gw.stored[1]
    assert code == 0x01 and int(new_id.split("-")[1], 16) > old_seq
    after = gw.acks_sent[acks_before:]
    assert len(after) == 1, f"the device refused the new gateway's ACK and re-sent: {gw.acks_sent} {gw.errors}"
