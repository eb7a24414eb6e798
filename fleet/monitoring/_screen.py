"""Poison screening for the ingest (pure): what may never reach the database, and who owns a device.

A message is **quarantined** (kept as evidence in ``ingest_quarantine``, counted, PUBACKed,
never retried) when it is

* larger than :data:`MAX_PAYLOAD_BYTES` (gateway messages are < 4 KiB; docs/mqtt.md);
* carrying a NUL character, raw or escaped as ``\\u0000`` (PostgreSQL TEXT cannot hold
  it: one such health message used to fail its whole batch on every retry, forever);
* text that is not UTF-8, JSON that is not JSON, a lone UTF-16 surrogate (``\\ud800``:
  Python decodes it, no database can store it), the literals ``NaN``/``Infinity``;
* an integer beyond its column (BIGINT, or INTEGER for RSSI);
* not a valid message of its schema (the contract decoder's ``Rejected``);
* about a device its gateway does not own, or re-using the ``event_id`` of another
  gateway's alarm (gateway A must never rewrite gateway B's rows).

**Ownership** (:func:`apply_ownership`). The gateway in the topic is the sender (the
broker's ACL binds a gateway's login to its own topics). A device belongs to

1. the gateway of the installation (``commissioning`` or ``active``) that holds the item
   whose ``hw_id`` is the device id — the registry decides whenever it knows the device;
2. otherwise the gateway that reported the device first (``device_status.gateway_id``,
   which no other gateway can then overwrite);
3. otherwise nobody yet: the first sender claims it.

A health message that names a foreign device keeps its own sample and devices; the
foreign entries are dropped and the message is quarantined once (reason ``not_owner``).
An alarm about a foreign device is quarantined whole.

Cheap on the hot path: the byte scans are C-speed ``in`` tests; the slow exact checks
run only when a scan hits.
"""
from __future__ import annotations

import enum
import json
from typing import Any, Iterable, Mapping, NamedTuple

MAX_PAYLOAD_BYTES = 64 * 1024
HEAD_BYTES = 32                       # first bytes of a quarantined payload, kept as hex
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_INT32 = (-(2 ** 31), 2 ** 31 - 1)


class Reason(str, enum.Enum):
    """Why a message was quarantined (the ``reason`` column and the counters' keys)."""

    TOPIC = "topic"                   # not a topic of contracts.topics
    OVERSIZED = "oversized"
    NUL = "nul"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    BAD_TEXT = "bad_text"             # lone surrogate: not storable text
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    INVALID = "invalid"               # valid JSON, not a valid message of its schema
    NOT_OWNER = "not_owner"           # a device of another gateway
    EVENT_CLASH = "event_clash"       # the event_id of another gateway's alarm
    DECODER_ERROR = "decoder_error"   # a decoder raised (a bug; never expected)
    STORE_REJECTED = "store_rejected"  # the database refused this message alone (safety net)


class Quarantined(NamedTuple):
    reason: str
    topic: str
    source: str                      # gateway (or tracker) id from the topic; "" if unparseable
    size: int
    head_hex: str
    at: float                        # fleet clock when received
    detail: str | None


def text(v: Any, limit: int = 300) -> str:
    """Storable, bounded text: no NUL, no lone surrogate."""
    s = str(v)[:limit]
    s = s.replace("\x00", "\\x00")
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def quarantined(reason: Reason | str, topic: str, source: str | None, payload: bytes, at: float,
                detail: Any = None) -> Quarantined:
    return Quarantined(Reason(reason).value, text(topic, 256), text(source or "", 128), len(payload),
                       bytes(payload[:HEAD_BYTES]).hex(), at, None if detail is None else text(detail))


def _scan_strings(obj: Any) -> Reason | None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            if "\x00" in o:
                return Reason.NUL
            try:
                o.encode("utf-8")
            except UnicodeEncodeError:
                return Reason.BAD_TEXT
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return None


class _NonFinite(ValueError):
    pass


def _no_constants(name: str) -> float:
    raise _NonFinite(name)


def precheck(payload: bytes) -> tuple[Reason, str] | None:
    """Byte-level poison, before any decoder sees the payload. ``(reason, detail)`` or None."""
    n = len(payload)
    if n > MAX_PAYLOAD_BYTES:
        return Reason.OVERSIZED, f"{n} bytes > {MAX_PAYLOAD_BYTES}"
    if b"\x00" in payload:
        return Reason.NUL, f"NUL byte at offset {payload.index(0)}"
    escaped = b"\\u" in payload
    constants = b"NaN" in payload or b"Infinity" in payload
    if not (escaped or constants):
        return None
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except _NonFinite as exc:
        return Reason.NON_FINITE, f"{exc} is not a JSON number"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None                   # the decoder names the problem
    if escaped:
        r = _scan_strings(doc)
        if r is Reason.NUL:
            return r, "a string holds \\u0000"
        if r is Reason.BAD_TEXT:
            return r, "a string holds a lone UTF-16 surrogate"
    return None


def classify_rejection(payload: bytes, reason: str) -> Reason:
    """A decoder's Rejected -> NOT_UTF8 / NOT_JSON / INVALID."""
    if reason.startswith("not UTF-8 JSON"):
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return Reason.NOT_UTF8
        return Reason.NOT_JSON
    return Reason.INVALID


def _in(v: int | None, bounds: tuple[int, int]) -> bool:
    return v is None or bounds[0] <= v <= bounds[1]


def health_out_of_range(h: Any) -> str | None:
    """An integer of a Health record (or its devices) that no column could hold."""
    for name in ("uptime_s", "backlog", "journal_depth", "alarms_pending", "config_version"):
        if not _in(getattr(h, name), _INT64):
            return f"{name} out of range"
    for d in h.devices:
        if not _in(d.rssi, _INT32):
            return f"device {text(d.device_id, 40)} rssi out of range"
    return None


def int64_ok(v: int | None) -> bool:
    return _in(v, _INT64)


class Origin(NamedTuple):
    """Where a decoded record came from (for a quarantine row written later)."""

    topic: str
    source: str
    payload: bytes
    at: float


def device_key(device_id: str) -> str:
    return device_id.lower()


def apply_ownership(batch: Any, owners: Mapping[str, str | None]) -> dict[str, str]:
    """Drop what the sending gateway does not own (module docstring). ``owners``: device key ->
    owning gateway (or None) for every device in the batch, as the store knows it now.

    Returns the claims made by this batch (device key -> gateway), first sender first.
    """
    known: dict[str, str | None] = dict(owners)
    claims: dict[str, str] = {}

    def owner_ok(device_id: str, gw: str) -> bool:
        k = device_key(device_id)
        o = known.get(k)
        if o is None:
            known[k] = gw
            claims[k] = gw
            return True
        return o == gw

    kept_h, kept_hs = [], []
    for h, src in zip(batch.health, batch.health_src):
        foreign = [d.device_id for d in h.devices if not owner_ok(d.device_id, h.gateway_id)]
        if foreign:
            fk = {device_key(f) for f in foreign}
            h = h._replace(devices=tuple(d for d in h.devices if device_key(d.device_id) not in fk))
            batch.quarantine_add(Reason.NOT_OWNER, src, "device(s) of another gateway: " + ", ".join(
                f"{text(f, 40)} (owner {known.get(device_key(f))})" for f in foreign[:5]))
        kept_h.append(h)
        kept_hs.append(src)
    batch.health, batch.health_src = kept_h, kept_hs
    kept_a, kept_as = [], []
    for a, src in zip(batch.alarms, batch.alarm_src):
        if a.device_id and not owner_ok(a.device_id, a.gateway_id):
            batch.quarantine_add(Reason.NOT_OWNER, src, f"device {text(a.device_id, 40)} belongs to "
                                                        f"{known.get(device_key(a.device_id))}")
            continue
        kept_a.append(a)
        kept_as.append(src)
    batch.alarms, batch.alarm_src = kept_a, kept_as
    return claims


def apply_event_owners(batch: Any, existing: Mapping[str, str | None]) -> None:
    """Alarms and acks whose ``event_id`` is already another gateway's alarm are quarantined:
    the upsert would otherwise rewrite that gateway's row (class, type, test, ack times)."""
    seen: dict[str, str | None] = dict(existing)
    kept_a, kept_as = [], []
    for a, src in zip(batch.alarms, batch.alarm_src):
        o = seen.get(a.event_id)
        if o is not None and o != a.gateway_id:
            batch.quarantine_add(Reason.EVENT_CLASH, src, f"event_id {text(a.event_id, 80)} is an alarm of {o}")
            continue
        seen[a.event_id] = a.gateway_id
        kept_a.append(a)
        kept_as.append(src)
    batch.alarms, batch.alarm_src = kept_a, kept_as
    kept_k, kept_ks = [], []
    for k, src in zip(batch.acks, batch.ack_src):
        o = seen.get(k.event_id)
        if o is not None and o != src.source:
            batch.quarantine_add(Reason.EVENT_CLASH, src, f"ack on {src.source}'s topic for an alarm of {o}")
            continue
        seen.setdefault(k.event_id, src.source)
        kept_k.append(k)
        kept_ks.append(src)
    batch.acks, batch.ack_src = kept_k, kept_ks


def device_ids(batch: Any) -> set[str]:
    out = {device_key(d.device_id) for h in batch.health for d in h.devices}
    out.update(device_key(a.device_id) for a in batch.alarms if a.device_id)
    return out


def event_ids(batch: Any) -> set[str]:
    return {a.event_id for a in batch.alarms} | {k.event_id for k in batch.acks}


def merge(rows: Iterable[Quarantined]) -> list[tuple[Quarantined, int, float]]:
    """One entry per (source, reason, topic): (the last message, count, first time seen)."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    for q in rows:
        key = (q.source, q.reason, q.topic)
        cur = out.get(key)
        if cur is None:
            out[key] = [q, 1, q.at]
        else:
            cur[0], cur[1], cur[2] = q, cur[1] + 1, min(cur[2], q.at)
    return [(q, n, first) for q, n, first in out.values()]
