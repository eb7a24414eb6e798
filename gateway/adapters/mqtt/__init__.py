"""paho-mqtt 2.x adapter: the ONLY package that imports paho.

:class:`MqttLink` implements the :class:`gateway.domain.uplink_ports.Publisher` port over MQTT
v5, QoS 1, ``clean_start=False`` with a session expiry (the broker keeps our session and
subscriptions) — and it re-subscribes on every connect anyway (a restarted broker without
persistence has forgotten them). It is two objects:

- a session (:mod:`._session`): the paho client, TLS, last will, connect/subscribe
  restore, publish + PUBACK tracking, ``TCP_NODELAY``, the connected state — one
  behaviour, whoever drives it;
- one driver (:mod:`._drivers`), chosen at construction: ``loop=<asyncio loop>`` (the
  daemon's primary route: the event loop drives the socket, callbacks run on the loop) or
  none (a network thread; callbacks through ``dispatch``). The driver owns reconnecting
  (injected :class:`~gateway.domain.backoff.Backoff`, capped, jittered) and the clean stop.

paho's private members the adapter relies on are isolated in :mod:`._paho` (with why) and
checked against the installed paho by ``gateway/tests/test_mqtt_paho_internals.py``.
paho return codes become :mod:`gateway.domain.uplink_errors` exceptions.
"""
from gateway.adapters.mqtt._drivers import Driver, LoopDriver, ThreadDriver
from gateway.adapters.mqtt._link import MqttLink, alarm_lane_link, gateway_link
from gateway.adapters.mqtt._session import Dispatch, MqttSession, RetainedMessage, TlsSettings

__all__ = ["Dispatch", "Driver", "LoopDriver", "MqttLink", "MqttSession", "RetainedMessage", "ThreadDriver",
           "TlsSettings", "alarm_lane_link", "gateway_link"]
