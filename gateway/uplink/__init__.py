"""MQTT uplink: domain forwarder (EventSink), platform acks, escalation, paho adapter.

API (the composition root wires it; every constructor takes keyword arguments)::

    from gateway.journal import SqliteJournal, JournalWriter
    from gateway.uplink import Forwarder, LoggingLocalSignal, Backoff, Topics
    from gateway.uplink.mqtt import MqttLink, TlsSettings, gateway_link, alarm_lane_link  # only paho module

    loop = asyncio.get_running_loop()
    journal = SqliteJournal(cfg.journal.path, max_telemetry_rows=100_000)
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    tls = TlsSettings(ca_file=..., cert_file=..., key_file=...)          # or None
    primary = gateway_link(gateway_id="gw-0001", version=__version__, clock=clock, route="primary",
                           host=..., port=8883, tls=tls, username=..., password=...,
                           loop=loop)                                     # driven by the event loop
    lane = alarm_lane_link(gateway_id="gw-0001", clock=clock, host=..., port=8883, tls=tls,
                           username=..., password=..., dispatch=loop.call_soon_threadsafe)  # own thread
    fallback = gateway_link(..., route="fallback", host=<4G broker>, loop=loop)            # optional
    fwd = Forwarder(gateway_id="gw-0001", journal=writer, primary=primary, alarm_lane=lane,
                    fallback=fallback, clock=clock, local_signal=LoggingLocalSignal(),
                    ack_timeout_s=30, replay_window=64, replay_rate_per_s=500,
                    on_platform_ack=send_feedback,          # (event_id, AckStatus, Event | None)
                    on_alarm_escalated=feedback_state_3,     # (Event, step)
                    journal_recovery=journal.recovery)       # raises journal_recovered on start
    for link in (primary, lane, fallback): link.start()
    task = loop.create_task(fwd.async_run())
    fwd.submit(event, on_stored)          # EventSink; on_stored(event, is_new) on the loop
    fwd.raise_technical(EventCode.MAINS_LOST, {...})
    primary.subscribe(Topics("gw-0001").config, handler)   # hook for config/cmd: handler(topic, payload) on the loop
    fwd.status().to_dict()                # `gateway status --json`: connected, route, backlog, inflight,
                                          # unacknowledged/held alarms, shed, last alarms with latency
    # shutdown: task.cancel(); fwd.flush(); await primary.async_stop(); lane.stop(); writer.stop(); journal.close()

``on_stored`` is called once the event is durable: in the journal, or — for an alarm the
journal could not store — PUBACKed by the broker. Telemetry shed on a full disk also
reports stored (it is counted as shed); telemetry that failed to store is not reported,
so the device retransmits.

Ports (gateway.uplink.ports): ``Publisher`` (a route), ``LocalSignal``, ``JournalFront``.
Payload codecs: gateway.uplink.payload (docs/mqtt.md). Fakes, fault proxy and a platform
simulator: gateway.uplink.testing. Errors: ``UplinkError`` (root) > ``NotConnected``,
``PublishFailed``.
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
