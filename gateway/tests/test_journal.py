"""SqliteJournal and JournalWriter: durability contract, bounds, dedup, quarantine, disk full."""
from __future__ import annotations

import errno
import sqlite3
import threading
import time

import pytest

from gateway.adapters.journal import AppendOutcome, JournalError, JournalFull, JournalWriter, SqliteJournal
from gateway.domain.model import Event, EventCode, Role
from gateway.testing.stimuli import device_event

T0 = 1_790_000_000.0


def ev(i: int, code: EventCode = EventCode.MOTION, dev: str = "a4c1380a1b2c", **kw) -> Event:
    return device_event(i, code, T0 + i, device=dev, role=Role.MOTION, data=kw or {"n": i})


def test_append_is_durable_and_deduplicates(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    assert j.append(ev(1)) is True
    assert j.append(ev(1)) is False          # same event_id: not stored again
    assert j.append(ev(2, EventCode.BUTTON_PRESS)) is True
    assert j.contains(ev(1).event_id) and not j.contains("nope")
    j.close()
    j2 = SqliteJournal(tmp_path / "j.db")   # reopened: still there, in order, decoded intact
    rows = j2.undelivered(10)
    assert [e.event_id for _, e in rows] == [ev(1).event_id, ev(2).event_id]
    assert rows[0][1] == ev(1) and rows[1][1].code is EventCode.BUTTON_PRESS
    d = j2.depth()
    assert (d.total, d.undelivered, d.alarms_pending, d.shed) == (2, 2, 1, 0)
    assert j2.recovery is None


def test_mark_delivered_and_acknowledged(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    j.apply([ev(i, EventCode.BUTTON_PRESS if i == 3 else EventCode.MOTION) for i in range(1, 6)])
    j.mark_delivered([ev(1).event_id, ev(3).event_id, "unknown"])
    assert [e.seq for _, e in j.undelivered(10)] == [2, 4, 5]
    assert [e.seq for _, e in j.undelivered(10, after_rowid=2)] == [4, 5]
    assert [(e.seq, dl) for _, e, dl in j.pending_alarms()] == [(3, True)]
    j.mark_acknowledged(ev(3).event_id, "received")
    j.mark_acknowledged(ev(3).event_id, "accepted")
    assert j.pending_alarms() == [] and j.ack_status(ev(3).event_id) == "accepted"
    assert j.depth().alarms_pending == 0 and j.depth().undelivered == 3
    with pytest.raises(JournalError, match="not one of"):
        j.mark_acknowledged(ev(3).event_id, "maybe")


def test_telemetry_bounded_oldest_first_alarms_never_evicted(tmp_path):
    j = SqliteJournal(tmp_path / "j.db", max_telemetry_rows=50)
    events = [ev(i, EventCode.FALL_DETECTED if i % 10 == 0 else EventCode.MOTION) for i in range(1, 201)]
    for k in range(0, 200, 7):
        j.apply(events[k:k + 7])
    left = [e.seq for _, e in j.undelivered(1000)]
    alarms = [i for i in range(1, 201) if i % 10 == 0]
    tele = [i for i in left if i % 10]
    assert [i for i in left if i % 10 == 0] == alarms          # every alarm kept
    assert len(tele) == 50 and tele == sorted(tele) and tele[-1] == 199  # newest telemetry kept
    d = j.depth()
    assert d.shed == 180 - 50 and d.total == 70
    j.close()
    assert SqliteJournal(tmp_path / "j.db", max_telemetry_rows=50).depth().shed == 130   # persisted


def test_telemetry_bounded_by_bytes(tmp_path):
    j = SqliteJournal(tmp_path / "j.db", max_telemetry_bytes=20_000)
    for i in range(1, 401):
        j.append(ev(i, blob="x" * 200))
    d = j.depth()
    assert d.shed > 0 and d.total < 100
    assert j.undelivered(1)[0][1].seq == 400 - d.total + 1   # oldest went first


def test_state_kv_survives_reopen(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    assert j.get_state("downlink_seq") is None
    j.set_state("downlink_seq", b"\x00\x01")
    j.set_state("downlink_seq", b"\x00\x02")
    j.close()
    assert SqliteJournal(tmp_path / "j.db").get_state("downlink_seq") == b"\x00\x02"


def test_gateway_counter_never_reused_across_restarts(tmp_path):
    seen: list[int] = []
    for _ in range(3):
        j = SqliteJournal(tmp_path / "j.db", counter_block=5)
        seen += [j.next_gateway_counter() for _ in range(7)]
        j.close()
    assert len(set(seen)) == len(seen) and seen == sorted(seen)


@pytest.mark.parametrize("damage", ["garbage", "truncated_header"])
def test_corrupt_journal_is_quarantined_not_crash_looping(tmp_path, damage):
    path = tmp_path / "j.db"
    j = SqliteJournal(path, counter_block=10)
    j.apply([ev(i) for i in range(1, 50)])
    used = [j.next_gateway_counter() for _ in range(3)]
    j.close()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"j.db{extra}").unlink(missing_ok=True)
    if damage == "garbage":
        path.write_bytes(b"\x13\x37 not a database " * 300)
    else:
        data = path.read_bytes()
        path.write_bytes(data[:60])   # SQLite header cut in the middle
    j2 = SqliteJournal(path, counter_block=10)
    assert j2.recovery is not None
    assert j2.recovery.quarantined_to.exists() and ".corrupt-" in j2.recovery.quarantined_to.name
    assert j2.depth().total == 0
    assert j2.append(ev(1))                       # fresh journal works
    assert j2.next_gateway_counter() > max(used)  # hwm beside the journal: no id reuse
    j2.close()
    j3 = SqliteJournal(path)                      # and the next start is normal
    assert j3.recovery is None and j3.contains(ev(1).event_id)


def test_writer_group_commits_and_calls_back_in_order(tmp_path):
    syncs = []

    def slow_sync() -> None:          # seam: storage whose fsync takes 20 ms
        syncs.append(1)
        time.sleep(0.02)

    j = SqliteJournal(tmp_path / "j.db", before_commit=slow_sync)
    got: list[tuple[str, AppendOutcome, str]] = []
    done = threading.Event()
    w = JournalWriter(j).start()
    for i in range(1, 301):
        w.submit(ev(i), lambda e, r: got.append((e.event_id, r.outcome, threading.current_thread().name)))
    w.submit(ev(5), lambda e, r: got.append((e.event_id, r.outcome, "dup")))
    w.call(lambda jj: jj.depth().total, lambda total: (got.append(("total", total, "")), done.set()))
    assert done.wait(20)
    w.stop()
    assert [g[0] for g in got[:300]] == [ev(i).event_id for i in range(1, 301)]
    assert all(g[1] is AppendOutcome.STORED for g in got[:300])
    assert got[300][:2] == (ev(5).event_id, AppendOutcome.DUPLICATE)
    assert got[301][:2] == ("total", 300)
    assert len(syncs) < 60, f"{len(syncs)} commits for 301 appends: no group commit"
    assert got[0][2] == "journal-writer"


def test_writer_dispatches_callbacks_through_injected_dispatcher(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    queued: list = []
    w = JournalWriter(j, dispatch=queued.append)
    w.submit(ev(1), lambda e, r: queued.append(("cb", r.outcome)))
    assert w.run_pending() == 1
    assert len(queued) == 1 and callable(queued[0])    # not run until the loop runs it
    queued.pop(0)()
    assert queued == [("cb", AppendOutcome.STORED)]


def test_disk_full_seam_sheds_telemetry_keeps_alarms(tmp_path):
    failures = {"n": 1}

    def full_once() -> None:
        if failures["n"]:
            failures["n"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")

    j = SqliteJournal(tmp_path / "j.db", before_commit=full_once)
    batch = [ev(1), ev(2, EventCode.BUTTON_PRESS), ev(3)]
    res = j.apply(batch)
    assert [r.outcome for r in res] == [AppendOutcome.SHED, AppendOutcome.STORED, AppendOutcome.SHED]
    assert j.depth().shed == 2 and j.contains(ev(2).event_id) and not j.contains(ev(1).event_id)


def test_disk_full_for_alarms_reports_failed_and_append_raises(tmp_path):
    def always_full() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    j = SqliteJournal(tmp_path / "j.db", before_commit=always_full)
    (r,) = j.apply([ev(1, EventCode.FALL_DETECTED)])
    assert r.outcome is AppendOutcome.FAILED and "full" in (r.error or "")
    with pytest.raises(JournalFull):
        j.append(ev(2, EventCode.FALL_DETECTED))
    with pytest.raises(JournalFull):
        j.set_state("k", b"v")


def test_rejects_bad_settings_with_a_fix(tmp_path):
    with pytest.raises(JournalError, match="use 'FULL' or 'NORMAL'"):
        SqliteJournal(tmp_path / "j.db", synchronous="OFF")


def test_reads_do_not_wait_for_a_slow_commit(tmp_path):
    gate = threading.Event()
    entered = threading.Event()
    armed = threading.Event()

    def slow() -> None:             # once armed, a commit is stuck "in fsync" until released
        if armed.is_set():
            entered.set()
            gate.wait(5)

    j = SqliteJournal(tmp_path / "j.db", before_commit=slow)
    j.append(ev(1))
    j.set_state("k", b"v1")
    armed.set()
    w = JournalWriter(j).start()
    try:
        w.submit(ev(2))
        assert entered.wait(5)
        t0 = time.monotonic()
        assert j.contains(ev(1).event_id) and not j.contains(ev(2).event_id)   # committed state only
        assert j.get_state("k") == b"v1"
        assert time.monotonic() - t0 < 0.5, "reads waited for the commit"
        w.set_state("k", b"v2")
        assert w.get_state("k") == b"v2"            # read-your-writes before the commit
        assert j.get_state("k") == b"v1"
    finally:
        gate.set()
        w.stop()
    assert j.contains(ev(2).event_id) and j.get_state("k") == b"v2"


def test_writer_state_writes_survive_a_failed_batch(tmp_path):
    fail = {"on": True}

    def maybe_full() -> None:
        if fail["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    j = SqliteJournal(tmp_path / "j.db", before_commit=maybe_full)
    w = JournalWriter(j)
    w.set_state("seq", b"\x01")
    w.run_pending()
    assert w.get_state("seq") == b"\x01" and j.get_state("seq") is None   # kept pending
    fail["on"] = False
    w.mark_delivered(["nothing"])                  # any later batch carries the retry
    w.run_pending()
    assert j.get_state("seq") == b"\x01"
