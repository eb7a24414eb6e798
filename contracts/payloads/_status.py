"""``wt.state/1`` (retained online/offline, the gateway's last will) and ``wt.health/1``
(periodic gateway health) - gateway -> fleet.

Records are typed NamedTuples (cheap to build on the fleet's ingest hot path); times on
the wire are RFC 3339 UTC, records carry epoch seconds.
"""
from __future__ import annotations

from typing import NamedTuple

from contracts.payloads._common import Rejected, as_int, as_str, dumps, load, parse_time, rfc3339

STATE_SCHEMA = "wt.state/1"
HEALTH_SCHEMA = "wt.health/1"


def encode_state(*, gateway_id: str, online: bool, version: str, since: float) -> bytes:
    return dumps({"schema": STATE_SCHEMA, "gateway": gateway_id, "online": online,
                  "version": version, "since": rfc3339(since)})


class State(NamedTuple):
    gateway_id: str
    online: bool
    version: str | None
    since: float | None
    received_at: float


def decode_state(gateway_id: str, payload: bytes, received_at: float) -> State | Rejected:
    doc = load(payload, STATE_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    online = doc.get("online")
    if not isinstance(online, bool):
        return Rejected(f"online {online!r} is not true/false", STATE_SCHEMA, "online")
    return State(gateway_id, online, as_str(doc.get("version")), parse_time(doc.get("since")), received_at)


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
    received_at: float             # receiver's clock
    version: str | None
    uptime_s: int | None
    uplink_state: str | None
    backlog: int | None
    journal_depth: int | None
    alarms_pending: int | None
    config_version: int | None
    devices: tuple[DeviceHealth, ...]


def decode_health(gateway_id: str, payload: bytes, received_at: float) -> Health | Rejected:
    doc = load(payload, HEALTH_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    at = parse_time(doc.get("at"))
    if at is None:
        return Rejected(f"at {doc.get('at')!r} is not an RFC 3339 time", HEALTH_SCHEMA, "at")
    raw_uplink, raw_journal = doc.get("uplink"), doc.get("journal")
    uplink: dict = raw_uplink if isinstance(raw_uplink, dict) else {}
    journal: dict = raw_journal if isinstance(raw_journal, dict) else {}
    devices: list[DeviceHealth] = []
    raw = doc.get("devices")
    if isinstance(raw, list):
        for d in raw:
            if not isinstance(d, dict) or not isinstance(d.get("device"), str):
                continue
            bat = as_int(d.get("battery_pct"))
            devices.append(DeviceHealth(d["device"], as_str(d.get("role")), parse_time(d.get("last_seen")),
                                        bat if bat is not None and 0 <= bat <= 100 else None,
                                        as_int(d.get("rssi")), as_str(d.get("fw")), d.get("silent") is True))
    return Health(gateway_id, at, received_at, as_str(doc.get("version")), as_int(doc.get("uptime_s")),
                  as_str(uplink.get("state")), as_int(uplink.get("backlog")), as_int(journal.get("depth")),
                  as_int(journal.get("alarms_pending")), as_int(doc.get("config_version")), tuple(devices))
