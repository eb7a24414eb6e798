"""The highest release each unit has installed — the downgrade floor (docs/upgrades.md
"Downgrades"): ``<data_dir>/release-floor.json``, ``{"gateway": {"version", "counter"},
"device:<id>": {...}}``, written atomically (fsync, rename) when an update commits or a
sensor's OTA is committed. Outside the journal and the A/B slots, so neither a journal
quarantine nor a slot rollback lowers it. An unreadable file is logged and read as empty:
the running version (and a device's reported firmware) still bound a downgrade.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from contracts.release import Floor, Manifest

log = logging.getLogger("gateway.adapters.upgrade")

FLOOR_FILE = "release-floor.json"


class FloorStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict]:
        try:
            doc = json.loads(self.path.read_text())
            return {k: v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("release floor %s unreadable (%s): only the running versions bound a downgrade", self.path, exc)
            return {}

    def get(self, unit: str) -> Floor:
        d = self._read().get(unit) or {}
        v, c = d.get("version"), d.get("counter")
        return Floor(v if isinstance(v, str) else None, c if isinstance(c, int) and not isinstance(c, bool) else 0)

    def raise_to(self, unit: str, m: Manifest) -> Floor:
        """The unit's floor with ``m`` installed, written durably. Raises OSError."""
        doc = self._read()
        new = self.get(unit).raised(m)
        doc[unit] = {"version": new.version, "counter": new.counter}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return new


def device_unit(device_id: str) -> str:
    return f"device:{device_id}"
