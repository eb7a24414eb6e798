"""The gateway daemon: the composition root ``bootstrap(config, ...)``, the wired runtime,
and ``gateway run``'s main loop.

One asyncio event loop owns the domain (ingress, rules, forwarding decisions, device
registry). Adapters whose libraries block run in their own threads and hand results to
the loop with ``loop.call_soon_threadsafe``: pyserial readers (gateway/adapters/transports/
serial_link.py), the SQLite journal writer (gateway/adapters/journal), and the MQTT alarm lane's
paho network loop (gateway/adapters/mqtt/, ThreadDriver). The primary MQTT connection is driven by the
event loop (paho's socket via ``add_reader``/``add_writer``). BLE (bleak), zeroconf and
the status endpoint are asyncio-native. Ingress and the rule engine write journal state
through the writer's queued API: the loop never waits for an fsync.

Data flow::

    serial / BLE / emulated bytes ──► Ingress.feed/advert ──► IngressResult     (_ingest.py)
        .device_updates ──► DeviceRegistry ──► supervision + battery rules, status, health
        .replies        ──► the link (ACK DUPLICATE, ERROR)
        .events         ──► Forwarder.submit(event, on_stored)
                              alarms: published at once (fast path) while journaled
                              on_stored(event, is_new) ──► ACK the device; rules.on_event
    RuleEngine.tick (every supervision.tick_s) ──► gateway events ──► Forwarder.submit
    platform wt.ack/1 ──► Forwarder ──► FEEDBACK frame to the device     (_ingest.DeviceFeedback)
    fleet wt.cmd/1    ──► _commands.py (ping, test_mode, pair) / _upgrades.py (ota, update)
    fleet wt.config/1 ──► _config_push.py (validate, re-bootstrap, roll back, report)

Modules: ``_bootstrap`` (the composition root: builds everything), ``_runtime`` (the wired
gateway: start/stop order), ``_ingest``, ``_links``, ``_routes``, ``_status``, ``_ble``,
``_commands``, ``_upgrades``, ``_config_push``, ``_preflight``, ``_main`` (signals, GIL
interval), ``_service`` (systemd notifications, watchdog health), ``_errors``.

Everything is validated before anything is opened: ``bootstrap`` takes a validated
:class:`~gateway.config.GatewayConfig` and runs :func:`preflight` first.
"""
from __future__ import annotations

from gateway.daemon._bootstrap import bootstrap, configure_logging
from gateway.daemon._errors import DaemonError
from gateway.daemon._main import ConfigSource, async_main
from gateway.daemon._preflight import preflight
from gateway.daemon._routes import make_route
from gateway.daemon._runtime import GatewayRuntime

__all__ = ["ConfigSource", "DaemonError", "GatewayRuntime", "async_main", "bootstrap", "configure_logging",
           "make_route", "preflight"]
