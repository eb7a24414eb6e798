"""Gateway software A/B slots as the daemon sees them (``update``, docs/upgrades.md).

Layout under ``slots_dir`` (the launcher, gateway/launch.py, owns the format; this module
uses its functions so both sides read and write the same state)::

    a/ b/            one release each: app/gateway, app/contracts, VERSION, release.json
    current -> a     the slot the launcher started last
    state.json       active/version/previous, pending (an uncommitted switch), results

The daemon's steps of an update, each durable before the next (fsync + rename):

1. :meth:`SlotStore.install`: the artifact is validated in memory (``_bundle.inspect``:
   no traversal, no links or devices, size caps, VERSION = the signed version) — a bad
   one is refused before anything is written — then unpacked into ``.<slot>.new``, checked
   (``app/gateway`` imports in a separate interpreter and reports the signed version),
   and renamed into the inactive slot. A full disk or any error removes the temporary
   directory and leaves the running slot untouched.
2. :meth:`SlotStore.switch`: ``pending`` (slot, version, the update's cmd_id, deadline,
   ``attempts: 0``) written, then ``current`` pointed at the new slot; the daemon exits
   with :data:`EXIT_RESTART` and the launcher starts the pending slot (one attempt).
3. In the new process: :meth:`mark_running` once it is up, :meth:`commit` once the uplink
   reconnected and its health was acknowledged, or :meth:`rollback` when the deadline
   passed (then exit :data:`EXIT_RESTART` again). If it dies first, the launcher rolls
   back at the next start and says why (gateway/launch.py).

A power cut at any step leaves a state the launcher resolves to a working slot. ``fault``
(tests only) is called with the name of each step just after it is durable.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from gateway import launch as _launch
from gateway.adapters.upgrade._bundle import Opener, inspect, is_no_space, unpack
from gateway.adapters.upgrade._errors import UpgradeError
from gateway.adapters.upgrade._manifest import SignedRelease

EXIT_RESTART = _launch.EXIT_RESTART
log = logging.getLogger("gateway.adapters.upgrade")

Fault = Callable[[str], None]
IMPORT_CHECK = ("import gateway, contracts, gateway.cli; gateway.cli.build_parser(); "
                "print('version=' + gateway.__version__)")


def running_slot(slots_dir: Path, package_file: str | None = None) -> str | None:
    """The slot this process runs from (``<slots>/<slot>/app/gateway``), None when it does
    not run from a slot (a source checkout, a test)."""
    if package_file is None:
        import gateway

        package_file = gateway.__file__
    if not package_file:
        return None
    try:
        app = Path(package_file).resolve().parent.parent
        root = slots_dir.resolve()
    except OSError:
        return None
    slot = app.parent
    if app.name == "app" and slot.parent == root and slot.name in _launch.SLOTS:
        return slot.name
    return None


def check_importable(app_dir: Path, version: str, *, slots_dir: Path, timeout_s: float = 120.0) -> None:
    """``app/gateway`` imports in a fresh interpreter with only this app first on the path and
    says ``version``. Raises UpgradeError (reason ``broken_release``)."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = str(slots_dir.resolve())
    keep = [p for p in inherited if not os.path.abspath(p).startswith(root + os.sep)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(app_dir.resolve()), *keep]), PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run([sys.executable, "-P", "-c", IMPORT_CHECK], env=env, cwd=str(app_dir),
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UpgradeError(f"the new release did not import within {timeout_s:g} s", reason="broken_release",
                           phase="install") from None
    lines = proc.stdout.strip().splitlines()
    said = lines[-1][len("version="):] if lines and lines[-1].startswith("version=") else None
    if proc.returncode != 0 or said is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise UpgradeError(f"the new release does not import: {tail}", reason="broken_release", phase="install")
    if said != version:
        raise UpgradeError(f"the new release's gateway package says version {said!r}, the signed manifest "
                           f"{version!r}", reason="broken_release", phase="install")


class SlotStore:
    """The slots directory for the daemon. ``state`` is None when no launcher prepared it
    (the gateway does not run from a slot): then updates are refused."""

    def __init__(self, slots_dir: str | Path, *, fault: Fault | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.dir = Path(slots_dir)
        self._fault = fault or (lambda step: None)
        self._wall = wall
        self.state: dict[str, Any] | None
        self.state, self.problems = _launch.read_state(self.dir)

    # ---- reading ------------------------------------------------------------------------------
    @property
    def managed(self) -> bool:
        return self.state is not None

    @property
    def active(self) -> str:
        return str(self._st()["active"])

    @property
    def version(self) -> str:
        return str(self._st()["version"])

    @property
    def pending(self) -> dict[str, Any] | None:
        return self.state.get("pending") if self.state else None

    @property
    def current(self) -> str | None:
        return _launch.current_target(self.dir)

    def inactive(self) -> str:
        return "b" if self.active == "a" else "a"

    def _st(self) -> dict[str, Any]:
        if self.state is None:
            raise UpgradeError(f"the slots in {self.dir} were not prepared by the launcher; start the gateway with "
                               "python3 /usr/lib/wt-gateway/launch.py (the wt-gateway service) to take updates",
                               reason="not_managed", phase="install")
        return self.state

    def _save(self) -> None:
        _launch.write_state(self.dir, self._st())

    # ---- results of update commands (the launcher adds those of its rollbacks) ------------------
    def result(self, cmd_id: str) -> tuple[str, dict[str, Any]] | None:
        r = (self.state or {}).get("results", {}).get(cmd_id)
        return (str(r[0]), dict(r[1])) if isinstance(r, list) and len(r) == 2 else None

    def remember(self, cmd_id: str, status: str, detail: dict[str, Any], *, unreported: bool = False) -> None:
        if self.state is None:
            return
        _launch.remember_result(self.state, cmd_id, status, detail, unreported=unreported)
        self._save()

    def unreported(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for cid in (self.state or {}).get("unreported", []):
            r = self.result(cid)
            if r is not None:
                out.append((cid, *r))
        return out

    def mark_reported(self, cmd_ids: list[str]) -> None:
        if self.state is None or not cmd_ids:
            return
        self.state["unreported"] = [c for c in self.state.get("unreported", []) if c not in cmd_ids]
        self._save()

    # ---- start-up -------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Temporary directories of an install interrupted by a crash or power cut."""
        for s in _launch.SLOTS:
            for suffix in ("new", "old", "seed"):
                p = self.dir / f".{s}.{suffix}"
                if p.exists():
                    shutil.rmtree(p, ignore_errors=True)
                    log.info("removed %s left by an interrupted install", p)

    def interrupted_install(self) -> dict[str, Any] | None:
        """An install that a restart cut short: its result is stored (error, nothing switched)."""
        st = self.state
        if st is None or not st.get("installing"):
            return None
        inst = st["installing"]
        st["installing"] = None
        detail = {"deployment": inst.get("deployment"), "device": None, "version": inst.get("version"),
                  "phase": "install", "rolled_back": True, "reason": "interrupted",
                  "error": f"interrupted: the gateway restarted while installing {inst.get('version')} into slot "
                           f"{inst.get('slot')}; nothing was switched, {st['version']} keeps running; send the "
                           "update again with a new deployment"}
        _launch.remember_result(st, inst.get("cmd_id"), "error", detail)
        self._save()
        return detail

    # ---- the update steps -------------------------------------------------------------------------
    def install(self, signed: SignedRelease, blob: bytes, *, cmd_id: str, deployment: str | None,
                opener: Opener | None = None) -> str:
        """Validate, unpack, check and place the release in the inactive slot; returns the slot."""
        st = self._st()
        m = signed.manifest
        if st.get("pending"):
            raise UpgradeError(f"gateway {st['pending'].get('version')} is still on trial in slot "
                               f"{st['pending']['slot']}; send the update again once it committed or rolled back",
                               reason="busy", phase="download")
        bundle = inspect(blob, m.version)                       # refused here: nothing written yet
        slot = self.inactive()
        free = _free_bytes(self.dir)
        need = bundle.unpacked_bytes + 4096 * len(bundle.members) + (1 << 20)
        if free is not None and free < need:
            raise UpgradeError(f"no space for the release in {self.dir}: it needs about {need // 1024} KiB, "
                               f"{free // 1024} KiB are free; free some space and send the update again",
                               reason="no_space", phase="install")
        st["installing"] = {"slot": slot, "version": m.version, "cmd_id": cmd_id, "deployment": deployment,
                            "started_at": self._wall()}
        if (st.get("previous") or {}).get("slot") == slot:
            st["previous"] = None                               # about to be overwritten
        self._save()
        self._fault("install.begin")
        tmp = self.dir / f".{slot}.new"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            unpack(blob, bundle, tmp, **({"opener": opener} if opener else {}))
            self._fault("install.unpacked")
            _launch.write_atomic(tmp / "release.json", json.dumps(
                {"target": m.target.value, "version": m.version, "artifact": m.artifact, "size": m.size,
                 "sha256": m.sha256, "security_counter": m.counter, "key_id": signed.key_id,
                 "installed_at": self._wall(),
                 "cmd_id": cmd_id}, sort_keys=True).encode())
            check_importable(tmp / "app", m.version, slots_dir=self.dir)
            self._fault("install.checked")
            old = self.dir / slot
            if old.exists() or old.is_symlink():
                aside = self.dir / f".{slot}.old"
                shutil.rmtree(aside, ignore_errors=True)
                old.rename(aside)
                self._fault("install.old_aside")
                shutil.rmtree(aside, ignore_errors=True)
            tmp.rename(old)
            _launch.fsync_dir(self.dir)
            self._fault("install.placed")
        except (UpgradeError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            st["installing"] = None
            try:
                self._save()
            except OSError as save_exc:      # a full disk may refuse this too: the start-up clears it
                log.warning("could not clear the install mark in %s: %s", self.dir, save_exc)
            if isinstance(exc, UpgradeError):
                raise
            if is_no_space(exc):
                raise UpgradeError(f"no space left in {self.dir} while unpacking {m.version} (needs about "
                                   f"{need // 1024} KiB); the temporary copy was removed, {st['version']} keeps "
                                   "running; free some space and send the update again", reason="no_space",
                                   phase="install") from None
            raise UpgradeError(f"cannot write slot {slot} in {self.dir}: {exc}", reason="install_failed",
                               phase="install") from None
        st["installing"] = None
        self._save()
        self._fault("install.done")
        return slot

    def switch(self, slot: str, version: str, *, cmd_id: str, deployment: str | None, deadline_s: float) -> None:
        """Mark ``slot`` pending (one start attempt) and point ``current`` at it."""
        st = self._st()
        st["pending"] = {"slot": slot, "version": version, "cmd_id": cmd_id, "deployment": deployment,
                         "from_slot": st["active"], "from_version": st["version"], "switched_at": self._wall(),
                         "deadline_s": deadline_s, "attempts": 0, "running_at": None}
        self._save()
        self._fault("switch.pending")
        _launch.point_current(self.dir, slot)
        self._fault("switch.linked")

    def mark_running(self) -> None:
        """The trial process is up (the launcher tells a crash at start from a later death by this)."""
        p = self.pending
        if p is not None:
            p["running_at"] = self._wall()
            self._save()

    def commit(self, detail: dict[str, Any]) -> None:
        """The pending slot becomes the active one; ``detail`` is stored as the update's ``ok`` result."""
        st = self._st()
        p = st.get("pending")
        if not p:
            return
        st.update(previous={"slot": st["active"], "version": st["version"]}, active=p["slot"],
                  version=p["version"], pending=None)
        _launch.remember_result(st, p.get("cmd_id"), "ok", detail)
        self._save()
        self._fault("commit.done")
        _launch.point_current(self.dir, st["active"])

    def rollback(self, reason: str, detail: str = "") -> str:
        """The trial failed (in this process): back to the active slot; the error result stored."""
        return _launch.rollback_pending(self.dir, self._st(), reason, detail, now=self._wall())


def _free_bytes(d: Path) -> int | None:
    try:
        st = os.statvfs(d)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


__all__ = ["EXIT_RESTART", "SlotStore", "check_importable", "running_slot"]
