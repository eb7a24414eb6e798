"""The gateway's side of the docs/mqtt.md payloads (pure, no I/O).

The contract itself - topics, schema ids, encoders and decoders that never raise on
garbage - lives in :mod:`contracts.topics` and :mod:`contracts.payloads`; this module
re-exports what the gateway uses and adds the one mapping that needs the gateway's domain
model: an :class:`~gateway.domain.model.Event` to its ``wt.alarm/1`` / ``wt.event/1``.
"""
from __future__ import annotations

from typing import Any

from contracts.payloads import (ALARM_SCHEMA, EVENT_SCHEMA, Ack, AckStatus, Published, Rejected, Route, decode_ack,
                                decode_published, dumps_event, encode_ack, encode_state, event_doc, parse_rfc3339, rfc3339)
from contracts.topics import PREFIX, Topics
from gateway.domain.model import Event, EventClass, EventCode, Role

# Derived once from the enums (constants): (schema, type, class) per code, role names.
_CODE_META: dict[EventCode, tuple[str, str, str]] = {
    c: (EVENT_SCHEMA if c.event_class is EventClass.EVENT else ALARM_SCHEMA, c.type_name, c.event_class.value)
    for c in EventCode
}
_ROLE_NAME: dict[Role, str] = {r: r.name.lower() for r in Role}


def event_payload(event: Event, *, gateway_id: str, attempt: int, route: Route | str, sent_at: float) -> dict[str, Any]:
    schema, type_name, cls = _CODE_META[event.code]
    return event_doc(schema=schema, event_id=event.event_id, gateway=gateway_id, device=event.device_id,
                     role=_ROLE_NAME[event.role] if event.role is not None else None, klass=cls, type=type_name,
                     test=event.test, occurred_at=event.occurred_at, received_at=event.received_at,
                     sent_at=sent_at, attempt=attempt, route=route, data=event.data)


def encode_event(event: Event, *, gateway_id: str, attempt: int, route: Route | str, sent_at: float) -> bytes:
    """``wt.alarm/1`` for alarms, ``wt.event/1`` otherwise (UTF-8 JSON)."""
    return dumps_event(event_payload(event, gateway_id=gateway_id, attempt=attempt, route=route, sent_at=sent_at))


__all__ = [
    "PREFIX", "Ack", "AckStatus", "Published", "Rejected", "Route", "Topics", "decode_ack", "decode_published",
    "encode_ack", "encode_event", "encode_state", "event_payload", "parse_rfc3339", "rfc3339",
]
