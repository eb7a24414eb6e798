"""wt.config/1 and wt.config-applied/1 payloads (pure; decoding never raises)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleet.config._model import AppliedReport, AppliedStatus, ConfigVersion

CONFIG_SCHEMA = "wt.config/1"
APPLIED_SCHEMA = "wt.config-applied/1"


def config_topic(gateway_id: str) -> str:
    return f"wt/v1/gw/{gateway_id}/config"


def applied_topic(gateway_id: str) -> str:
    return f"wt/v1/gw/{gateway_id}/config/applied"


def encode_config(v: ConfigVersion) -> bytes:
    """Retained desired configuration; ``hash`` is an additive field (docs/fleet-config.md)."""
    return json.dumps({"schema": CONFIG_SCHEMA, "version": v.version, "hash": v.hash,
                       "config": v.config}, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Rejected:
    reason: str


def gateway_from_topic(topic: str, suffix: str) -> str | None:
    parts = topic.split("/")
    want = suffix.split("/")
    if len(parts) != 4 + len(want) or parts[:3] != ["wt", "v1", "gw"] or parts[4:] != want:
        return None
    return parts[3] or None


def decode_applied(topic: str, payload: bytes, *, now: float) -> AppliedReport | Rejected:
    gw = gateway_from_topic(topic, "config/applied")
    if gw is None:
        return Rejected(f"topic {topic!r} is not wt/v1/gw/<gw>/config/applied")
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejected("payload is not a JSON object")
    schema = doc.get("schema")
    if schema != APPLIED_SCHEMA:
        return Rejected(f"schema {schema!r} is not {APPLIED_SCHEMA}")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return Rejected(f"version {version!r} is not a non-negative integer")
    try:
        status = AppliedStatus(doc.get("status"))
    except ValueError:
        return Rejected(f"status {doc.get('status')!r} is not applied/rejected")
    error = doc.get("error")
    h = doc.get("hash")
    return AppliedReport(gw, version, status, error if isinstance(error, str) else None, now,
                         h if isinstance(h, str) else None)
