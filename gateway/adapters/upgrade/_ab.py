"""Gateway software A/B slots (``update``, docs/upgrades.md).

Layout under ``slots_dir``::

    a/ b/               one release each: the artifact, release.json (the signed manifest)
    current -> a        symlink the service manager starts the gateway from
    state.json          {"active", "version", "pending", "previous", "results": {cmd_id: [status, detail]}}

Steps: write the verified artifact into the inactive slot (fsynced) → ``installed``;
switch ``current`` to it atomically and mark it pending → ``rebooted``; run the health
check until it passes or the deadline expires → make the slot permanent (``committed``)
or switch back to the old slot (``error``, ``rolled_back``). state.json and the symlink
are replaced atomically (rename), so a power cut at any point leaves either the old or
the new slot current and, with ``pending`` set, :meth:`SlotStore.recover` rolls an
unconfirmed switch back at the next start.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.adapters.upgrade._errors import UpgradeError
from gateway.adapters.upgrade._manifest import SignedRelease


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SlotStore:
    def __init__(self, slots_dir: str | Path, running_version: str) -> None:
        self.dir = Path(slots_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._state_path = self.dir / "state.json"
        self.state: dict[str, Any] = self._load()
        if not self.state:
            self.state = {"active": "a", "version": running_version, "pending": None, "previous": None, "results": {}}
            (self.dir / "a").mkdir(exist_ok=True)
            self._point("a")
            self._save()

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self._state_path.read_text())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        _write_atomic(self._state_path, json.dumps(self.state, sort_keys=True).encode())

    def _point(self, slot: str) -> None:
        tmp = self.dir / "current.tmp"
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        os.symlink(slot, tmp)
        os.replace(tmp, self.dir / "current")
        _fsync_dir(self.dir)

    @property
    def active(self) -> str:
        return str(self.state["active"])

    @property
    def version(self) -> str:
        return str(self.state["version"])

    @property
    def current(self) -> str:
        return os.readlink(self.dir / "current")

    def inactive(self) -> str:
        return "b" if self.active == "a" else "a"

    def result(self, cmd_id: str) -> tuple[str, dict[str, Any]] | None:
        r = self.state.get("results", {}).get(cmd_id)
        return (r[0], r[1]) if r else None

    def remember(self, cmd_id: str, status: str, detail: dict[str, Any]) -> None:
        results = self.state.setdefault("results", {})
        results[cmd_id] = [status, detail]
        while len(results) > 64:
            results.pop(next(iter(results)))
        self._save()

    def stage(self, signed: SignedRelease, artifact: bytes) -> Path:
        slot = self.dir / self.inactive()
        if slot.exists():
            for p in sorted(slot.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
        slot.mkdir(exist_ok=True)
        name = Path(signed.manifest.artifact).name or "artifact"
        try:
            _write_atomic(slot / name, artifact)
            m = signed.manifest
            _write_atomic(slot / "release.json", json.dumps({"target": m.target, "version": m.version,
                                                             "artifact": name, "size": m.size, "sha256": m.sha256,
                                                             "key_id": signed.key_id}).encode())
        except OSError as exc:
            raise UpgradeError(f"cannot write slot {slot}: {exc.strerror}", reason="install_failed",
                               phase="install") from None
        return slot

    def switch(self, version: str) -> None:
        slot = self.inactive()
        self.state.update(pending=slot, pending_version=version)
        self._save()
        self._point(slot)

    def commit(self) -> None:
        slot = self.state.get("pending")
        if not slot:
            return
        self.state.update(previous={"slot": self.active, "version": self.version}, active=slot,
                          version=self.state.get("pending_version"), pending=None, pending_version=None)
        self._save()

    def rollback(self) -> None:
        """Back to the active (old) slot; the pending one is abandoned."""
        self._point(self.active)
        self.state.update(pending=None, pending_version=None)
        self._save()

    def recover(self) -> bool:
        """At start: a switch that was never confirmed is rolled back. True if it was."""
        if self.state.get("pending"):
            self.rollback()
            return True
        return False
