"""Event <-> journal row body (JSON). Pure; no I/O."""
from __future__ import annotations

import json
from typing import Any

from gateway.domain.model import Event, EventCode, Role

_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


def encode_event(event: Event) -> str:
    body: dict[str, Any] = {
        "id": event.event_id,
        "dev": event.device_id,
        "code": int(event.code),
        "occ": event.occurred_at,
        "rcv": event.received_at,
        "role": int(event.role) if event.role is not None else None,
        "seq": event.seq,
        "data": event.data,
        "test": event.test,
    }
    return _JSON.encode(body)


def decode_event(text: str) -> Event:
    """Inverse of :func:`encode_event`. Raises ValueError/KeyError on a damaged body."""
    b = json.loads(text)
    role = b.get("role")
    return Event(
        event_id=b["id"],
        device_id=b["dev"],
        code=EventCode(b["code"]),
        occurred_at=float(b["occ"]),
        received_at=float(b["rcv"]),
        role=Role(role) if role is not None else None,
        seq=b.get("seq"),
        data=b.get("data") or {},
        test=bool(b.get("test", False)),
    )
