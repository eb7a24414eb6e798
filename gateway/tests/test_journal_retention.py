"""Journal housekeeping for long runs: retention pruning, size budget, checkpoint/vacuum policy.

The invariant under test: pruning never removes an alarm before the broker has it
(``delivered``) AND the platform acknowledged it; it removes what is due, and keeps the
file within its budget under sustained load (gateway/adapters/journal/_retention.py).
"""
from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapters.journal import JournalWriter, RetentionPolicy, SqliteJournal
from gateway.adapters.journal._maintenance import PRUNABLE, Phase
from gateway.adapters.journal._open import SCHEMA
from gateway.domain.model import Event, EventCode, Role
from gateway.testing.clock import FakeClock
from gateway.testing.stimuli import device_event

HOUR = 3600.0
DAY = 86400.0
KIB = 1 << 10
MIB = 1 << 20


def ev(i: int, alarm: bool = False, blob: int = 40) -> Event:
    if alarm:
        return device_event(i, EventCode.BUTTON_PRESS, device="a4c1380a1b2c", role=Role.BUTTON)
    return device_event(i, EventCode.MOTION, device="a4c1380a1b2c", role=Role.MOTION, data={"x": "m" * blob})


def sql_counts(j: SqliteJournal) -> tuple[int, int, int, int, int]:
    c = j._c
    q = lambda s: c.execute(s).fetchone()  # noqa: E731
    tele = q("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE alarm = 0")
    return (q("SELECT COUNT(*) FROM events")[0], q("SELECT COUNT(*) FROM events WHERE delivered = 0")[0],
            q("SELECT COUNT(*) FROM events WHERE alarm = 1 AND ack IS NULL")[0], tele[0], tele[1])


def kept_counts(j: SqliteJournal) -> tuple[int, int, int, int, int]:
    k = j._counts
    return k.total, k.undelivered, k.alarms_pending, k.tele_rows, k.tele_bytes


def file_bytes(path: Path) -> int:
    return sum(os.stat(str(path) + s).st_size for s in ("", "-wal") if os.path.exists(str(path) + s))


# ---------------------------------------------------------------------------- what is due
def test_prunes_delivered_telemetry_after_its_retention_only(tmp_path):
    clock = FakeClock()
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=RetentionPolicy(telemetry_retention_s=24 * HOUR))
    j.apply([ev(i) for i in range(1, 11)])                       # day 0: 10 telemetry
    j.mark_delivered([ev(i).event_id for i in range(1, 9)])      # 8 delivered, 2 still waiting
    clock.advance(23 * HOUR)
    j.apply([ev(i) for i in range(11, 16)], delivered=[ev(i).event_id for i in range(11, 16)])
    j.run_maintenance()
    assert j.depth().total == 15                                 # nothing is 24 h old yet
    clock.advance(2 * HOUR)                                      # the first 10 are 25 h old
    j.run_maintenance()
    assert [i for i in range(1, 16) if j.contains(ev(i).event_id)] == [9, 10, 11, 12, 13, 14, 15]
    assert j.maintenance_stats()["telemetry_pruned"] == 8
    assert kept_counts(j) == sql_counts(j)
    assert j.depth().shed == 0                                   # pruning delivered rows is not shedding


def test_alarm_pruned_only_when_delivered_and_acknowledged_and_past_retention(tmp_path):
    clock = FakeClock()
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=RetentionPolicy(alarm_retention_s=30 * DAY))
    a = {name: ev(n, alarm=True) for n, name in enumerate(["acked", "delivered_only", "acked_not_delivered",
                                                          "neither", "young"], start=1)}
    j.apply([a[k] for k in ("acked", "delivered_only", "acked_not_delivered", "neither")])
    j.apply(delivered=[a["acked"].event_id, a["delivered_only"].event_id],
            acks=[(a["acked"].event_id, "received"), (a["acked_not_delivered"].event_id, "accepted")])
    clock.advance(20 * DAY)
    j.apply([a["young"]], delivered=[a["young"].event_id], acks=[(a["young"].event_id, "received")])
    clock.advance(10 * DAY + 1)
    j.run_maintenance()
    left = {k for k, e in a.items() if j.contains(e.event_id)}
    assert left == {"delivered_only", "acked_not_delivered", "neither", "young"}
    clock.advance(365 * DAY)                                      # a year later: still never without both
    j.run_maintenance()
    assert {k for k, e in a.items() if j.contains(e.event_id)} == {"delivered_only", "acked_not_delivered", "neither"}
    assert j.depth().alarms_pending == 2 and kept_counts(j) == sql_counts(j)


def test_only_delivered_and_acknowledged_conditions_can_match_an_alarm():
    # the table of prunable rows, read as a contract: a phase that may match alarm = 1
    # names both conditions; the undelivered phase is telemetry only
    for phase, where in PRUNABLE.items():
        if "alarm = 0" in where:
            continue
        assert "alarm = 1" in where and "delivered = 1" in where and "ack IS NOT NULL" in where, phase
    assert "alarm = 0" in PRUNABLE[Phase.SIZE_UNDELIVERED]


# ------------------------------------------------------------------ the property
ROUNDS = st.lists(st.tuples(
    st.lists(st.tuples(st.booleans(), st.integers(10, 600)), max_size=12),       # appends: (alarm, body size)
    st.lists(st.integers(0, 10 ** 6), max_size=8),                               # deliver (index into ids)
    st.lists(st.integers(0, 10 ** 6), max_size=8),                               # platform ack (index)
    st.sampled_from([0.0, 60.0, HOUR, 13 * HOUR, DAY, 3 * DAY]),                 # time passes
    st.sampled_from(["none", "step", "steps", "pass"]),                          # housekeeping
), min_size=1, max_size=15)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=ROUNDS, tiny_budget=st.booleans(), batch=st.sampled_from([1, 3, 500]))
def test_pruning_never_removes_an_undelivered_or_unacknowledged_alarm(rounds, tiny_budget, batch):
    """Random rounds of append / deliver / ack / clock advance / housekeeping (one step, a
    few steps, or a whole pass), with a retention of 1 day (telemetry) and 2 days (alarms),
    batches of 1-500 rows and, in half the runs, a size budget so small that every size
    phase runs (undelivered telemetry is shed then). Always: an alarm without delivered
    AND ack is in the journal, and the journal's running counts equal what SQL counts.
    With a roomy budget, undelivered telemetry is kept too, and a whole pass leaves
    exactly the rows that are not due."""
    clock = FakeClock()
    policy = RetentionPolicy(telemetry_retention_s=DAY, alarm_retention_s=2 * DAY, batch_rows=batch,
                             max_bytes=(72 * KIB if tiny_budget else 64 * MIB), wal_limit_bytes=16 * KIB)
    with tempfile.TemporaryDirectory() as d:
        j = SqliteJournal(Path(d) / "j.db", clock=clock, retention=policy, synchronous="NORMAL", reserve_bytes=0)
        model: dict[str, dict] = {}
        ids: list[str] = []
        for appends, deliver, ack, advance, housekeeping in rounds:
            events = [ev(len(ids) + k + 1, alarm=alarm, blob=blob) for k, (alarm, blob) in enumerate(appends)]
            j.apply(events)
            for e in events:
                ids.append(e.event_id)
                model[e.event_id] = {"alarm": e.is_alarm, "delivered": False, "ack": False, "at": clock.time()}
            if ids:
                delivered = [ids[i % len(ids)] for i in deliver]
                j.mark_delivered(delivered)
                for eid in delivered:
                    model[eid]["delivered"] = True
                for eid in (ids[i % len(ids)] for i in ack):
                    j.mark_acknowledged(eid, "received")
                    model[eid]["ack"] = model[eid]["alarm"]     # the journal records acks of alarms only
            clock.advance(advance)
            if housekeeping in ("step", "steps"):
                for _ in range(1 if housekeeping == "step" else 5):
                    j.maintain_step(force=True)
            elif housekeeping == "pass":
                while j.maintain_step():                        # finish a pass under way first
                    pass
                j.run_maintenance()
                if not tiny_budget:
                    now = clock.time()
                    for eid, m in model.items():
                        retention = policy.alarm_retention_s if m["alarm"] else policy.telemetry_retention_s
                        due = m["delivered"] and (m["ack"] or not m["alarm"]) and m["at"] < now - retention
                        assert j.contains(eid) == (not due), (eid, m)
            for eid, m in model.items():
                if m["alarm"] and not (m["delivered"] and m["ack"]):
                    assert j.contains(eid), (eid, m)
                if not tiny_budget and not m["delivered"]:
                    assert j.contains(eid), (eid, m)
            assert kept_counts(j) == sql_counts(j)
        j.close()


# -------------------------------------------------------------------------- size budget
def test_journal_stays_within_its_size_budget_under_sustained_load(tmp_path):
    """A simulated day of 40 events a minute (300-byte telemetry, an alarm in 50, all
    delivered, alarms acked a minute later): ~6 times the budget passes through. Retention
    is long, so only the budget prunes; the database + WAL never exceed max_bytes after a
    pass, and no alarm waiting for its ack is removed."""
    clock = FakeClock()
    policy = RetentionPolicy(telemetry_retention_s=30 * DAY, alarm_retention_s=30 * DAY, max_bytes=6 * MIB,
                             wal_limit_bytes=1 * MIB, wal_autocheckpoint_pages=128, interval_s=600.0)
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=policy, synchronous="NORMAL")
    seq = 0
    pending_ack: list[str] = []
    worst = 0
    for minute in range(24 * 60):
        batch = []
        for _ in range(40):
            seq += 1
            batch.append(ev(seq, alarm=seq % 50 == 0, blob=300))
        j.apply(batch, delivered=[e.event_id for e in batch],
                acks=[(eid, "received") for eid in pending_ack])
        pending_ack = [e.event_id for e in batch if e.is_alarm]   # acked one minute later
        clock.advance(60)
        while j.maintain_step():
            pass
        if minute % 10 == 9:             # a pass ran and asked for a checkpoint: as its thread would
            j.checkpointer.run_now()
            worst = max(worst, file_bytes(j.path))
    for eid in pending_ack:
        assert j.contains(eid)                                    # unacknowledged: kept
    stats = j.maintenance_stats()
    assert seq == 57_600 and stats["pruned_for_size"] > 40_000
    assert worst <= policy.max_bytes, (worst, stats)
    assert stats["live_bytes"] <= policy.budget_bytes and not stats["over_budget"]
    assert kept_counts(j) == sql_counts(j)
    j.close()


def test_over_budget_with_only_unacknowledged_alarms_keeps_them_and_says_so(tmp_path, caplog):
    clock = FakeClock()
    policy = RetentionPolicy(max_bytes=96 * KIB, wal_limit_bytes=16 * KIB)
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=policy)
    alarms = [ev(i, alarm=True) for i in range(1, 801)]
    j.apply(alarms, delivered=[e.event_id for e in alarms])      # PUBACKed, never acknowledged
    j.apply([ev(i) for i in range(801, 1001)])                   # undelivered telemetry: shed for size
    j.run_maintenance()
    assert all(j.contains(e.event_id) for e in alarms)
    s = j.maintenance_stats()
    assert s["over_budget"] and s["shed_for_size"] == 200 and j.depth().shed == 200
    assert "over its size budget" in caplog.text and "unacknowledged alarms" in caplog.text


# --------------------------------------------------------------- checkpoint / vacuum policy
def test_pragmas_of_the_checkpoint_policy(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    c = j._c
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2               # INCREMENTAL on a new file
    assert c.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 4000     # backstop only (16 MiB)
    assert c.execute("PRAGMA journal_size_limit").fetchone()[0] == 4 * MIB  # WAL truncated after reset
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2               # FULL
    assert c.execute("PRAGMA cache_size").fetchone()[0] == -1024            # 1 MiB, not a growing 2 MiB
    assert j._rconn.execute("PRAGMA cache_size").fetchone()[0] == -256
    j.apply([ev(i) for i in range(1, 50)], delivered=[ev(i).event_id for i in range(1, 50)])
    steps = j.run_maintenance()
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2               # restored after the prune steps
    deadline = time.monotonic() + 10                                        # the pass asked for a checkpoint
    while j.maintenance_stats()["checkpoints"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    s = j.maintenance_stats()
    assert s["checkpoints"] == 1 and s["passes"] == 1 and steps >= 4 and s["auto_vacuum"] == "incremental"
    j.close()


def test_checkpoints_run_on_their_own_thread_beside_commits(tmp_path):
    """Every 200 commits the journal asks the background checkpointer; it checkpoints on
    its own connection while commits go on (no commit waits for the copy and its fsync)."""
    j = SqliteJournal(tmp_path / "j.db", retention=RetentionPolicy(checkpoint_every_commits=200))
    for i in range(1, 200):
        j.apply([ev(i)])
    assert j.checkpointer.checkpoints == 0 and j.checkpointer._thread is None
    j.apply([ev(200)])                                                      # the 200th commit
    assert j.checkpointer._thread is not None and j.checkpointer._thread.name == "journal-checkpoint"
    stop = threading.Event()

    def hammer() -> None:                                                   # checkpoints back to back
        while not stop.is_set():
            j.checkpointer.run_now()
    t = threading.Thread(target=hammer)
    t.start()
    try:
        for i in range(201, 401):                                           # ... while commits go on
            assert j.append(ev(i))
    finally:
        stop.set()
        t.join()
    s = j.maintenance_stats()
    assert s["checkpoints"] >= 2 and s["checkpoint_errors"] == 0 and j.depth().total == 400
    busy, log_frames, done = j.checkpointer.run_now()
    assert busy == 0 and done == log_frames                                  # a quiet moment: fully copied
    thread = j.checkpointer._thread
    j.close()
    assert thread is not None and not thread.is_alive()                     # close() ends it


def _legacy_journal(path: Path, rows: int) -> None:
    """A journal file as the first build created it: no auto_vacuum."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.close()
    old = SqliteJournal(path, reserve_bytes=0, retention=RetentionPolicy(migrate_max_bytes=0))
    old.apply([ev(i, blob=400) for i in range(1, rows + 1)])
    old.close()


@pytest.mark.parametrize("rows,converted", [(200, True), (6000, False)])
def test_an_existing_journal_is_converted_to_incremental_vacuum_only_when_small(tmp_path, rows, converted, caplog):
    caplog.set_level(logging.INFO, logger="gateway.adapters.journal")
    path = tmp_path / "j.db"
    _legacy_journal(path, rows)
    assert sqlite3.connect(str(path)).execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    j = SqliteJournal(path, retention=RetentionPolicy(migrate_max_bytes=1 * MIB))
    assert j.maintenance_stats()["auto_vacuum"] == ("incremental" if converted else "none")
    assert j.depth().total == rows and j.contains(ev(rows).event_id)      # nothing lost either way
    assert ("converted to incremental vacuum" if converted else "left as it is") in caplog.text


def test_incremental_vacuum_hands_space_back_after_a_large_deletion(tmp_path):
    clock = FakeClock()
    policy = RetentionPolicy(telemetry_retention_s=HOUR, vacuum_min_free_bytes=1 * MIB, vacuum_step_pages=64)
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=policy, synchronous="NORMAL")
    for k in range(0, 20_000, 1000):                              # an outage backlog, then delivered
        batch = [ev(i, blob=300) for i in range(k + 1, k + 1001)]
        j.apply(batch, delivered=[e.event_id for e in batch])
    big = j.maintenance_stats()["file_bytes"]
    clock.advance(2 * HOUR)
    steps = j.run_maintenance()
    s = j.maintenance_stats()
    assert s["telemetry_pruned"] == 20_000
    assert s["vacuumed_pages"] > 0 and s["file_bytes"] < big / 4
    assert steps > s["vacuumed_pages"] // 64                       # in steps, not one long VACUUM


# ------------------------------------------------------------- the writer thread and alarms
def test_writer_prunes_in_small_steps_and_an_alarm_commit_waits_at_most_one(tmp_path):
    """50 000 delivered telemetry rows due for pruning; while the writer thread works
    through them, alarms are submitted: each commit comes back quickly (it waits for one
    step, not the pass), every step deletes at most batch_rows, and the longest step is
    reported (printed for the note)."""
    clock = FakeClock()
    policy = RetentionPolicy(telemetry_retention_s=HOUR, batch_rows=500, interval_s=600.0)
    j = SqliteJournal(tmp_path / "j.db", clock=clock, retention=policy)
    for k in range(0, 50_000, 5000):
        batch = [ev(i, blob=200) for i in range(k + 1, k + 5001)]
        j.apply(batch, delivered=[e.event_id for e in batch])
    clock.advance(2 * HOUR)                                       # all due, and a pass is due
    w = JournalWriter(j, maintenance_poll_s=0.01).start()
    latencies: list[float] = []
    done = threading.Event()
    try:
        deadline = time.monotonic() + 60
        n = 0
        while j.maintenance_stats()["passes"] == 0 and time.monotonic() < deadline:
            n += 1
            t0 = time.perf_counter()
            got = threading.Event()
            w.submit(ev(100_000 + n, alarm=True), lambda e, r: got.set())
            assert got.wait(10)
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.005)
        done.set()
    finally:
        w.stop()
    s = j.maintenance_stats()
    assert s["telemetry_pruned"] == 50_000 and s["passes"] >= 1
    assert s["steps"] >= 50_000 // 500
    assert all(j.contains(ev(100_000 + i, alarm=True).event_id) for i in range(1, n + 1))
    print(f"\nprune of 50000 rows: {s['steps']} steps, longest {s['longest_step_ms']:.1f} ms; "
          f"{len(latencies)} alarm commits during the pass: max {max(latencies):.1f} ms")
    # generous on a shared 2-core box: a whole pass would take seconds
    assert s["longest_step_ms"] < 500 and max(latencies) < 1000


# ---------------------------------------------------------------------------------- config
def test_journal_keys_map_to_the_policy_and_bad_values_name_key_value_and_fix():
    from gateway.config import ConfigError, load_config

    cfg = load_config(None, env={}, overrides={"journal": {"telemetry_retention_h": 48, "alarm_retention_days": 90,
                                                           "max_mb": 64}})
    p = RetentionPolicy.from_config(cfg.journal)
    assert (p.telemetry_retention_s, p.alarm_retention_s, p.max_bytes) == (48 * HOUR, 90 * DAY, 64 * MIB)
    d = RetentionPolicy.from_config(load_config(None, env={}).journal)
    assert (d.telemetry_retention_s, d.alarm_retention_s, d.max_bytes) == (24 * HOUR, 30 * DAY, 256 * MIB)
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"journal": {"telemetry_retention_h": 0, "alarm_retention_days": 0.5,
                                                         "max_mb": 8}})
    text = str(ei.value)
    assert "journal.telemetry_retention_h = 0: must be ≥ 1 h; set e.g. telemetry_retention_h = 24" in text
    assert "journal.alarm_retention_days = 0.5: must be ≥ 1 day; set e.g. alarm_retention_days = 30" in text
    assert "journal.max_mb = 8: must be ≥ 16 MB; set e.g. max_mb = 256" in text
