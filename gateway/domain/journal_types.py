"""What the journal port answers (pure values): the outcome of an append, a quarantine
record. The SQLite adapter (gateway.adapters.journal) produces them; the forwarder reads
them without importing sqlite3."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

ACK_STATUSES = ("received", "accepted", "resolved")


class AppendOutcome(enum.Enum):
    STORED = "stored"          # durable now
    DUPLICATE = "duplicate"    # event_id already in the journal; not stored again
    SHED = "shed"              # telemetry dropped because the disk is full (counted in ``shed``)
    FAILED = "failed"          # could not be stored (alarm on a full/broken disk): hold it in memory


@dataclass(frozen=True)
class AppendResult:
    outcome: AppendOutcome
    rowid: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Recovery:
    """The journal file was unreadable at start-up and was moved aside."""

    quarantined_to: Path
    reason: str
    at: float
