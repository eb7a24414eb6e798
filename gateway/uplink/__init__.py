"""MQTT uplink: domain forwarder (EventSink), platform acks, escalation, paho adapter.

API (the composition root wires it; all constructors take keyword arguments)::

    from gateway.journal import SqliteJournal, JournalWriter
    from gateway.uplink import Forwarder, LoggingLocalSignal, Backoff
    from gateway.uplink.mqtt import MqttLink, TlsSettings, gateway_link   # the only paho module

    journal = SqliteJournal(cfg.journal.path, max_telemetry_rows=...)
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    primary = gateway_link(gateway_id="gw-0001", version=__version__, clock=clock,
                           host=..., port=8883, route="primary", tls=TlsSettings(ca_file=...),
                           username=..., password=..., dispatch=loop.call_soon_threadsafe).start()
    fwd = Forwarder(gateway_id="gw-0001", journal=writer, primary=primary, fallback=None,
                    clock=clock, local_signal=LoggingLocalSignal(), ack_timeout_s=30,
                    on_platform_ack=send_feedback, journal_recovery=journal.recovery)
    task = loop.create_task(fwd.async_run())
    fwd.submit(event, on_stored)          # EventSink; on_stored(event, is_new) on the loop
    fwd.raise_technical(EventCode.MAINS_LOST, {...})
    primary.subscribe(Topics("gw-0001").config, handler)   # hook for config/cmd topics
    fwd.status().to_dict()                 # `gateway status --json`
    # shutdown: task.cancel(); fwd.flush(); primary.stop(); writer.stop(); journal.close()

Ports (gateway.uplink.ports): ``Publisher`` (a route), ``LocalSignal``, ``JournalFront``.
Payload codecs: gateway.uplink.payload (docs/mqtt.md). Fakes: gateway.uplink.testing.
Errors: ``UplinkError`` (root) > ``NotConnected``, ``PublishFailed``.
"""
from ._errors import NotConnected, PublishFailed, UplinkError
from .backoff import Backoff
from .forwarder import JOURNAL_FAULT_CODE, AlarmRecord, Forwarder, UplinkStatus
from .payload import Ack, AckStatus, Rejected, Route, Topics
from .signal import LoggingLocalSignal

__all__ = [
    "JOURNAL_FAULT_CODE", "Ack", "AckStatus", "AlarmRecord", "Backoff", "Forwarder", "LoggingLocalSignal",
    "NotConnected", "PublishFailed", "Rejected", "Route", "Topics", "UplinkError", "UplinkStatus",
]
