"""``wt.alarm/1`` and ``wt.event/1``: what a gateway (or a tracker) publishes per event.

The gateway builds them from its domain events (gateway/domain/payload.py maps an
``Event`` to :func:`event_doc`'s fields). Receivers read them in one of two projections:

- :class:`Published` (the platform's view: enough to de-duplicate and acknowledge, plus
  the whole body), from :func:`decode_published`;
- :class:`Alarm` (the fleet's statistics record, a cheap NamedTuple for the ingest hot
  path), from :func:`decode_alarm`.
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple

from contracts.payloads._common import Rejected, as_str, load, load_json, parse_time, rfc3339

ALARM_SCHEMA = "wt.alarm/1"
EVENT_SCHEMA = "wt.event/1"
CLASSES = ("care", "technical", "event")      # "class": alarm topic care|technical, event topic event


class Route(str, enum.Enum):
    PRIMARY = "primary"
    FALLBACK = "fallback"


_ROUTE_NAME: dict[str, str] = {r.value: r.value for r in Route}


def event_doc(*, schema: str, event_id: str, gateway: str | None, device: str | None, role: str | None,
              klass: str, type: str, test: bool, occurred_at: float, received_at: float, sent_at: float,
              attempt: int, route: Route | str, data: Any) -> dict[str, Any]:
    """The JSON object of one ``wt.alarm/1`` / ``wt.event/1`` (docs/mqtt.md field table)."""
    return {
        "schema": schema,
        "event_id": event_id,
        "gateway": gateway,
        "device": device,
        "role": role,
        "class": klass,
        "type": type,
        "test": test,
        "occurred_at": rfc3339(occurred_at),
        "received_at": rfc3339(received_at),
        "sent_at": rfc3339(sent_at),
        "attempt": attempt,
        "route": _ROUTE_NAME.get(route) or Route(route).value,
        "data": data,
    }


class Published(NamedTuple):
    """A decoded ``wt.alarm/1`` / ``wt.event/1`` (platform side: receivers, tests, benches)."""

    event_id: str
    alarm: bool
    attempt: int
    route: str
    body: dict[str, Any]


def decode_published(payload: bytes) -> Published | Rejected:
    obj = load_json(payload)
    if isinstance(obj, Rejected):
        return obj
    schema = obj.get("schema") if isinstance(obj, dict) else None
    if schema != ALARM_SCHEMA and schema != EVENT_SCHEMA:
        return Rejected("not a wt.alarm/1 or wt.event/1 object", None, "schema")
    event_id, attempt = obj.get("event_id"), obj.get("attempt")
    if not isinstance(event_id, str) or not isinstance(attempt, int):
        return Rejected("'event_id' or 'attempt' missing", schema, "event_id")
    return Published(event_id, schema == ALARM_SCHEMA, attempt, str(obj.get("route")), obj)


class Alarm(NamedTuple):
    """The fleet's record of one alarm (or, from the event topic, a cancellation)."""

    event_id: str
    gateway_id: str
    device_id: str | None
    role: str | None
    klass: str                     # care | technical | event
    type: str
    test: bool
    occurred_at: float | None
    received_at: float


def decode_alarm(gateway_id: str, payload: bytes, received_at: float, *,
                 schema: str = ALARM_SCHEMA) -> Alarm | Rejected:
    doc = load(payload, schema)
    if isinstance(doc, Rejected):
        return doc
    eid, typ = doc.get("event_id"), doc.get("type")
    if not isinstance(eid, str) or not eid or not isinstance(typ, str) or not typ:
        return Rejected("event_id and type must be non-empty strings", schema, "event_id")
    klass = doc.get("class")
    if klass not in CLASSES:
        return Rejected(f"class {klass!r} is not care/technical/event", schema, "class", eid)
    return Alarm(eid, gateway_id, as_str(doc.get("device")), as_str(doc.get("role")), klass, typ,
                 doc.get("test") is True, parse_time(doc.get("occurred_at")), received_at)
