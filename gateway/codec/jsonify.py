"""Plain-JSON views of decoded values (ints, strings, hex), shared by the CLI and the vectors."""
from __future__ import annotations

import dataclasses
import enum
from typing import Any

from gateway.codec._result import Rejection
from gateway.codec.events import EventPayload
from gateway.codec.frame import Frame
from gateway.codec.payloads import Payload


def plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value if not isinstance(value, enum.IntFlag) else int(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def payload_to_json(p: Payload | Rejection) -> dict[str, Any]:
    if isinstance(p, Rejection):
        return p.to_json()
    if isinstance(p, EventPayload):
        return {"code": int(p.code), "type": p.code.type_name, "class": p.code.event_class.value,
                "age_ms": p.age_ms, "data": plain(p.data)}
    return plain(p)


def frame_to_json(frame: Frame, *, with_payload: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ver": frame.ver,
        "type": int(frame.type),
        "type_name": frame.type.name,
        "flags": int(frame.flags),
        "device_id": frame.device_id,
        "seq": frame.seq,
        "len": len(frame.payload),
        "payload_hex": frame.payload.hex(),
        "tag_hex": frame.tag.hex() if frame.tag is not None else None,
    }
    if with_payload:
        out["fields"] = payload_to_json(frame.decode_payload())
    return out
