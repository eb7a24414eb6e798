"""kill -9 at random moments never loses an acknowledged event; a real full filesystem."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.adapters.journal import AppendOutcome, SqliteJournal
from gateway.domain.model import Event, EventCode

CHILD = r"""
import sys, time
from gateway.adapters.journal import SqliteJournal, JournalWriter, AppendOutcome
from gateway.domain.model import Event, EventCode
path, rnd = sys.argv[1], int(sys.argv[2])
j = SqliteJournal(path, counter_block=7)
w = JournalWriter(j).start()
out = sys.stdout
def acked(e, r):
    if r.outcome is AppendOutcome.STORED:
        out.write(f"ACK {e.event_id} {r.rowid}\n"); out.flush()
i = 0
while True:
    i += 1
    now = time.time()
    code = EventCode.BUTTON_PRESS if i % 13 == 0 else EventCode.MOTION
    e = Event(event_id=f"r{rnd}-{i:08x}", device_id="a4c1380a1b2c", code=code, occurred_at=now, received_at=now)
    if i % 3 == 0:
        ok = j.append(e)                      # synchronous path: durable on return
        out.write(f"ACK {e.event_id} 0\n"); out.flush()
    else:
        w.submit(e, acked)                    # writer path: callback after the commit
    if i % 17 == 0:
        out.write(f"CTR {j.next_gateway_counter()}\n"); out.flush()
    if i % 50 == 0:
        time.sleep(0.001)
"""


@pytest.mark.slow
def test_kill_minus_9_never_loses_acked_events_or_reuses_ids(tmp_path):
    path = tmp_path / "journal.db"
    rng = random.Random(1234)
    all_acked: set[str] = set()
    counters: list[int] = []
    max_rowid_before = 0
    for rnd in range(6):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(rnd)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()          # it is running and writing
        assert first.startswith(("ACK", "CTR")), proc.stderr.read() if proc.stderr else first
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()                               # SIGKILL at a random moment
        out = first + proc.stdout.read()
        proc.wait(10)
        round_rowids = []
        round_counters = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ACK":
                all_acked.add(parts[1])
                if int(parts[2]):
                    round_rowids.append(int(parts[2]))
            elif len(parts) == 2 and parts[0] == "CTR":
                round_counters.append(int(parts[1]))
        assert round_rowids, "the child acknowledged nothing before the kill"
        assert min(round_rowids) > max_rowid_before, "a rowid was reused after restart"
        if counters and round_counters:
            assert min(round_counters) > max(counters), "a gateway counter was reused after restart"
        counters += round_counters
        j = SqliteJournal(path)
        assert j.recovery is None, f"kill -9 corrupted the journal: {j.recovery}"
        missing = [i for i in all_acked if not j.contains(i)]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        max_rowid_before = j.max_rowid()
        j.close()
    assert len(all_acked) > 200 and len(counters) > 5


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    return r.returncode == 0


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "tiny"
    if not _mount_tmpfs(mnt, "768k"):
        pytest.skip("needs root and tmpfs to mount a real tiny filesystem; "
                    "the injected-ENOSPC tests in test_journal.py/test_uplink_forwarder.py cover the logic")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_filesystem_sheds_telemetry_and_keeps_taking_alarms(tiny_fs):
    j = SqliteJournal(tiny_fs / "j.db", max_telemetry_rows=10**9, max_telemetry_bytes=10**12,
                      reserve_bytes=128 * 1024)
    now = time.time()
    outcomes = []
    i = 0
    while i < 20000:
        i += 1
        e = Event(f"t-{i:08x}", "a4c1380a1b2c", EventCode.MOTION, now, now, data={"pad": "x" * 300})
        (r,) = j.apply([e])
        outcomes.append(r.outcome)
        if r.outcome is AppendOutcome.SHED:
            break
    assert AppendOutcome.SHED in outcomes, "the filesystem never filled up"
    assert j.depth().shed > 0
    alarm_outcomes = []
    for k in range(5):
        a = Event(f"alarm-{k}", "a4c1380a1b2c", EventCode.FALL_DETECTED, now, now)
        (r,) = j.apply([a])
        alarm_outcomes.append(r.outcome)
    # the ballast released at the first ENOSPC plus the shed telemetry make room for alarms
    assert alarm_outcomes == [AppendOutcome.STORED] * 5
    j.close()
    j2 = SqliteJournal(tiny_fs / "j.db", reserve_bytes=128 * 1024)   # healthy after filling the disk
    assert j2.recovery is None and all(j2.contains(f"alarm-{k}") for k in range(5))
