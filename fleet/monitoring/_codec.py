"""Decode the gateway → fleet payloads of docs/mqtt.md (pure; never raises on garbage).

Each ``decode_*`` returns an immutable record (typed NamedTuples: cheap to build on the
ingest hot path) or a :class:`Rejected` with the reason.
Times on the wire are RFC 3339 UTC; records carry epoch seconds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

HEALTH_SCHEMA = "wt.health/1"
STATE_SCHEMA = "wt.state/1"
ALARM_SCHEMA = "wt.alarm/1"
EVENT_SCHEMA = "wt.event/1"
ACK_SCHEMA = "wt.ack/1"


@dataclass(frozen=True)
class Rejected:
    reason: str


class DeviceHealth(NamedTuple):
    device_id: str
    role: str | None
    last_seen: float | None
    battery_pct: int | None
    rssi: int | None
    fw: str | None
    silent: bool


class Health(NamedTuple):
    gateway_id: str
    at: float                      # gateway's timestamp (epoch s); the sample key with gateway_id
    received_at: float             # fleet clock
    version: str | None
    uptime_s: int | None
    uplink_state: str | None
    backlog: int | None
    journal_depth: int | None
    alarms_pending: int | None
    config_version: int | None
    devices: tuple[DeviceHealth, ...]


class State(NamedTuple):
    gateway_id: str
    online: bool
    version: str | None
    since: float | None
    received_at: float


class Alarm(NamedTuple):
    event_id: str
    gateway_id: str
    device_id: str | None
    role: str | None
    klass: str                     # care | technical | event
    type: str
    test: bool
    occurred_at: float | None
    received_at: float


class Ack(NamedTuple):
    event_id: str
    status: str                    # received | accepted | resolved
    at: float


def parse_time(v: Any) -> float | None:
    if not isinstance(v, str) or not v:
        return None
    return _parse_time(v)


@lru_cache(maxsize=8192)
def _parse_time(v: str) -> float | None:
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None                # RFC 3339 requires an offset; a naive time is ambiguous
    return dt.timestamp()


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def topic_parts(topic: str) -> tuple[str, str, str] | None:
    """``wt/v1/gw/{id}/{kind...}`` -> ("gw", id, kind) (kind may contain a slash)."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or parts[0] != "wt" or parts[1] != "v1" or parts[2] not in ("gw", "dev") or not parts[3]:
        return None
    return parts[2], parts[3], parts[4]


def _load(payload: bytes, schema: str) -> dict | Rejected:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejected("payload is not a JSON object")
    got = doc.get("schema")
    if got != schema:
        return Rejected(f"schema {got!r} is not {schema}")
    return doc


def decode_health(gateway_id: str, payload: bytes, received_at: float) -> Health | Rejected:
    doc = _load(payload, HEALTH_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    at = parse_time(doc.get("at"))
    if at is None:
        return Rejected(f"at {doc.get('at')!r} is not an RFC 3339 time")
    raw_uplink, raw_journal = doc.get("uplink"), doc.get("journal")
    uplink: dict = raw_uplink if isinstance(raw_uplink, dict) else {}
    journal: dict = raw_journal if isinstance(raw_journal, dict) else {}
    devices: list[DeviceHealth] = []
    raw = doc.get("devices")
    if isinstance(raw, list):
        for d in raw:
            if not isinstance(d, dict) or not isinstance(d.get("device"), str):
                continue
            bat = _int(d.get("battery_pct"))
            devices.append(DeviceHealth(d["device"], _str(d.get("role")), parse_time(d.get("last_seen")),
                                        bat if bat is not None and 0 <= bat <= 100 else None,
                                        _int(d.get("rssi")), _str(d.get("fw")), d.get("silent") is True))
    return Health(gateway_id, at, received_at, _str(doc.get("version")), _int(doc.get("uptime_s")),
                  _str(uplink.get("state")), _int(uplink.get("backlog")), _int(journal.get("depth")),
                  _int(journal.get("alarms_pending")), _int(doc.get("config_version")), tuple(devices))


def decode_state(gateway_id: str, payload: bytes, received_at: float) -> State | Rejected:
    doc = _load(payload, STATE_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    online = doc.get("online")
    if not isinstance(online, bool):
        return Rejected(f"online {online!r} is not true/false")
    return State(gateway_id, online, _str(doc.get("version")), parse_time(doc.get("since")), received_at)


def decode_alarm(gateway_id: str, payload: bytes, received_at: float, *, schema: str = ALARM_SCHEMA) -> Alarm | Rejected:
    doc = _load(payload, schema)
    if isinstance(doc, Rejected):
        return doc
    eid, typ = doc.get("event_id"), doc.get("type")
    if not isinstance(eid, str) or not eid or not isinstance(typ, str) or not typ:
        return Rejected("event_id and type must be non-empty strings")
    klass = doc.get("class")
    if klass not in ("care", "technical", "event"):
        return Rejected(f"class {klass!r} is not care/technical/event")
    return Alarm(eid, gateway_id, _str(doc.get("device")), _str(doc.get("role")), klass, typ,
                 doc.get("test") is True, parse_time(doc.get("occurred_at")), received_at)


def decode_ack(payload: bytes, received_at: float) -> Ack | Rejected:
    doc = _load(payload, ACK_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    eid, status = doc.get("event_id"), doc.get("status")
    if not isinstance(eid, str) or not eid:
        return Rejected("event_id must be a non-empty string")
    if status not in ("received", "accepted", "resolved"):
        return Rejected(f"status {status!r} is not received/accepted/resolved")
    return Ack(eid, status, parse_time(doc.get("at")) or received_at)
