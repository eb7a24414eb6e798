"""High-water marks kept beside the journal in a small file written atomically.

They survive a quarantined (corrupt) journal, so gateway event ids are never reused:
the counter is reserved in blocks; the file records the highest reserved value.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def read_hwm(path: Path) -> int:
    """Highest reserved gateway counter, 0 when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return int(data.get("gateway_counter_reserved", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def write_hwm(path: Path, reserved: int) -> None:
    """Write atomically: temp file, fsync, rename, fsync the directory. Raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    payload = json.dumps({"gateway_counter_reserved": int(reserved)}).encode()
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
