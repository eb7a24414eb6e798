"""How long the journal keeps what, and how it spares the SD card: the retention policy.

Invariant: a row leaves the journal by pruning only when someone else has it —

- telemetry: ``delivered = 1`` (the broker PUBACKed it) and older than
  ``telemetry_retention_s``;
- an alarm: ``delivered = 1`` **and** ``ack IS NOT NULL`` (the platform acknowledged it)
  and older than ``alarm_retention_s``. An undelivered or unacknowledged alarm is never
  removed, whatever its age and whatever the size budget;
- over the size budget (``max_bytes``), in this order and oldest first until the live
  data is back under 80 % of the budget: delivered telemetry of any age, acknowledged
  alarms of any age, then undelivered telemetry (counted in ``depth().shed``, as the
  telemetry bound ``max_telemetry_bytes`` already does). What is left is unacknowledged
  alarms, which may hold the file above its budget until the platform answers.

A pass runs every ``interval_s`` (10 min) on the journal writer thread, one bounded
transaction at a time (``batch_rows`` rows or one incremental-vacuum step); between two
steps the writer commits whatever the event loop queued, so an alarm's commit waits for at
most one step (measured: gateway/tests/test_journal_retention.py and bench/gateway_soak.py
report the longest step). Checkpoints run on their own thread and connection
(``_checkpoint``), never in front of a commit.

Write amplification, and why the policy is what it is (an SD card wears per erase block;
every byte SQLite writes counts, an fsync of a partial block costs a whole program):

- **Commits.** In WAL mode a commit appends one 4 KiB frame per modified page and (with
  ``synchronous=FULL``) fsyncs the WAL. A lone 150-300 byte event touches the table's
  rightmost leaf, the ``event_id`` index and one or two partial indexes: ~4-5 frames,
  16-20 KiB for 0.2 KiB of data (~80x). Group commit (the writer batches everything
  queued during the previous fsync) shares those pages between the batch's events, so the
  factor drops with load. This is the dominant cost and the price of "durable before the
  device's ACK"; the policy below only avoids adding to it.
- **Checkpoints** copy each *distinct* page in the WAL to the database file once and
  fsync it. The hot pages rewritten by every commit are copied once per checkpoint, not
  once per commit, so checkpoints should be rare: one passive checkpoint per
  ``checkpoint_every_commits`` (200) commits or ``checkpoint_every_rows`` (5000) changed
  rows — about the 1000 frames (4 MiB) at which SQLite would checkpoint by itself — and
  one at the end of each maintenance pass (every ``interval_s``), folding the pass's
  deletions into the same copy. They run in the background (``_checkpoint``: a passive
  checkpoint and a writer proceed side by side in WAL mode); the writer connection's own
  ``wal_autocheckpoint`` is only a backstop at 4000 pages (16 MiB). No checkpoint after
  every burst: that would double the writes of a lightly loaded gateway.
- **WAL file.** ``journal_size_limit`` (4 MiB) truncates the ``-wal`` file when it is
  reset after a checkpoint, so one large replay burst does not leave a large file behind
  (truncation is a metadata update, not a data write). File bound: database pages +
  WAL ≤ ``max_bytes`` (the pruner's budget for live pages is ``max_bytes`` minus the
  WAL limit).
- **Pruning** deletes in batches of ``batch_rows`` contiguous old rows: each batch
  rewrites the few leaf pages holding them, not one page per row. A prune transaction
  commits with ``synchronous=NORMAL`` (no fsync of its own): losing it in a power cut
  only means it is redone; the next ``FULL`` commit's fsync (or the checkpoint) makes it
  durable, since the WAL is one sequential file.
- **VACUUM.** A full ``VACUUM`` rewrites the whole file twice (a copy, then through
  the WAL), minutes of writes on a big file: it never runs on the hot path. New journals
  are created with ``auto_vacuum = INCREMENTAL``: freed pages go to the freelist and are
  reused by later inserts at no cost; only when the freelist exceeds
  ``max(vacuum_min_free_bytes, vacuum_free_fraction x file)`` (e.g. after a week's
  outage backlog was delivered and pruned) is the file shrunk, ``vacuum_step_pages``
  (1 MiB) per step, to hand the space back. An existing journal created without
  ``auto_vacuum`` is converted by one ``VACUUM`` at open only when it is at most
  ``migrate_max_bytes`` (8 MiB, well under a second); a larger one is left as it is and
  said so in the log: its freed pages are still reused, and its size stays at the
  high-water mark that the budget bounds anyway.

Memory: SQLite's page cache is private to each connection and duplicates what the
kernel's page cache already holds of the file, so it is capped explicitly — 1 MiB on the
writer connection, 256 KiB on the event loop's read connection (SQLite's default is 2 MiB
each). With the default caches bench/gateway_soak.py showed the gateway's RSS still
creeping up by ~0.3 MB a day after a week, as the growing file filled them; with these
caps it levels off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class RetentionPolicy:
    """Retention, size budget and SQLite housekeeping of one journal (see module doc).

    The first three come from the configuration (:meth:`from_config`); the rest are
    engineering constants with their reasons in the module doc.
    """

    telemetry_retention_s: float = 24 * 3600.0
    alarm_retention_s: float = 30 * 86400.0
    max_bytes: int = 256 * MIB
    interval_s: float = 600.0
    size_probe_s: float = 60.0          # how often the writer checks the size budget between passes
    batch_rows: int = 500
    wal_autocheckpoint_pages: int = 4000      # backstop on the writer connection (16 MiB)
    checkpoint_every_commits: int = 200
    checkpoint_every_rows: int = 5000
    wal_limit_bytes: int = 4 * MIB
    vacuum_min_free_bytes: int = 16 * MIB
    vacuum_free_fraction: float = 0.25
    vacuum_step_pages: int = 256
    migrate_max_bytes: int = 8 * MIB
    cache_kib: int = 1024               # page cache of the writer connection
    read_cache_kib: int = 256           # page cache of the read connection (event loop lookups)

    @property
    def budget_bytes(self) -> int:
        """Live database pages allowed, so that database + WAL stay within ``max_bytes``."""
        return max(self.max_bytes - self.wal_limit_bytes, self.max_bytes // 2)

    @classmethod
    def from_config(cls, section: Any) -> "RetentionPolicy":
        """From the ``[journal]`` section of the gateway configuration (contracts/gateway_config)."""
        return cls(telemetry_retention_s=float(section.telemetry_retention_h) * 3600.0,
                   alarm_retention_s=float(section.alarm_retention_days) * 86400.0,
                   max_bytes=int(float(section.max_mb) * MIB))


@dataclass
class MaintenanceStats:
    """What the maintenance passes did since the journal was opened (``gateway status``)."""

    passes: int = 0
    telemetry_pruned: int = 0
    alarms_pruned: int = 0
    pruned_for_size: int = 0
    shed_for_size: int = 0
    vacuumed_pages: int = 0
    steps: int = 0
    longest_step_ms: float = 0.0       # wall time of the step, including any wait for the GIL
    total_step_ms: float = 0.0
    longest_step_phase: str | None = None
    last_pass_at: float | None = None
    over_budget: bool = False
    auto_vacuum: str = "none"
    errors: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["longest_step_ms"] = round(self.longest_step_ms, 3)
        d["total_step_ms"] = round(self.total_step_ms, 1)
        d["mean_step_ms"] = round(self.total_step_ms / self.steps, 3) if self.steps else 0.0
        return d
