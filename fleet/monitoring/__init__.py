"""Monitoring: ingest of gateway health/state/alarms over MQTT v5 shared subscriptions,
status queries (offline, silent devices, low battery, failed updates) and benefit statistics.
Poison input and devices a gateway does not own are quarantined (``_screen``), never stored.

Domain modules are pure; ``_sql`` is the fleet.store adapter; MQTT comes from fleet.mqtt.
"""
from fleet.monitoring._codec import (Ack, Alarm, DeviceHealth, Health, Rejected, State, decode_ack, decode_alarm,
                                     decode_health, decode_state, parse_time, topic_parts)
from fleet.monitoring._ingest import (CANCEL_TYPES, SHARE_GROUP, TOPICS, Batch, MonitorSink, UpdateReport,
                                      add_message, build_batch, shared)
from fleet.monitoring._screen import MAX_PAYLOAD_BYTES, Quarantined, Reason
from fleet.monitoring._sql import SqlMonitorSink
from fleet.monitoring._worker import IngestWorker, WorkerStats

__all__ = [
    "Ack", "Alarm", "Batch", "CANCEL_TYPES", "DeviceHealth", "Health", "IngestWorker", "MAX_PAYLOAD_BYTES",
    "MonitorSink", "Quarantined", "Reason", "Rejected",
    "SHARE_GROUP", "SqlMonitorSink", "State", "TOPICS", "UpdateReport", "WorkerStats", "add_message", "build_batch",
    "decode_ack", "decode_alarm", "decode_health", "decode_state", "parse_time", "shared", "topic_parts",
]
