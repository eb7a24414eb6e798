"""What every JSON payload shares: the rejection type, RFC 3339 times, the envelope check.

Every payload of docs/mqtt.md is a UTF-8 JSON object with a ``schema`` field
``<name>/<major>``. A decoder accepts exactly its own ``<name>/1``; anything else becomes a
:class:`Rejected` naming what was wrong. Nothing here raises on garbage.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import time
from dataclasses import dataclass
from typing import Any

_EVENT_JSON = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True).encode


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (the wire form of every payload)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def dumps_event(doc: dict[str, Any]) -> bytes:
    """Compact ASCII JSON of an event body; values JSON cannot carry are written with ``str``."""
    return _EVENT_JSON(doc).encode()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload (or topic) that is not a valid message of the expected schema.

    ``reason`` says why, for the log; ``schema`` is the schema the decoder expected;
    ``field`` names the offending field when one is to blame; ``ref`` is the message's
    own id (``event_id``, ``cmd_id``) when it could still be read, so a receiver can
    answer "error" for it.
    """

    reason: str
    schema: str | None = None
    field: str | None = None
    ref: str | None = None


@functools.lru_cache(maxsize=64)
def _utc_seconds(s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))


def rfc3339(epoch_s: float) -> str:
    """``2026-11-23T06:00:00.123Z`` (UTC, milliseconds)."""
    ms = int(round(epoch_s * 1000))
    return f"{_utc_seconds(ms // 1000)}.{ms % 1000:03d}Z"


def parse_time(v: Any) -> float | None:
    """An RFC 3339 time with an offset (``Z`` or ``+hh:mm``) -> epoch seconds; else None."""
    if not isinstance(v, str) or not v:
        return None
    return _parse_time(v)


@functools.lru_cache(maxsize=8192)
def _parse_time(v: str) -> float | None:
    try:
        dt = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None                # RFC 3339 requires an offset; a naive time is ambiguous
    return dt.timestamp()


def as_int(v: Any) -> int | None:
    """An integer (``3`` or ``3.0``, never a bool) or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def as_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def load(payload: bytes, schema: str) -> dict[str, Any] | Rejected:
    """The payload as a JSON object carrying exactly ``schema`` (``<name>/1``), or why not."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError) as exc:
        return Rejected(f"not UTF-8 JSON: {exc}", schema)
    if not isinstance(obj, dict):
        return Rejected("payload is not a JSON object", schema)
    got = obj.get("schema")
    if got == schema:
        return obj
    return Rejected(_schema_problem(got, schema), schema, "schema")


def _schema_problem(got: Any, want: str) -> str:
    name, _, major = want.partition("/")
    if not isinstance(got, str) or "/" not in got:
        return f"missing or malformed 'schema' (expected '{want}')"
    got_name, _, got_major = got.partition("/")
    if got_name == name and got_major != major:
        return f"unsupported major version {got!r}; this side speaks {want}"
    return f"schema {got!r} is not {want}"
