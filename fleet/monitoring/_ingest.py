"""Ingest: route raw MQTT messages to records and fold them into batches (pure).

A worker (``_worker``) receives messages from a shared subscription, collects them for
up to ``flush_s`` or ``max_batch`` messages, decodes them into a :class:`Batch` and hands
it to a :class:`MonitorSink` in one transaction; only then are the messages
acknowledged to the broker (at-least-once; the tables de-duplicate redeliveries).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from fleet.monitoring._codec import (EVENT_SCHEMA, Ack, Alarm, Health, Rejected, State, decode_ack, decode_alarm,
                                     decode_health, decode_state, topic_parts)

SHARE_GROUP = "fleet"
TOPICS = ("wt/v1/gw/+/health", "wt/v1/gw/+/state", "wt/v1/gw/+/config/applied", "wt/v1/gw/+/cmd/result",
          "wt/v1/gw/+/alarm", "wt/v1/gw/+/event", "wt/v1/gw/+/ack")
CANCEL_TYPES = frozenset({"button_cancel", "fall_cancelled"})


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True)
class UpdateReport:
    cmd_id: str | None
    gateway_id: str
    device_id: str | None
    deployment: str
    status: str
    phase: str | None
    error: str | None
    received_at: float


@dataclass
class Batch:
    health: list[Health] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    applied: list = field(default_factory=list)          # fleet.config.AppliedReport
    updates: list[UpdateReport] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)   # reason kind -> count
    messages: int = 0

    def __len__(self) -> int:
        return self.messages


class MonitorSink(Protocol):
    def write(self, batch: Batch) -> None:
        """Store the whole batch atomically (idempotent for redelivered messages)."""


def _decode_update(gw: str, payload: bytes, received_at: float) -> UpdateReport | Rejected:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(doc, dict) or doc.get("schema") != "wt.cmd-result/1":
        return Rejected("not a wt.cmd-result/1 object")
    raw = doc.get("detail")
    detail: dict = raw if isinstance(raw, dict) else {}
    dep = detail.get("deployment")
    status = doc.get("status")
    if not isinstance(dep, str) or status not in ("ok", "error", "progress"):
        return Rejected("not an update result")
    dev = detail.get("device")
    phase, err = detail.get("phase"), detail.get("error")
    cid = doc.get("cmd_id")
    return UpdateReport(cid if isinstance(cid, str) else None, gw, dev if isinstance(dev, str) else None, dep, status,
                        phase if isinstance(phase, str) else None, err if isinstance(err, str) else None, received_at)


def add_message(batch: Batch, topic: str, payload: bytes, received_at: float) -> None:
    """Decode one message into ``batch``; garbage is counted in ``batch.rejected``, never raised."""
    batch.messages += 1
    parts = topic_parts(topic)
    if parts is None:
        batch.rejected["topic"] += 1
        return
    _, gw, kind = parts
    rec: object
    if kind == "health":
        rec = decode_health(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            batch.health.append(rec)
    elif kind == "state":
        rec = decode_state(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            batch.states.append(rec)
    elif kind == "alarm":
        rec = decode_alarm(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            batch.alarms.append(rec)
    elif kind == "event":
        rec = decode_alarm(gw, payload, received_at, schema=EVENT_SCHEMA)
        if isinstance(rec, Alarm):
            if rec.type in CANCEL_TYPES:        # only cancellations matter for statistics
                batch.alarms.append(rec)
            return
    elif kind == "ack":
        rec = decode_ack(payload, received_at)
        if not isinstance(rec, Rejected):
            batch.acks.append(rec)
    elif kind == "config/applied":
        from fleet.config import decode_applied

        rec = decode_applied(topic, payload, now=received_at)
        if not isinstance(rec, Rejected) and type(rec).__name__ == "AppliedReport":
            batch.applied.append(rec)
            return
    elif kind == "cmd/result":
        rec = _decode_update(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            if rec.status != "progress":
                batch.updates.append(rec)
            return
    else:
        batch.rejected["topic"] += 1
        return
    if isinstance(rec, Rejected) or type(rec).__name__ == "Rejected":
        batch.rejected[kind] += 1


def build_batch(messages: Iterable[tuple[str, bytes, float]]) -> Batch:
    b = Batch()
    for topic, payload, at in messages:
        add_message(b, topic, payload, at)
    return b
