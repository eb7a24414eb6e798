"""Pure codecs for the docs/mqtt.md payloads (no I/O). Decoders never raise on garbage."""
from __future__ import annotations

import datetime as _dt
import enum
import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.domain.model import Event, EventClass, EventCode, Role

PREFIX = "wt/v1"


class Route(str, enum.Enum):
    PRIMARY = "primary"
    FALLBACK = "fallback"


class AckStatus(str, enum.Enum):
    RECEIVED = "received"   # the platform has the alarm: stop re-sending
    ACCEPTED = "accepted"   # an operator took it: FEEDBACK state 2 to the device
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Topics:
    """All topics of one gateway (docs/mqtt.md topic tree)."""

    gateway_id: str

    def _t(self, leaf: str) -> str:
        return f"{PREFIX}/gw/{self.gateway_id}/{leaf}"

    @property
    def alarm(self) -> str:
        return self._t("alarm")

    @property
    def event(self) -> str:
        return self._t("event")

    @property
    def ack(self) -> str:
        return self._t("ack")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def health(self) -> str:
        return self._t("health")

    @property
    def config(self) -> str:
        return self._t("config")

    @property
    def config_applied(self) -> str:
        return self._t("config/applied")

    @property
    def cmd(self) -> str:
        return self._t("cmd")

    @property
    def cmd_result(self) -> str:
        return self._t("cmd/result")


@functools.lru_cache(maxsize=64)
def _utc_seconds(s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))


def rfc3339(epoch_s: float) -> str:
    """``2026-11-23T06:00:00.123Z`` (UTC, milliseconds)."""
    ms = int(round(epoch_s * 1000))
    return f"{_utc_seconds(ms // 1000)}.{ms % 1000:03d}Z"


def parse_rfc3339(text: str) -> float | None:
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError, TypeError):
        return None


# Derived once from the enums (constants): (schema, type, class) per code, role names.
_CODE_META: dict[EventCode, tuple[str, str, str]] = {
    c: ("wt.event/1" if c.event_class is EventClass.EVENT else "wt.alarm/1", c.type_name, c.event_class.value)
    for c in EventCode
}
_ROLE_NAME: dict[Role, str] = {r: r.name.lower() for r in Role}
_ROUTE_NAME: dict[str, str] = {"primary": "primary", "fallback": "fallback"}
_JSON = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True)


def event_payload(event: Event, *, gateway_id: str, attempt: int, route: Route | str, sent_at: float) -> dict[str, Any]:
    schema, type_name, cls = _CODE_META[event.code]
    route_name = _ROUTE_NAME.get(route) if isinstance(route, str) else None  # type: ignore[call-overload]
    return {
        "schema": schema,
        "event_id": event.event_id,
        "gateway": gateway_id,
        "device": event.device_id,
        "role": _ROLE_NAME[event.role] if event.role is not None else None,
        "class": cls,
        "type": type_name,
        "test": event.test,
        "occurred_at": rfc3339(event.occurred_at),
        "received_at": rfc3339(event.received_at),
        "sent_at": rfc3339(sent_at),
        "attempt": attempt,
        "route": route_name or Route(route).value,
        "data": event.data,
    }


def encode_event(event: Event, *, gateway_id: str, attempt: int, route: Route | str, sent_at: float) -> bytes:
    """``wt.alarm/1`` for alarms, ``wt.event/1`` otherwise (UTF-8 JSON)."""
    return _JSON.encode(event_payload(event, gateway_id=gateway_id, attempt=attempt, route=route,
                                      sent_at=sent_at)).encode()


def encode_state(*, gateway_id: str, online: bool, version: str, since: float) -> bytes:
    return json.dumps({"schema": "wt.state/1", "gateway": gateway_id, "online": online,
                       "version": version, "since": rfc3339(since)}, separators=(",", ":")).encode()


def encode_ack(*, event_id: str, status: AckStatus | str, by: str, at: float) -> bytes:
    """Platform side (tests, simulators): a ``wt.ack/1`` payload."""
    return json.dumps({"schema": "wt.ack/1", "event_id": event_id, "status": AckStatus(status).value,
                       "by": by, "at": rfc3339(at)}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Ack:
    event_id: str
    status: AckStatus
    by: str | None
    at: float | None


@dataclass(frozen=True)
class Rejected:
    """A payload that is not a valid message of the expected schema; ``reason`` says why."""

    reason: str


def _load(payload: bytes, schema_name: str) -> dict[str, Any] | Rejected:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected(f"not UTF-8 JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejected("payload is not a JSON object")
    schema = obj.get("schema")
    if not isinstance(schema, str) or "/" not in schema:
        return Rejected(f"missing or malformed 'schema' (expected '{schema_name}/1')")
    name, _, major = schema.partition("/")
    if name != schema_name:
        return Rejected(f"schema {schema!r} is not {schema_name}/1")
    if major != "1":
        return Rejected(f"unsupported major version {schema!r}; this gateway speaks {schema_name}/1")
    return obj


def decode_ack(payload: bytes) -> Ack | Rejected:
    obj = _load(payload, "wt.ack")
    if isinstance(obj, Rejected):
        return obj
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return Rejected("'event_id' missing or not a string")
    try:
        status = AckStatus(obj.get("status"))
    except ValueError:
        return Rejected(f"'status' {obj.get('status')!r} is not one of received, accepted, resolved")
    by = obj.get("by") if isinstance(obj.get("by"), str) else None
    at = parse_rfc3339(obj["at"]) if isinstance(obj.get("at"), str) else None
    return Ack(event_id=event_id, status=status, by=by, at=at)


@dataclass(frozen=True)
class Published:
    """A decoded ``wt.alarm/1`` / ``wt.event/1`` (platform side: receivers, tests, benches)."""

    event_id: str
    alarm: bool
    attempt: int
    route: str
    body: dict[str, Any]


def decode_published(payload: bytes) -> Published | Rejected:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected(f"not UTF-8 JSON: {exc}")
    if not isinstance(obj, dict) or obj.get("schema") not in ("wt.alarm/1", "wt.event/1"):
        return Rejected("not a wt.alarm/1 or wt.event/1 object")
    event_id, attempt = obj.get("event_id"), obj.get("attempt")
    if not isinstance(event_id, str) or not isinstance(attempt, int):
        return Rejected("'event_id' or 'attempt' missing")
    return Published(event_id=event_id, alarm=obj["schema"] == "wt.alarm/1", attempt=attempt,
                     route=str(obj.get("route")), body=obj)

