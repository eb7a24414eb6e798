"""An emulated gateway that follows the update/ota command contract (docs/upgrades.md).

Used by tests and bench/rollout.py, in-process or behind MQTT (``serve_mqtt``). It does
what the real gateway daemon must do: de-duplicate ``cmd_id``; verify the signed
manifest against its trusted keys and the artifact's size and SHA-256 before touching
anything; install to the inactive slot (A/B), reboot, health-check, commit — or roll
back to the old slot on failure; report each phase as ``wt.cmd-result/1``; and, as the
restarted gateway does, announce the version it now runs (``wt.state/1``, in
:meth:`EmulatedGateway.take_outbox`). ``reports_version=False`` plants the failure the
fleet must catch: a gateway that says ``committed`` but keeps running the old version.

Commands arrive in the fleet's signed envelope (``wt.signed/1``, contracts/control.py) as
on the real gateway: a bare ``wt.cmd/1`` is refused (``refused`` counts it). With
``fleet_key`` (the control public key) the signature, target, expiry and sequence are
checked too; without it the envelope is only opened (most rollout tests do not care whose
key signed).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import time

from contracts.control import ControlRejected, open_envelope
from contracts.payloads import CMD_SCHEMA, encode_state
from contracts.topics import Kind, all_gateways, gateway_topic, parse_gateway
from fleet.upgrades._errors import ArtifactRejected, UpgradeError
from fleet.upgrades._signing import SignedManifest, verify

PHASES = ("download", "install", "reboot", "commit")
_DONE = {"download": "downloaded", "install": "installed", "reboot": "rebooted", "commit": "committed"}

Result = tuple[str, str, dict[str, Any]]      # (cmd_id, status, detail)


@dataclass
class EmulatedGateway:
    gateway_id: str
    trusted_keys: list          # Ed25519PublicKey
    fetch: Callable[[str], bytes]
    version: str = "0.1.0"
    device_fw: dict[str, str] = field(default_factory=dict)  # device -> firmware version
    fail_phase: str | None = None   # planted failure: "download" | "install" | "reboot" | "commit"
    installs: int = 0
    reports_version: bool = True    # False: says committed, keeps running (and reporting) the old version
    fleet_key: Any = None           # Ed25519PublicKey of the fleet's control key: verify signatures
    refused: dict[str, int] = field(default_factory=dict)    # control messages refused, by reason
    _highest_seq: int = 0
    _seen: dict[str, list[Result]] = field(default_factory=dict)
    _outbox: list[tuple[str, bytes]] = field(default_factory=list)

    def take_outbox(self) -> list[tuple[str, bytes]]:
        """Messages the gateway published besides results (its wt.state/1 after a restart)."""
        out, self._outbox = self._outbox, []
        return out

    def _announce(self) -> None:
        self._outbox.append((gateway_topic(self.gateway_id, Kind.STATE),
                             encode_state(gateway_id=self.gateway_id, online=True, version=self.version,
                                          since=time.time())))

    def _open(self, payload: bytes) -> bytes | None:
        """The command inside the fleet's envelope, or None (refused, counted)."""
        if self.fleet_key is not None:
            o = open_envelope(payload, gateway_id=self.gateway_id, keys=[self.fleet_key], now=time.time(),
                              kind=CMD_SCHEMA)
            if isinstance(o, ControlRejected):
                self.refused[o.reason] = self.refused.get(o.reason, 0) + 1
                return None
            if o.seq <= self._highest_seq:
                self.refused["replayed"] = self.refused.get("replayed", 0) + 1
                return None
            self._highest_seq = o.seq
            return o.body
        try:
            env = json.loads(payload)
        except ValueError:
            env = None
        if not isinstance(env, dict) or env.get("schema") != "wt.signed/1" or not isinstance(env.get("body"), str):
            self.refused["unsigned"] = self.refused.get("unsigned", 0) + 1
            return None
        return env["body"].encode()

    def handle(self, payload: bytes) -> list[Result]:
        body = self._open(payload)
        if body is None:
            return []
        try:
            doc = json.loads(body)
        except ValueError:
            return []
        if not isinstance(doc, dict) or doc.get("schema") != CMD_SCHEMA:
            return []
        cid = str(doc.get("cmd_id"))
        args = doc.get("args") or {}
        if cid in self._seen:                       # same deployment again: no-op, repeat the outcome
            results = self._seen[cid][-1:]
        else:
            results = self._run(cid, doc.get("cmd"), args)
            if results:
                self._seen[cid] = results
        if results and isinstance(args, dict) and args.get("device") is None:
            self._announce()                        # what its health / state says next: the version it runs
        return results

    def _run(self, cid: str, cmd: Any, args: Mapping[str, Any]) -> list[Result]:
        if cmd not in ("update", "ota"):
            return []
        dev = args.get("device")
        base = {"deployment": args.get("deployment"), "device": dev}
        try:
            signed = SignedManifest.from_json(json.dumps(args.get("release")))
            want = signed.manifest.version
            current = self.version if dev is None else self.device_fw.get(dev)
            if current == want:
                return [(cid, "ok", {**base, "phase": "committed", "version": want, "already": True})]
            if "artifact_b64" in args:
                blob = base64.b64decode(args["artifact_b64"])
            else:
                blob = self.fetch(str(args.get("artifact_url")))
            verify(blob, signed, self.trusted_keys)
        except (ArtifactRejected, UpgradeError, ValueError, KeyError) as exc:
            return [(cid, "error", {**base, "phase": "download", "error": str(exc), "rolled_back": False})]
        out: list[Result] = []
        for phase in PHASES:
            if self.fail_phase == phase:
                rolled = phase != "download"
                out.append((cid, "error", {**base, "phase": phase, "rolled_back": rolled,
                                           "error": f"planted failure in {phase}"}))
                return out
            status = "ok" if phase == "commit" else "progress"
            out.append((cid, status, {**base, "phase": _DONE[phase], "version": want}))
        self.installs += 1
        if dev is None:
            if self.reports_version:
                self.version = want
        else:
            self.device_fw[dev] = want
        return out


def serve_mqtt(client, gateways: Mapping[str, EmulatedGateway]) -> None:
    """Attach emulated gateways to an MQTT client (fleet.mqtt.MqttClient): one client for many.

    Results are published from the client's network thread as the real gateway would.
    """
    from fleet.upgrades._protocol import encode_result, result_topic

    def on_cmd(topic: str, payload: bytes) -> None:
        gw = parse_gateway(topic, Kind.CMD)
        g = gateways.get(gw) if gw is not None else None
        if gw is None or g is None:
            return
        for cid, status, detail in g.handle(payload):
            client.publish_nowait(result_topic(gw), encode_result(cid, status, detail), qos=1)
        for topic, body in g.take_outbox():
            client.publish_nowait(topic, body, qos=1)

    client.subscribe(all_gateways(Kind.CMD), on_cmd, qos=1)
