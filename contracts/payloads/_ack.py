"""``wt.ack/1``: the platform acknowledges an alarm (platform -> gateway/tracker)."""
from __future__ import annotations

import enum
from typing import NamedTuple

from contracts.payloads._common import Rejected, dumps, load, parse_time, rfc3339

ACK_SCHEMA = "wt.ack/1"


class AckStatus(str, enum.Enum):
    RECEIVED = "received"   # the platform has the alarm: stop re-sending
    ACCEPTED = "accepted"   # an operator took it: FEEDBACK state 2 to the device
    RESOLVED = "resolved"


class Ack(NamedTuple):
    """One decoded ``wt.ack/1``. ``at`` is the platform's time, or the receiver's
    ``received_at`` when the payload has none (None if neither is known)."""

    event_id: str
    status: AckStatus
    by: str | None
    at: float | None


def encode_ack(*, event_id: str, status: AckStatus | str, by: str, at: float) -> bytes:
    """Platform side (simulators, tests): a ``wt.ack/1`` payload."""
    return dumps({"schema": ACK_SCHEMA, "event_id": event_id, "status": AckStatus(status).value,
                  "by": by, "at": rfc3339(at)})


def decode_ack(payload: bytes, received_at: float | None = None) -> Ack | Rejected:
    obj = load(payload, ACK_SCHEMA)
    if isinstance(obj, Rejected):
        return obj
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return Rejected("'event_id' missing or not a string", ACK_SCHEMA, "event_id")
    try:
        status = AckStatus(obj.get("status"))
    except (ValueError, TypeError):
        return Rejected(f"'status' {obj.get('status')!r} is not one of received, accepted, resolved",
                        ACK_SCHEMA, "status", event_id)
    by = obj.get("by")
    at = parse_time(obj.get("at"))
    return Ack(event_id, status, by if isinstance(by, str) else None, received_at if at is None else at)
