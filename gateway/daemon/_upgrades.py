"""``ota`` and ``update`` commands (wt.cmd/1, docs/upgrades.md) in the running gateway.

:class:`UpgradeController` relays a signed sensor firmware to a device (``ota``: an
:class:`~gateway.domain.ota.OtaSession` over the device's link) and installs a signed
gateway release into the A/B slots (``update``: stage → switch → health check → commit,
or roll back). The decisions live in gateway.adapters.upgrade (manifest verification, the
A/B slot store) and gateway.domain.ota (the OTA session); this wires them to the fleet's
command topic, the device links, and ``…/cmd/result``.

Order for both: a repeated ``cmd_id`` gets its last result again (nothing re-installed);
a unit already on the release's version answers ``ok``/``committed`` with ``already``;
the artifact is verified (trusted ed25519 key → signature → size → SHA-256) before any
frame goes to a device or any byte to a slot; a failure there is ``error`` at phase
``download`` with ``rolled_back: false``.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any, Callable

from contracts.payloads import CMD_SCHEMA, encode_cmd_result
from contracts.topics import Topics
from gateway import __version__
from gateway.adapters.status import StatusError, fetch_status
from gateway.adapters.upgrade import OtaSession, SignedRelease, SlotStore, UpgradeError, load_trusted_key, verify
from gateway.codec.frame import Frame
from gateway.codec.stream import StreamDecoder
from gateway.config import UpgradesSection
from gateway.daemon._links import LinkTable
from gateway.daemon._routes import Routes
from gateway.daemon._status import StatusEndpoint
from gateway.domain.devices import DeviceRegistry
from gateway.domain.ingress import Ingress, UplinkMessage
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.adapters.upgrade")


class UpdateHealthCheck:
    """Is the updated gateway healthy? Uplink connected, journal opens, status endpoint
    answers for this gateway. ``uplink_connected`` is public so a test can cut it."""

    def __init__(self, *, gateway_id: str, uplink_connected: Callable[[], bool], journal_path: Path,
                 status: StatusEndpoint | None, clock: Clock) -> None:
        self.gateway_id = gateway_id
        self.uplink_connected = uplink_connected
        self._journal_path = journal_path
        self._status = status
        self._clock = clock

    async def async_check(self, deadline_s: float) -> str | None:
        """None if healthy within ``deadline_s``, else what failed last."""
        t_end = self._clock.monotonic() + deadline_s
        while True:
            problem = await self._check_once()
            if problem is None or self._clock.monotonic() >= t_end:
                return problem
            await asyncio.sleep(min(0.5, max(0.05, t_end - self._clock.monotonic())))

    async def _check_once(self) -> str | None:
        if not self.uplink_connected():
            return "uplink not connected"
        try:
            def probe() -> None:
                conn = sqlite3.connect(f"file:{self._journal_path}?mode=ro", uri=True, timeout=5)
                try:
                    conn.execute("SELECT count(*) FROM events").fetchone()
                finally:
                    conn.close()
            await asyncio.to_thread(probe)
        except sqlite3.Error as exc:
            return f"journal does not open: {exc}"
        if self._status is not None:
            url = self._status.url()
            if url is None:
                return "status endpoint not running"
            try:
                snap = await asyncio.to_thread(fetch_status, url, 3.0)
            except StatusError as exc:
                return f"status endpoint does not answer: {exc}"
            if snap.get("gateway") != self.gateway_id:
                return "status endpoint answers for another gateway"
        return None


class UpgradeController:
    """``ota`` (sensor firmware relay) and ``update`` (gateway A/B) commands."""

    def __init__(self, *, gateway_id: str, settings: UpgradesSection, slots_path: Path,
                 is_configured: Callable[[str], bool], ingress: Ingress, links: LinkTable, registry: DeviceRegistry,
                 routes: Routes, health: UpdateHealthCheck, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings            # public: a test shortens the health deadline
        self._slots_path = slots_path
        self._is_configured = is_configured
        self._ingress = ingress
        self._links = links
        self._registry = registry
        self._routes = routes
        self.health = health
        self._clock = clock
        self._loop = loop
        self._result_topic = Topics(gateway_id).cmd_result
        self.ota_sessions: dict[str, tuple[str, dict[str, Any], OtaSession]] = {}   # device -> (cmd_id, base, s)
        self._results: dict[str, tuple[str, dict[str, Any]]] = {}
        self._update_task: asyncio.Task[None] | None = None
        self._update_cmd: str | None = None
        self._slots: SlotStore | None = None

    # ---- start-up ----------------------------------------------------------------------------
    def recover_interrupted_update(self) -> None:
        """An update switched slots but was never committed (power cut): roll it back."""
        if self._slots_path.joinpath("state.json").exists() and self.slots().recover():
            log.warning("an unconfirmed gateway update was pending at start: rolled back to slot %s",
                        self.slots().active)

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
        if any(c == cmd_id for c, _, _ in self.ota_sessions.values()) or (
                self._update_running() and self._update_cmd == cmd_id):
            return True                            # still running: its results will follow
        try:
            signed = SignedRelease.from_obj(args.get("release"))
            if doc["cmd"] == "ota":
                self._start_ota(cmd_id, args, base, signed)
            else:
                self._start_update(cmd_id, args, base, signed)
        except UpgradeError as exc:
            self._result(cmd_id, "error", {**base, "phase": exc.phase, "error": str(exc),
                                           "rolled_back": exc.phase not in ("download",)})
        return True

    def _artifact(self, args: dict[str, Any], signed: SignedRelease) -> bytes:
        """The artifact, verified against the trusted keys. Raises UpgradeError (phase download)."""
        if args.get("artifact_b64"):
            try:
                blob = base64.b64decode(args["artifact_b64"], validate=True)
            except (binascii.Error, ValueError, TypeError) as exc:
                raise UpgradeError(f"artifact_b64 is not base64 ({exc})", reason="malformed") from None
        else:
            url = str(args.get("artifact_url") or "")
            if not url.startswith(("file://", "http://", "https://")):
                raise UpgradeError(f"artifact_url {url!r} cannot be fetched by this gateway; send the artifact "
                                   "inline (artifact_b64) or serve it over http(s)", reason="fetch_failed")
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:   # noqa: S310 - fleet-provided, verified below
                    blob = resp.read(64 * 1024 * 1024 + 1)
            except OSError as exc:
                raise UpgradeError(f"cannot fetch {url}: {exc}", reason="fetch_failed") from None
        keys = [load_trusted_key(k) for k in self.settings.trusted_keys]
        verify(blob, signed, keys)
        return blob

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
        st = self._registry.get(device)
        if st is not None and st.fw_version == m.version:
            self._result(cmd_id, "ok", {**base, "phase": "committed", "already": True})
            return
        blob = self._artifact(args, signed)       # verified BEFORE any OTA frame
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
        data = self._ingress.downlink(device, payload.TYPE, payload)
        seq = next(f.seq for f in StreamDecoder().feed(data) if isinstance(f, Frame))
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
    def slots(self) -> SlotStore:
        if self._slots is None:
            self._slots = SlotStore(self._slots_path, __version__)
        return self._slots

    def _update_running(self) -> bool:
        return self._update_task is not None and not self._update_task.done()

    def _start_update(self, cmd_id: str, args: dict[str, Any], base: dict[str, Any], signed: SignedRelease) -> None:
        m = signed.manifest
        base = {**base, "device": None, "version": m.version}
        if m.target != "gateway":
            raise UpgradeError(f"release target {m.target!r} is not the gateway software; use ota for sensors",
                               reason="wrong_target")
        slots = self.slots()
        if slots.version == m.version:
            self._result(cmd_id, "ok", {**base, "phase": "committed", "already": True})
            return
        if self._update_running():
            raise UpgradeError("another gateway update is running; send this one again when it has finished",
                               reason="busy")
        blob = self._artifact(args, signed)      # verified BEFORE a byte goes to a slot
        self._result(cmd_id, "progress", {**base, "phase": "downloaded"})
        self._update_cmd = cmd_id
        self._update_task = self._loop.create_task(self._run_update(cmd_id, base, signed, blob), name="update")

    async def _run_update(self, cmd_id: str, base: dict[str, Any], signed: SignedRelease, blob: bytes) -> None:
        slots = self.slots()
        phase = "install"
        try:
            slot = await asyncio.to_thread(slots.stage, signed, blob)
            self._result(cmd_id, "progress", {**base, "phase": "installed", "slot": slot.name})
            phase = "reboot"
            await asyncio.to_thread(slots.switch, signed.manifest.version)
            self._result(cmd_id, "progress", {**base, "phase": "rebooted", "slot": slot.name})
            phase = "commit"
            problem = await self.health.async_check(self.settings.health_deadline_s)
            if problem is not None:
                raise UpgradeError(f"health check failed: {problem}", reason="unhealthy", phase="commit")
            await asyncio.to_thread(slots.commit)
            self._result(cmd_id, "ok", {**base, "phase": "committed", "slot": slot.name})
        except (UpgradeError, OSError) as exc:
            try:
                await asyncio.to_thread(slots.rollback)
                rolled = True
            except OSError:
                log.exception("update %s: rollback failed", cmd_id)
                rolled = False
            self._result(cmd_id, "error", {**base, "phase": exc.phase if isinstance(exc, UpgradeError) else phase,
                                           "error": str(exc), "rolled_back": rolled})

    # ---- results ----------------------------------------------------------------------------------
    def _last_result(self, cmd_id: str) -> tuple[str, dict[str, Any]] | None:
        r = self._results.get(cmd_id)
        if r is None and self._slots_path.joinpath("state.json").exists():
            r = self.slots().result(cmd_id)
        return r

    def _result(self, cmd_id: str, status: str, detail: dict[str, Any], *, remember: bool = True) -> None:
        if remember and status != "progress" and cmd_id:
            self._results[cmd_id] = (status, detail)
            if detail.get("device") is None and self._slots is not None:
                self._slots.remember(cmd_id, status, detail)
        (log.warning if status == "error" else log.info)("cmd %s: %s %s", cmd_id, status, detail)
        self._routes.reply(self._result_topic, encode_cmd_result(cmd_id, status, detail), what="cmd result")
