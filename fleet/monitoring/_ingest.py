"""Ingest: route raw MQTT messages to records and fold them into batches (pure).

A worker (``_worker``) receives messages from a shared subscription, collects them for
up to ``flush_s`` or ``max_batch`` messages, decodes them into a :class:`Batch` and hands
it to a :class:`MonitorSink` in one transaction; only then are the messages
acknowledged to the broker (at-least-once; the tables de-duplicate redeliveries).

Nothing here raises on garbage: poison (``_screen``) and messages the contract decoders
reject become :class:`Quarantined` entries of the batch — stored with the batch, counted
by reason in ``batch.rejected``, acknowledged like any other message, never retried.
Each kept record remembers its :class:`Origin` so the sink can still quarantine it when
the store shows the sender does not own the device or the event.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from contracts import topics as _topics
from contracts.payloads import CmdStatus, decode_update_result
from contracts.topics import Kind, parse
from fleet.monitoring._codec import (EVENT_SCHEMA, Ack, Alarm, Health, Rejected, State, decode_ack, decode_alarm,
                                     decode_health, decode_state)
from fleet.monitoring._screen import (Origin, Quarantined, Reason, classify_rejection, health_out_of_range,
                                      int64_ok, precheck, quarantined)

SHARE_GROUP = _topics.SHARE_GROUP
TOPICS = _topics.fleet_ingest_filters()
CANCEL_TYPES = frozenset({"button_cancel", "fall_cancelled"})


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    return _topics.shared(topic_filter, group)


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
    rejected: Counter = field(default_factory=Counter)   # quarantine reason -> count
    quarantine: list[Quarantined] = field(default_factory=list)
    health_src: list[Origin] = field(default_factory=list)   # parallel to health / alarms / acks
    alarm_src: list[Origin] = field(default_factory=list)
    ack_src: list[Origin] = field(default_factory=list)
    messages: int = 0

    def __len__(self) -> int:
        return self.messages

    def quarantine_add(self, reason: Reason | str, origin: Origin, detail: object = None) -> None:
        q = quarantined(reason, origin.topic, origin.source, origin.payload, origin.at, detail)
        self.quarantine.append(q)
        self.rejected[q.reason] += 1


class MonitorSink(Protocol):
    def write(self, batch: Batch) -> Batch | None:
        """Store the whole batch atomically (idempotent for redelivered messages); return the batch
        as stored when the sink screened it further (its ``rejected`` counts), else None."""


def _decode_update(gw: str, payload: bytes, received_at: float) -> UpdateReport | Rejected:
    r = decode_update_result(payload)
    if isinstance(r, Rejected):
        return r
    return UpdateReport(r.cmd_id, gw, r.device, r.deployment, r.status.value, r.phase, r.error, received_at)


def add_message(batch: Batch, topic: str, payload: bytes, received_at: float) -> None:
    """Decode one message into ``batch``; garbage is quarantined and counted, never raised."""
    batch.messages += 1
    try:
        _add(batch, topic, payload, received_at)
    except Exception as exc:         # a decoder bug must not take the worker down
        batch.quarantine_add(Reason.DECODER_ERROR, Origin(str(topic), "", bytes(payload), received_at),
                             f"{type(exc).__name__}: {exc}")


def _add(batch: Batch, topic: str, payload: bytes, received_at: float) -> None:
    parts = parse(topic)
    gw = "" if parts is None else (parts.gateway_id if parts.gateway_id is not None else parts.device_id or "")
    origin = Origin(topic, gw, payload, received_at)
    if parts is None:
        batch.quarantine_add(Reason.TOPIC, origin, "not a topic of docs/mqtt.md")
        return
    poison = precheck(payload)
    if poison is not None:
        batch.quarantine_add(poison[0], origin, poison[1])
        return
    kind = parts.kind
    rec: object
    if kind is Kind.HEALTH:
        rec = decode_health(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            bad = health_out_of_range(rec)
            if bad:
                batch.quarantine_add(Reason.OUT_OF_RANGE, origin, bad)
                return
            batch.health.append(rec)
            batch.health_src.append(origin)
    elif kind is Kind.STATE:
        rec = decode_state(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            batch.states.append(rec)
    elif kind is Kind.ALARM:
        rec = decode_alarm(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            batch.alarms.append(rec)
            batch.alarm_src.append(origin)
    elif kind is Kind.EVENT:
        rec = decode_alarm(gw, payload, received_at, schema=EVENT_SCHEMA)
        if isinstance(rec, Alarm):
            if rec.type in CANCEL_TYPES:        # only cancellations matter for statistics
                batch.alarms.append(rec)
                batch.alarm_src.append(origin)
            return
    elif kind is Kind.ACK:
        rec = decode_ack(payload, received_at)
        if not isinstance(rec, Rejected):
            batch.acks.append(rec)
            batch.ack_src.append(origin)
    elif kind is Kind.CONFIG_APPLIED:
        from fleet.config import decode_applied

        rec = decode_applied(topic, payload, now=received_at)
        if not isinstance(rec, Rejected):
            if not int64_ok(rec.version):
                batch.quarantine_add(Reason.OUT_OF_RANGE, origin, "version out of range")
                return
            batch.applied.append(rec)
            return
    elif kind is Kind.CMD_RESULT:
        rec = _decode_update(gw, payload, received_at)
        if not isinstance(rec, Rejected):
            if rec.status != CmdStatus.PROGRESS.value:
                batch.updates.append(rec)
            return
    else:                                       # a kind the fleet does not ingest (cmd, config)
        batch.quarantine_add(Reason.TOPIC, origin, f"the fleet does not ingest {kind.value}")
        return
    if isinstance(rec, Rejected):
        batch.quarantine_add(classify_rejection(payload, rec.reason), origin,
                             f"{kind.value}: {rec.reason}" + (f" (field {rec.field})" if rec.field else ""))


def build_batch(messages: Iterable[tuple[str, bytes, float]]) -> Batch:
    b = Batch()
    for topic, payload, at in messages:
        add_message(b, topic, payload, at)
    return b
