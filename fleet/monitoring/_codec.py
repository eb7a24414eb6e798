"""The gateway → fleet payloads the monitoring ingest reads (docs/mqtt.md).

The codecs are the shared contract (:mod:`contracts.payloads`, never raising on garbage:
a :class:`Rejected` with the reason); this module names the ones monitoring uses.
Records are typed NamedTuples (cheap on the ingest hot path); times on the wire are
RFC 3339 UTC, records carry epoch seconds.
"""
from __future__ import annotations

from contracts.payloads import (ACK_SCHEMA, ALARM_SCHEMA, EVENT_SCHEMA, HEALTH_SCHEMA, STATE_SCHEMA, Ack, Alarm,
                                DeviceHealth, Health, Rejected, State, decode_ack, decode_alarm, decode_health,
                                decode_state, parse_time)
from contracts.topics import parse


def topic_parts(topic: str) -> tuple[str, str, str] | None:
    """A gateway's topic -> ("gw", id, kind) (kind may contain a slash); a tracker's own
    topic -> ("dev", id, kind); None for anything else (``contracts.topics.parse``)."""
    p = parse(topic)
    if p is None:
        return None
    if p.gateway_id is not None:
        return "gw", p.gateway_id, p.kind.value
    return "dev", p.device_id or "", p.kind.value


__all__ = [
    "ACK_SCHEMA", "ALARM_SCHEMA", "EVENT_SCHEMA", "HEALTH_SCHEMA", "STATE_SCHEMA", "Ack", "Alarm", "DeviceHealth",
    "Health", "Rejected", "State", "decode_ack", "decode_alarm", "decode_health", "decode_state", "parse_time",
    "topic_parts",
]
