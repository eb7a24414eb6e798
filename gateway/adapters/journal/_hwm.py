"""High-water marks kept beside the journal in a small file written atomically.

They survive a quarantined (corrupt) journal, so gateway event ids are never reused:
the counter is reserved in blocks; the file records the highest reserved value.

:class:`SeqMarks` (``<journal>.seqs``, F13) does the same for device sequence numbers:
every committed state key under ``seq_mark/`` (ingress writes them once per block: a
keyed device's uplink and downlink high-water marks) is mirrored into the file, and a
journal that has no state at all (fresh, or just quarantined) is seeded from it, so replay
windows and downlink seqs restart above everything used before (docs/protocol.md
"Sequence numbers after a lost journal").
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def read_hwm(path: Path) -> int:
    """Highest reserved gateway counter, 0 when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return int(data.get("gateway_counter_reserved", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def write_hwm(path: Path, reserved: int) -> None:
    """Write atomically: temp file, fsync, rename, fsync the directory. Raises OSError."""
    write_atomic(path, json.dumps({"gateway_counter_reserved": int(reserved)}).encode())


def write_atomic(path: Path, payload: bytes) -> None:
    """Temp file, fsync, rename, fsync the directory. Raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


SEQ_MARK_PREFIX = "seq_mark/"


class SeqMarks:
    """``seq_mark/*`` state values kept beside the journal (at most ``max_keys``, the least
    recently changed dropped first). Call from the writer thread (after a commit)."""

    def __init__(self, path: Path, max_keys: int = 4096) -> None:
        self.path = path
        self._max_keys = max_keys
        self._marks: dict[str, bytes] = {}
        self.write_failures = 0
        try:
            data = json.loads(path.read_text())
            self._marks = {str(k): bytes.fromhex(v) for k, v in data.get("marks", {}).items()
                           if str(k).startswith(SEQ_MARK_PREFIX)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.error("sequence marks %s unreadable (%s); device seqs restart from the wall clock", path, exc)

    def items(self) -> list[tuple[str, bytes]]:
        return list(self._marks.items())

    def observe(self, states: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> bool:
        """Committed state values: mirror the ``seq_mark/`` ones (True if the file was written)."""
        changed = False
        for key, value in states:
            if key.startswith(SEQ_MARK_PREFIX) and self._marks.get(key) != bytes(value):
                self._marks.pop(key, None)
                self._marks[key] = bytes(value)
                changed = True
        if not changed:
            return False
        while len(self._marks) > self._max_keys:
            del self._marks[next(iter(self._marks))]
        try:
            write_atomic(self.path, json.dumps({"marks": {k: v.hex() for k, v in self._marks.items()}}).encode())
        except OSError as exc:   # the journal still has them; only a later quarantine would miss them
            self.write_failures += 1
            log.error("sequence marks not written to %s: %s", self.path, exc)
            return False
        return True
