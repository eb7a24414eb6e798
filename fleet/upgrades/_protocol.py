"""wt.cmd/1 `update` / `ota` commands and their wt.cmd-result/1 reports (pure codec).

See docs/upgrades.md for the message shapes. Decoding never raises: garbage becomes a
:class:`Rejected` with the reason.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from fleet.upgrades._rollout import Unit
from fleet.upgrades._signing import SignedManifest, Target
from fleet.upgrades._states import UnitEvent

CMD_SCHEMA = "wt.cmd/1"
RESULT_SCHEMA = "wt.cmd-result/1"
PHASE_EVENTS = {"downloaded": UnitEvent.DOWNLOADED, "installed": UnitEvent.INSTALLED,
                "rebooted": UnitEvent.REBOOTED, "committed": UnitEvent.COMMITTED,
                "rolled_back": UnitEvent.ROLLED_BACK}


def cmd_topic(gateway_id: str) -> str:
    return f"wt/v1/gw/{gateway_id}/cmd"


def result_topic(gateway_id: str) -> str:
    return f"wt/v1/gw/{gateway_id}/cmd/result"


def cmd_id(deployment: str, unit: Unit, kind: str) -> str:
    """Deterministic: re-sending the same deployment to a unit repeats the same id (gateway de-duplicates)."""
    return f"{deployment}:{unit.key}:{'r' if kind == 'revert' else 'u'}"


def encode_update(deployment: str, unit: Unit, signed: SignedManifest, artifact_url: str, *,
                  kind: str = "update", artifact: bytes | None = None) -> tuple[str, bytes]:
    """``update`` (gateway software, A/B) or ``ota`` (sensor firmware relayed by the gateway)."""
    name = "update" if signed.manifest.target is Target.GATEWAY else "ota"
    args: dict[str, Any] = {"deployment": deployment, "device": unit.device_id,
                            "release": json.loads(signed.to_json()), "artifact_url": artifact_url,
                            "rollback": kind == "revert"}
    if artifact is not None:
        args["artifact_b64"] = base64.b64encode(artifact).decode()
    doc = {"schema": CMD_SCHEMA, "cmd_id": cmd_id(deployment, unit, kind), "cmd": name, "args": args}
    return cmd_topic(unit.gateway_id), json.dumps(doc, separators=(",", ":")).encode()


def encode_result(cmd_id_: str, status: str, detail: dict[str, Any]) -> bytes:
    return json.dumps({"schema": RESULT_SCHEMA, "cmd_id": cmd_id_, "status": status, "detail": detail},
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Rejected:
    reason: str


@dataclass(frozen=True)
class UnitReport:
    deployment: str
    unit: Unit
    events: tuple[UnitEvent, ...]
    error: str | None
    version: str | None


def decode_result(topic: str, payload: bytes) -> UnitReport | Rejected:
    parts = topic.split("/")
    if len(parts) != 6 or parts[:3] != ["wt", "v1", "gw"] or parts[4:] != ["cmd", "result"]:
        return Rejected(f"topic {topic!r} is not wt/v1/gw/<gw>/cmd/result")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        return Rejected(f"not a {RESULT_SCHEMA} object")
    detail = doc.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("deployment"), str):
        return Rejected("detail.deployment missing: not an update result")
    dev = detail.get("device")
    if dev is not None and not isinstance(dev, str):
        return Rejected("detail.device is not a string")
    status = doc.get("status")
    phase = detail.get("phase")
    events: list[UnitEvent] = []
    if status == "error":
        events.append(UnitEvent.ERROR)
        if detail.get("rolled_back") is True:
            events.append(UnitEvent.ROLLED_BACK)
    elif status in ("ok", "progress"):
        ev = PHASE_EVENTS.get(phase) if isinstance(phase, str) else None
        if ev is None:
            return Rejected(f"phase {phase!r} is not one of {', '.join(PHASE_EVENTS)}")
        events.append(ev)
    else:
        return Rejected(f"status {status!r} is not ok/error/progress")
    err = detail.get("error")
    ver = detail.get("version")
    return UnitReport(detail["deployment"], Unit(parts[3], dev), tuple(events),
                      err if isinstance(err, str) else None, ver if isinstance(ver, str) else None)
