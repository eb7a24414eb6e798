"""What every JSON payload shares: the rejection type, RFC 3339 times, the envelope check.

Every payload of docs/mqtt.md is a UTF-8 JSON object with a ``schema`` field
``<name>/<major>``. A decoder accepts exactly its own ``<name>/1``; anything else becomes a
:class:`Rejected` naming what was wrong. Nothing here raises on garbage.

Numbers are finite. Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity`` (not
JSON at all) and turns ``1e999`` into infinity; every comparison with NaN is false, so a NaN
threshold passes any range check and then disables what it sets. :func:`load_json` (used by
every decoder through :func:`load`) refuses them: the :class:`Rejected` names the field,
e.g. ``config.rules.bed.max_out_min``.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_EVENT_JSON = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True, allow_nan=False).encode


def _finite(v: Any) -> Any:
    """``v`` with every non-finite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (the wire form of every payload).

    Never writes ``NaN``/``Infinity``: every receiver refuses them (see above), and an
    alarm must never be refused for a bad sensor reading inside it — a non-finite number
    is sent as ``null`` instead."""
    try:
        return _JSON(doc).encode()
    except ValueError:
        return _JSON(_finite(doc)).encode()


def dumps_event(doc: dict[str, Any]) -> bytes:
    """Compact ASCII JSON of an event body; values JSON cannot carry are written with ``str``,
    non-finite numbers as ``null`` (as :func:`dumps`)."""
    try:
        return _EVENT_JSON(doc).encode()
    except ValueError:
        return _EVENT_JSON(_finite(doc)).encode()


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


# Bounded small: on a gateway nearly every string is new (each platform ack has its own
# time), so 8192 entries were ~2 MB of resident memory filling over a month for no hits
# (bench/gateway_soak.py); 1024 still absorbs the repeats within an ingest burst.
@functools.lru_cache(maxsize=1024)
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


NOT_FINITE = "not a finite number"   # in the reason of every Rejected for NaN / ±Infinity


class _NonFinite(ValueError):
    """Raised by the strict decoder's number hooks (caught in :func:`load_json`)."""


def _refuse_constant(text: str) -> Any:
    raise _NonFinite(text)


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):      # 1e999: too large for a double
        raise _NonFinite(text)
    return v


class _Marker:
    """Stands for a non-finite number while the lenient decoder looks for its field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _mark_float(text: str) -> Any:
    v = float(text)
    return v if math.isfinite(v) else _Marker(text)


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_MARKING = json.JSONDecoder(parse_constant=_Marker, parse_float=_mark_float)


def _find_marker(obj: Any, path: str) -> tuple[str, str] | None:
    if isinstance(obj, _Marker):
        return path, obj.text
    if isinstance(obj, dict):
        for k, v in obj.items():
            hit = _find_marker(v, f"{path}.{k}" if path else str(k))
            if hit is not None:
                return hit
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            hit = _find_marker(v, f"{path}[{i}]")
            if hit is not None:
                return hit
    return None


def load_json(payload: bytes | str, schema: str | None = None) -> Any | Rejected:
    """Any JSON value of ``payload`` (UTF-8), or a :class:`Rejected` saying why not.

    Refuses non-finite numbers (``NaN``, ``Infinity``, ``-Infinity``, ``1e999``): the
    rejection's ``field`` is the dotted path of the first one (``config.rules.bed.max_out_min``,
    ``points[0][1]``; ``<root>`` for a bare number) and its ``reason`` contains :data:`NOT_FINITE`.
    """
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
        return _STRICT.decode(text)
    except _NonFinite as exc:
        try:
            where = _find_marker(_MARKING.decode(text), "")
        except (ValueError, RecursionError):   # malformed further on, or nested too deep to walk
            where = None
        field, bad = where if where is not None else ("", str(exc))
        field = field or "<root>"
        return Rejected(f"{field} = {bad}: {NOT_FINITE} (JSON numbers must be finite: no NaN or Infinity)",
                        schema, field)
    except (UnicodeDecodeError, ValueError, AttributeError, TypeError, RecursionError) as exc:
        return Rejected(f"not UTF-8 JSON: {exc}", schema)


def load(payload: bytes, schema: str) -> dict[str, Any] | Rejected:
    """The payload as a JSON object carrying exactly ``schema`` (``<name>/1``), or why not."""
    obj = load_json(payload, schema)
    if isinstance(obj, Rejected):
        return obj
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
