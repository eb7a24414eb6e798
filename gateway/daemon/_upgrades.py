"""``ota`` and ``update`` commands (wt.cmd/1, docs/upgrades.md) in the running gateway.

:class:`UpgradeController` relays a signed sensor firmware to a device (``ota``: an
:class:`~gateway.domain.ota.OtaSession` over the device's link) and installs a signed
gateway release into the A/B slots (``update``). The decisions live in
gateway.adapters.upgrade (manifest verification, the artifact, the slot store), the
launcher (gateway/launch.py: which slot starts, rollback of a switch that never
committed) and gateway.domain.ota; this wires them to the command topic and ``…/cmd/result``.

``update`` in the running (committed) gateway: verify → ``downloaded`` → unpack, check and
place in the inactive slot → ``installed`` → switch (pending, one start attempt) →
``rebooted`` (acknowledged by the broker) → the process exits with
:data:`~gateway.adapters.upgrade.EXIT_RESTART` and the service manager starts the launcher
again. The new version, started on trial, commits only when the uplink is connected, the
journal opens, the status endpoint answers and its ``wt.health/1`` (with the new version)
was acknowledged within ``upgrades.commit_deadline_s``; then it answers ``ok``/``committed``
for the original ``cmd_id``. Past the deadline it rolls itself back and exits again; if
it dies first, the launcher rolls back at the next start. Either way the old version
answers ``error`` with ``rolled_back: true`` and the reason (stored in state.json, so
the process that runs after the restart publishes it).

Order for both commands (they arrive through the control gate: signed by the fleet):
a repeated ``cmd_id`` gets its stored final result again (nothing re-installed; OTA results
survive a restart in ``<data_dir>/ota-results.json``); the release's signature is checked
against the trusted release keys (``[trust] release_keys`` + ``[upgrades] trusted_keys``);
its target must be this unit (``gateway`` for ``update``, ``fw-<the device's configured
role>`` for ``ota``: ``wrong_target`` / ``wrong_role``); a unit already on the release's
version answers ``ok``/``committed`` with ``already``; a release below the unit's floor —
the highest version and security counter it installed, kept in
``<data_dir>/release-floor.json`` and raised when an update or OTA commits — is refused
(``downgrade``; a rollout rollback, ``args.rollback`` in the fleet's signed command, may go
below the version, never below the security counter). Then the artifact: inline, or
fetched from ``artifact_url`` on a worker thread (https, or a file under
``upgrades.fetch_local_dir``; at most the signed size and ``fetch_max_mb``; within
``fetch_timeout_s``: gateway/adapters/upgrade/_fetch.py) — the event loop and the alarms
never wait for it — and checked against the signed size and SHA-256 before any frame goes
to a device or any byte to a slot.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from pathlib import Path
from typing import Any, Callable

from contracts.payloads import CMD_SCHEMA, encode_cmd_result
from contracts.topics import Topics
from gateway import __version__
from contracts.release import Floor, Manifest, Target, parse_version
from gateway.adapters.upgrade import (EXIT_RESTART, FLOOR_FILE, FloorStore, OtaSession, ResultStore, SignedRelease,
                                      SlotStore, UpgradeError, check_artifact, check_install, check_url, device_unit,
                                      fetch, load_trusted_key, max_fetch_bytes, running_slot, verify_signature)
from gateway.config import UpgradesSection
from gateway.daemon._links import LinkTable
from gateway.daemon._routes import Routes
from gateway.daemon._update_health import UpdateHealthCheck, async_publish_acked
from gateway.domain.devices import DeviceRegistry
from gateway.domain.ingress import Ingress, UplinkMessage
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.adapters.upgrade")

_AUTO = object()
# command results kept in memory for repeats of a command (older ones: the result files)
RESULTS_IN_MEMORY = 256


class UpgradeController:
    """``ota`` (sensor firmware relay) and ``update`` (gateway A/B) commands."""

    def __init__(self, *, gateway_id: str, settings: UpgradesSection, slots_path: Path,
                 is_configured: Callable[[str], bool], ingress: Ingress, links: LinkTable, registry: DeviceRegistry,
                 routes: Routes, health: UpdateHealthCheck, clock: Clock, loop: asyncio.AbstractEventLoop,
                 data_dir: Path | None = None, request_exit: Callable[[int], None] | None = None,
                 slot: Any = _AUTO, trusted_keys: tuple[str, ...] | None = None,
                 device_role: Callable[[str], str | None] | None = None) -> None:
        self.settings = settings            # public: a test shortens the deadline
        self._trusted_keys = tuple(trusted_keys) if trusted_keys is not None else tuple(settings.trusted_keys)
        self._device_role = device_role
        self._slots_path = slots_path
        self._is_configured = is_configured
        self._ingress = ingress
        self._links = links
        self._registry = registry
        self._routes = routes
        self.health = health
        self._clock = clock
        self._loop = loop
        self._request_exit = request_exit
        self._result_topic = Topics(gateway_id).cmd_result
        self.ota_sessions: dict[str, tuple[str, dict[str, Any], OtaSession]] = {}   # device -> (cmd_id, base, s)
        self._results: dict[str, tuple[str, dict[str, Any]]] = {}
        self._ota_results = ResultStore((data_dir or slots_path.parent) / "ota-results.json")
        self.floors = FloorStore((data_dir or slots_path.parent) / FLOOR_FILE)
        self._fetching: dict[str, asyncio.Task[None]] = {}     # cmd_id -> the fetch in flight
        self._update_task: asyncio.Task[None] | None = None
        self._update_cmd: str | None = None
        self._slots: SlotStore | None = None
        self.running_slot: str | None = running_slot(slots_path) if slot is _AUTO else slot
        self.trial: dict[str, Any] | None = None     # the pending switch this process must commit

    # ---- start-up ----------------------------------------------------------------------------
    def slots(self) -> SlotStore:
        if self._slots is None:
            self._slots = SlotStore(self._slots_path, wall=self._clock.time)
        return self._slots

    def recover_interrupted_update(self) -> None:
        """At start: say which version runs from where; clear what a crash left; if this process
        is the trial start of an update, mark it running (it commits in :meth:`async_run`)."""
        slots = self.slots()
        if not slots.managed:
            log.info("gateway %s runs from %s, not from an A/B slot in %s: update commands are refused",
                     __version__, Path(__file__).resolve().parents[2], self._slots_path)
            return
        try:
            slots.cleanup()
            if slots.interrupted_install() is not None:
                log.warning("an install was interrupted by a restart; nothing was switched")
            p = slots.pending
            if p is not None and p["slot"] == self.running_slot:
                if not p.get("running_at"):      # set already: this process re-bootstrapped (a config push)
                    slots.mark_running()
                self.trial = dict(p)
                log.warning("gateway %s on trial in slot %s (update from %s): commits once the uplink is back and "
                            "its health is acknowledged, within %g s, else slot %s comes back", __version__, p["slot"],
                            slots.version, float(p.get("deadline_s") or self.settings.commit_deadline_s), slots.active)
            elif p is not None:
                log.warning("slot %s (gateway %s) is pending but this process runs from %s; the launcher decides "
                            "at the next start", p["slot"], p.get("version"), self.running_slot or "outside the slots")
            else:
                log.info("gateway %s running from slot %s%s", __version__, self.running_slot or "?",
                         "" if self.running_slot == slots.active else f" (slot state: active {slots.active})")
            rb = slots.state.get("last_rollback") if slots.state else None
            if rb and rb.get("cmd_id") in (slots.state or {}).get("unreported", []):
                log.error("last update rolled back: %s", rb.get("error"))
        except OSError as exc:
            log.error("cannot update the slot state in %s: %s", self._slots_path, exc)

    async def async_run(self) -> None:
        """Commit (or roll back) a trial start, then publish results stored for the fleet."""
        if self.trial is not None:
            await self._async_confirm(self.trial)
        while self.slots().unreported():
            await self._async_flush()
            await asyncio.sleep(0.5)

    async def _async_confirm(self, p: dict[str, Any]) -> None:
        slots = self.slots()
        deadline_s = float(p.get("deadline_s") or self.settings.commit_deadline_s)
        started = float(slots.pending.get("running_at") or self._clock.time()) if slots.pending else self._clock.time()
        t_end = self._clock.monotonic() + max(0.0, deadline_s - (self._clock.time() - started))
        problem: str | None = "the deadline passed before the first check"
        while (left := t_end - self._clock.monotonic()) > 0:
            problem = await self.health.async_check(left)
            if problem is None:
                problem = await self.health.async_publish_health(min(10.0, max(0.5, t_end - self._clock.monotonic())))
                if problem is None:
                    detail = {"deployment": p.get("deployment"), "device": None, "version": p.get("version"),
                              "phase": "committed", "slot": p["slot"], "from": p.get("from_version")}
                    await asyncio.to_thread(slots.commit, detail)
                    await asyncio.to_thread(self._raise_gateway_floor, p)
                    self.trial = None
                    log.warning("update to gateway %s committed in slot %s", p.get("version"), p["slot"])
                    await self._async_flush()           # commit() stored the ok result as unreported
                    return
            await asyncio.sleep(0.2)
        try:
            text = await asyncio.to_thread(slots.rollback, "commit_deadline", problem or "")
        except OSError as exc:       # the launcher rolls back at the next start (this trial used its attempt)
            text = f"commit_deadline: {problem}; the rollback could not be written ({exc}), the launcher does it"
        self.trial = None
        log.error("%s; restarting", text)
        self._exit(EXIT_RESTART)

    def _raise_gateway_floor(self, p: dict[str, Any]) -> None:
        """The committed release is the gateway's new floor (its signed counter from the slot's release.json)."""
        try:
            rel = json.loads((self.slots().dir / p["slot"] / "release.json").read_text())
            m = Manifest(Target.GATEWAY, str(p.get("version")), str(rel.get("artifact", "")), int(rel.get("size", 0)),
                         str(rel.get("sha256", "")), int(rel.get("security_counter") or 0))
            self.floors.raise_to("gateway", m)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("release floor not raised to %s: %s", p.get("version"), exc)

    async def _async_flush(self) -> None:
        slots = self.slots()
        done = []
        for cid, status, detail in slots.unreported():
            problem = await async_publish_acked(self._routes, self._result_topic,
                                                encode_cmd_result(cid, status, detail), 10.0)
            if problem is not None:
                break
            (log.warning if status == "error" else log.info)("cmd %s: %s %s (stored result published)",
                                                             cid, status, detail)
            done.append(cid)
        if done:
            await asyncio.to_thread(slots.mark_reported, done)

    def _exit(self, code: int) -> None:
        if self._request_exit is None:
            log.error("exit %d requested but this gateway was started without a way to exit (a test wiring)", code)
            return
        self._request_exit(code)

    # ---- command entry -------------------------------------------------------------------------
    def handle_command(self, payload: bytes) -> bool:
        """Handle an ``ota``/``update`` wt.cmd/1; False if it is another command."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(doc, dict) or doc.get("schema") != CMD_SCHEMA or doc.get("cmd") not in ("ota", "update"):
            return False
        cmd_id = str(doc.get("cmd_id") or "")
        raw_args = doc.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        base = {"deployment": args.get("deployment"), "device": args.get("device")}
        if not cmd_id:
            self._result("", "error", {**base, "phase": "download", "rolled_back": False,
                                        "error": "cmd_id missing; every wt.cmd/1 needs one"})
            return True
        last = self._last_result(cmd_id)
        if last is not None:                       # the same deployment again: repeat its outcome
            self._result(cmd_id, *last, remember=False)
            return True
        if cmd_id in self._fetching or any(c == cmd_id for c, _, _ in self.ota_sessions.values()) or (
                self._update_running() and self._update_cmd == cmd_id) or (
                self.trial is not None and self.trial.get("cmd_id") == cmd_id):
            return True                            # still running: its results will follow
        try:
            signed = SignedRelease.from_obj(args.get("release"))
            if doc["cmd"] == "ota":
                self._start_ota(cmd_id, args, base, signed)
            else:
                self._start_update(cmd_id, args, base, signed)
        except UpgradeError as exc:
            self._fail(cmd_id, base, exc)
        return True

    def _fail(self, cmd_id: str, base: dict[str, Any], exc: UpgradeError) -> None:
        self._result(cmd_id, "error", {**base, "phase": exc.phase, "error": str(exc), "reason": exc.reason,
                                       "rolled_back": exc.phase not in ("download",)})

    def _verified_manifest(self, signed: SignedRelease) -> Manifest:
        """The signed manifest if a trusted release key signed it (before anything is fetched)."""
        keys = [load_trusted_key(k) for k in self._trusted_keys]
        return verify_signature(signed, keys)

    def _floor(self, unit: str, running: str | None) -> Floor:
        """The unit's stored floor, raised to the version it runs now."""
        f = self.floors.get(unit)
        if running:
            try:
                parse_version(running)
                if f.version is None or parse_version(running) > parse_version(f.version):
                    f = Floor(running, f.counter)
            except ValueError:
                pass
        return f

    def _with_artifact(self, cmd_id: str, args: dict[str, Any], m: Manifest, base: dict[str, Any],
                       then: Callable[[bytes], None]) -> None:
        """``then(artifact)`` once the artifact is here and matches the signed size and SHA-256: at once
        when inline, else after a fetch on a worker thread (the loop keeps running). Raises UpgradeError
        for what is known at once; a fetch that fails later is answered as an error result."""
        if args.get("artifact_b64"):
            try:
                blob = base64.b64decode(args["artifact_b64"], validate=True)
            except (binascii.Error, ValueError, TypeError) as exc:
                raise UpgradeError(f"artifact_b64 is not base64 ({exc})", reason="malformed") from None
            check_artifact(blob, m)
            then(blob)
            return
        u = self.settings
        url = str(args.get("artifact_url") or "")
        check_url(url, local_dir=u.fetch_local_dir)           # refused at once: nothing is contacted
        limit = max_fetch_bytes(m.size, u.fetch_max_mb)
        if m.size > limit:
            raise UpgradeError(f"the release is {m.size} bytes, more than [upgrades] fetch_max_mb allows",
                               reason="too_large")

        async def run() -> None:
            try:
                blob = await asyncio.wait_for(asyncio.to_thread(
                    fetch, url, max_bytes=limit, timeout_s=u.fetch_timeout_s, local_dir=u.fetch_local_dir,
                    ca=u.fetch_ca), u.fetch_timeout_s + 5.0)
                check_artifact(blob, m)
                then(blob)
            except asyncio.TimeoutError:
                self._fail(cmd_id, base, UpgradeError(f"fetching {url[:80]} took longer than {u.fetch_timeout_s:g} s",
                                                      reason="fetch_timeout"))
            except UpgradeError as exc:
                self._fail(cmd_id, base, exc)
            finally:
                self._fetching.pop(cmd_id, None)
        log.info("cmd %s: fetching %s (at most %d bytes, %g s) off the event loop", cmd_id, url[:80], limit,
                 u.fetch_timeout_s)
        self._fetching[cmd_id] = self._loop.create_task(run(), name=f"fetch:{cmd_id}")

    # ---- ota ------------------------------------------------------------------------------------
    def _start_ota(self, cmd_id: str, args: dict[str, Any], base: dict[str, Any], signed: SignedRelease) -> None:
        device = str(args.get("device") or "")
        m = signed.manifest
        base = {**base, "device": device, "version": m.version}
        if not m.target.startswith("fw-"):
            raise UpgradeError(f"release target {m.target!r} is not sensor firmware (fw-<role>); use update for "
                               "the gateway", reason="wrong_target")
        if not self._is_configured(device):
            raise UpgradeError(f"device {device!r} is not configured on this gateway", reason="unknown_device")
        m = self._verified_manifest(signed)
        st = self._registry.get(device)
        role = self._device_role(device) if self._device_role is not None else None
        if role is None and st is not None and st.role is not None:
            role = st.role.name.lower()
        if role is None:
            raise UpgradeError(f"device {device!r} has no known role; its release cannot be checked",
                               reason="wrong_role")
        running = st.fw_version if st is not None else None
        if running == m.version:
            self._result(cmd_id, "ok", {**base, "phase": "committed", "already": True})
            return
        check_install(m, target=f"fw-{role}", floor=self._floor(device_unit(device), running),
                      rollback=args.get("rollback") is True)
        self._with_artifact(cmd_id, args, m, base, lambda blob: self._begin_ota(cmd_id, base, device, signed, blob))

    def _begin_ota(self, cmd_id: str, base: dict[str, Any], device: str, signed: SignedRelease, blob: bytes) -> None:
        """The artifact is here and verified: start the transfer."""
        m = signed.manifest
        if device in self.ota_sessions:
            raise UpgradeError(f"an OTA to {device} is already running ({self.ota_sessions[device][0]})",
                               reason="busy")
        link = self._ingress.link_for(device)
        if link is None or link not in self._links:
            raise UpgradeError(f"device {device} has not been heard on any link since the gateway started; "
                               "wake it (it says HELLO at boot) and send the command again", reason="no_link")
        self._result(cmd_id, "progress", {**base, "phase": "downloaded"})
        u = self.settings

        def report(status: str, phase: str, extra: dict[str, Any]) -> None:
            if status == "ok" and phase == "committed":
                try:
                    self.floors.raise_to(device_unit(device), m)     # rare: a small fsync'd file
                except OSError as exc:
                    log.error("release floor of %s not raised to %s: %s", device, m.version, exc)
            self._result(cmd_id, status, {**base, "phase": phase, **extra}, remember=status != "progress")
            if status != "progress":
                self.ota_sessions.pop(device, None)

        session = OtaSession(device, blob, m.version, bytes.fromhex(m.sha256), signed.signature,
                             send=lambda p: self._ota_send(device, p), report=report, clock=self._clock,
                             ack_timeout_s=u.ota_ack_timeout_s, retries=u.ota_retries,
                             commit_timeout_s=u.ota_commit_timeout_s)
        self.ota_sessions[device] = (cmd_id, base, session)
        log.info("ota %s: %s %s (%d bytes) to %s on %s", cmd_id, m.target, m.version, len(blob), device, link)
        session.start()

    def _ota_send(self, device: str, payload: Any) -> int:
        seq, data = self._ingress.downlink_with_seq(device, payload.TYPE, payload)
        link = self._ingress.link_for(device)
        if link is not None:
            self._links.send(link, data)
        return seq

    # ---- what ingress and the rules tick tell a running OTA (IngestPipeline's DeviceUpgradeHooks)
    def on_message(self, msg: UplinkMessage) -> None:
        entry = self.ota_sessions.get(msg.device_id)
        if entry is not None:
            entry[2].on_payload(msg.payload)

    def on_hello(self, device_id: str, fw_version: str | None) -> None:
        entry = self.ota_sessions.get(device_id)
        if entry is not None:
            entry[2].on_hello(fw_version)

    def tick(self) -> None:
        for _cmd, _base, s in list(self.ota_sessions.values()):
            s.tick()

    # ---- update (gateway A/B) ---------------------------------------------------------------------
    def _update_running(self) -> bool:
        return self._update_task is not None and not self._update_task.done()

    def _start_update(self, cmd_id: str, args: dict[str, Any], base: dict[str, Any], signed: SignedRelease) -> None:
        m = signed.manifest
        base = {**base, "device": None, "version": m.version}
        if m.target != "gateway":
            raise UpgradeError(f"release target {m.target!r} is not the gateway software; use ota for sensors",
                               reason="wrong_target")
        m = self._verified_manifest(signed)
        if self.trial is not None:
            raise UpgradeError(f"gateway {__version__} is on trial after an update and has not committed yet; send "
                               "this one again when it has", reason="busy")
        if m.version == __version__:
            self._result(cmd_id, "ok", {**base, "phase": "committed", "already": True})
            return
        if self._update_running() or any(c for c in self._fetching if c != cmd_id):
            raise UpgradeError("another gateway update is running; send this one again when it has finished",
                               reason="busy")
        check_install(m, target=Target.GATEWAY, floor=self._floor("gateway", __version__),
                      rollback=args.get("rollback") is True)
        self._with_artifact(cmd_id, args, m, base, lambda blob: self._begin_update(cmd_id, base, signed, blob))

    def _begin_update(self, cmd_id: str, base: dict[str, Any], signed: SignedRelease, blob: bytes) -> None:
        """The artifact is here and verified: install, switch, restart (on a task)."""
        if self._update_running():
            raise UpgradeError("another gateway update is running; send this one again when it has finished",
                               reason="busy")
        slots = self.slots()
        if not slots.managed or self.running_slot is None:
            raise UpgradeError(f"this gateway does not run from an A/B slot in {self._slots_path} (started without "
                               "the launcher); install the wt-gateway package, whose service starts "
                               "/usr/lib/wt-gateway/launch.py, to take updates", reason="not_managed")
        self._result(cmd_id, "progress", {**base, "phase": "downloaded"})
        self._update_cmd = cmd_id
        self._update_task = self._loop.create_task(self._run_update(cmd_id, base, signed, blob), name="update")

    async def _run_update(self, cmd_id: str, base: dict[str, Any], signed: SignedRelease, blob: bytes) -> None:
        slots = self.slots()
        m = signed.manifest
        try:
            slot = await asyncio.to_thread(slots.install, signed, blob, cmd_id=cmd_id,
                                           deployment=base.get("deployment"))
            self._result(cmd_id, "progress", {**base, "phase": "installed", "slot": slot})
            await asyncio.to_thread(slots.switch, slot, m.version, cmd_id=cmd_id, deployment=base.get("deployment"),
                                    deadline_s=self.settings.commit_deadline_s)
        except (UpgradeError, OSError) as exc:
            if isinstance(exc, OSError) and slots.pending is not None:
                await asyncio.to_thread(self._abandon_switch, slots)
            detail = {**base, "phase": exc.phase if isinstance(exc, UpgradeError) else "reboot",
                      "error": f"{exc}", "reason": exc.reason if isinstance(exc, UpgradeError) else "switch_failed",
                      "rolled_back": True, "running": __version__}
            self._result(cmd_id, "error", detail)      # stored, then published; this update is over
            return
        problem = await async_publish_acked(self._routes, self._result_topic, encode_cmd_result(
            cmd_id, "progress", {**base, "phase": "rebooted", "slot": slot, "restart": True}), 5.0)
        if problem is not None:
            log.warning("update %s: 'rebooted' not acknowledged (%s); restarting anyway", cmd_id, problem)
        log.warning("update %s: restarting into gateway %s in slot %s (exit %d)", cmd_id, m.version, slot,
                    EXIT_RESTART)
        self._exit(EXIT_RESTART)

    @staticmethod
    def _abandon_switch(slots: SlotStore) -> None:
        try:
            slots.rollback("health_failed", "the switch could not be completed")
        except OSError as exc:
            log.error("cannot undo the switch in %s: %s; the launcher decides at the next start", slots.dir, exc)

    # ---- results ----------------------------------------------------------------------------------
    def _last_result(self, cmd_id: str) -> tuple[str, dict[str, Any]] | None:
        r = self._results.get(cmd_id) or self._ota_results.get(cmd_id)
        if r is None and self.slots().managed:
            r = self.slots().result(cmd_id)
        return r

    def _result(self, cmd_id: str, status: str, detail: dict[str, Any], *, remember: bool = True) -> None:
        if remember and status != "progress" and cmd_id:
            self._results.pop(cmd_id, None)
            self._results[cmd_id] = (status, detail)
            while len(self._results) > RESULTS_IN_MEMORY:   # bounded: the oldest go first
                del self._results[next(iter(self._results))]
            if detail.get("device") is not None:
                self._ota_results.put(cmd_id, status, detail)
            else:
                try:
                    self.slots().remember(cmd_id, status, detail)
                except OSError as exc:
                    log.warning("result of %s not stored in %s: %s", cmd_id, self._slots_path, exc)
        (log.warning if status == "error" else log.info)("cmd %s: %s %s", cmd_id, status, detail)
        self._routes.reply(self._result_topic, encode_cmd_result(cmd_id, status, detail), what="cmd result")
