"""wt.cmd/1 `update` / `ota` commands and their wt.cmd-result/1 reports, as rollout terms (pure).

See docs/upgrades.md for the message shapes. The wire form is the shared contract
(:mod:`contracts.payloads`, :mod:`contracts.topics`); this module builds the ``update``
arguments from a signed release and maps a result to the unit state machine's events.
Decoding never raises: garbage becomes a :class:`Rejected` with the reason.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from contracts.payloads import (CMD_SCHEMA, RESULT_SCHEMA, CmdStatus, Rejected, decode_health, decode_state,
                                decode_update_result, encode_cmd)
from contracts.payloads import encode_cmd_result as _encode_cmd_result
from contracts.topics import Kind, Topics, parse_gateway
from fleet.upgrades._rollout import Unit
from fleet.upgrades._signing import SignedManifest, Target
from fleet.upgrades._states import UnitEvent

PHASE_EVENTS = {"downloaded": UnitEvent.DOWNLOADED, "installed": UnitEvent.INSTALLED,
                "rebooted": UnitEvent.REBOOTED, "committed": UnitEvent.COMMITTED,
                "rolled_back": UnitEvent.ROLLED_BACK}


def cmd_topic(gateway_id: str) -> str:
    return Topics(gateway_id).cmd


def result_topic(gateway_id: str) -> str:
    return Topics(gateway_id).cmd_result


def cmd_id(deployment: str, unit: Unit, kind: str, attempt: int = 1) -> str:
    """Deterministic: re-sending the same deployment to a unit repeats the same id (gateway de-duplicates).
    A retried update (``attempt`` > 1, `fleet rollout resume --retry-failed`) gets its own id, else the
    gateway would answer with the old failure."""
    if kind == "revert":
        return f"{deployment}:{unit.key}:r"
    return f"{deployment}:{unit.key}:u" + (str(attempt) if attempt > 1 else "")


def encode_update(deployment: str, unit: Unit, signed: SignedManifest, artifact_url: str, *,
                  kind: str = "update", artifact: bytes | None = None, attempt: int = 1) -> tuple[str, bytes]:
    """``update`` (gateway software, A/B) or ``ota`` (sensor firmware relayed by the gateway)."""
    name = "update" if signed.manifest.target is Target.GATEWAY else "ota"
    args: dict[str, Any] = {"deployment": deployment, "device": unit.device_id,
                            "release": json.loads(signed.to_json()), "artifact_url": artifact_url,
                            "rollback": kind == "revert"}
    if artifact is not None:
        args["artifact_b64"] = base64.b64encode(artifact).decode()
    return cmd_topic(unit.gateway_id), encode_cmd(cmd_id(deployment, unit, kind, attempt), name, args)


def encode_result(cmd_id_: str, status: str, detail: dict[str, Any]) -> bytes:
    return _encode_cmd_result(cmd_id_, status, detail)


@dataclass(frozen=True)
class VersionReport:
    """What a gateway says it runs (wt.health/1, wt.state/1): its version and its devices' firmware."""

    gateway_id: str
    version: str | None
    devices: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UnitReport:
    deployment: str
    unit: Unit
    events: tuple[UnitEvent, ...]
    error: str | None
    version: str | None


def decode_version_report(topic: str, payload: bytes, received_at: float) -> VersionReport | None:
    """wt.health/1 or an online wt.state/1 of a gateway -> the versions it reports; None otherwise.
    Never raises."""
    gw = parse_gateway(topic, Kind.HEALTH)
    if gw is not None:
        h = decode_health(gw, payload, received_at)
        if isinstance(h, Rejected):
            return None
        return VersionReport(gw, h.version, tuple((d.device_id, d.fw) for d in h.devices if d.fw))
    gw = parse_gateway(topic, Kind.STATE)
    if gw is not None:
        st = decode_state(gw, payload, received_at)
        if isinstance(st, Rejected) or not st.online:
            return None                    # an offline state is the last will: it carries the old connection's version
        return VersionReport(gw, st.version, ())
    return None


def decode_result(topic: str, payload: bytes) -> UnitReport | Rejected:
    gw = parse_gateway(topic, Kind.CMD_RESULT)
    if gw is None:
        return Rejected(f"topic {topic!r} is not {Topics('<gw>').cmd_result}", RESULT_SCHEMA, "topic")
    r = decode_update_result(payload)
    if isinstance(r, Rejected):
        return r
    events: list[UnitEvent] = []
    if r.status is CmdStatus.ERROR:
        events.append(UnitEvent.ERROR)
        if r.rolled_back:
            events.append(UnitEvent.ROLLED_BACK)
    else:                                  # ok / progress: the phase reached
        ev = PHASE_EVENTS.get(r.phase) if r.phase is not None else None
        if ev is None:
            return Rejected(f"phase {r.phase!r} is not one of {', '.join(PHASE_EVENTS)}", RESULT_SCHEMA,
                            "detail.phase", r.cmd_id)
        events.append(ev)
        if ev is UnitEvent.COMMITTED and r.device is not None and r.status is CmdStatus.OK:
            # a sensor's OTA is committed by its gateway only after the device said HELLO with the
            # new version (or, "already", reported it): the gateway's result is the version report
            events.append(UnitEvent.VERSION_REPORTED)
    return UnitReport(r.deployment, Unit(gw, r.device), tuple(events), r.error, r.version)


__all__ = ["CMD_SCHEMA", "PHASE_EVENTS", "RESULT_SCHEMA", "Rejected", "UnitReport", "VersionReport", "cmd_id",
           "cmd_topic", "decode_result", "decode_version_report", "encode_result", "encode_update", "result_topic"]
