"""MqttLink: the Publisher port over one session and one driver; the gateway's link factories."""
from __future__ import annotations

import asyncio

from gateway.adapters.mqtt._drivers import Driver, LoopDriver, ThreadDriver
from gateway.adapters.mqtt._session import Dispatch, MqttSession, RetainedMessage, TlsSettings, direct
from gateway.domain.backoff import Backoff
from gateway.domain.ports import Clock, SystemClock
from gateway.domain.uplink_ports import ConnectionListener, MessageHandler, PubackCallback


class MqttLink:
    """One MQTT connection (a route): an :class:`MqttSession` run by a driver. Keyword arguments:

    - ``host``, ``port``, ``client_id`` (stable per gateway+route: the broker keeps the
      session by it), ``route`` label (``primary``/``fallback``).
    - ``loop``: drive the link from this asyncio loop (:class:`LoopDriver`); without it a
      network thread drives it (:class:`ThreadDriver`).
    - ``dispatch`` (thread driver only): runs callbacks (``loop.call_soon_threadsafe``;
      default: inline on the network thread, for simple clients/tests). With ``loop``
      callbacks already run on the loop.
    - ``username``/``password``, ``tls`` (:class:`TlsSettings`).
    - ``keepalive_s`` (30), ``session_expiry_s`` (86 400), ``connect_timeout_s`` (10:
      a CONNACK must arrive within this or the attempt is abandoned).
    - ``will``: last will (retained, QoS 1) — the gateway's ``state`` with ``online: false``;
      ``online``: retained message published on every connect; ``offline``: published
      on a clean stop.
    - ``backoff``: reconnect policy (default ``Backoff()``: 0.5 s doubling to 30 s, jittered).
    - ``clock``: stamps PUBACK arrival (``SystemClock()``).

    Stop with ``await link.async_stop()`` on the loop, or ``stop()`` from another thread.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        route: str = "primary",
        dispatch: Dispatch | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: TlsSettings | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 86_400,
        connect_timeout_s: float = 10.0,
        will: RetainedMessage | None = None,
        online: RetainedMessage | None = None,
        offline: RetainedMessage | None = None,
        backoff: Backoff | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.route = route
        self.host, self.port = host, port
        self._session = MqttSession(
            host=host, port=port, client_id=client_id, route=route, clock=clock or SystemClock(),
            username=username, password=password, tls=tls, keepalive_s=keepalive_s,
            session_expiry_s=session_expiry_s, connect_timeout_s=connect_timeout_s,
            will=will, online=online, offline=offline, backoff=backoff)
        self._driver: Driver = (LoopDriver(self._session, loop) if loop is not None
                                else ThreadDriver(self._session, dispatch or direct))
        # the replay's hot path: the session's publish itself, one Python call less per message
        self.publish = self._session.publish  # type: ignore[method-assign]

    # ---- Publisher port ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._session.connected

    @property
    def receive_maximum(self) -> int:
        return self._session.receive_maximum

    @property
    def connects(self) -> int:
        """Successful CONNACKs so far."""
        return self._session.connects

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed or the connection was lost."""
        return self._session.last_error

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._session.add_connection_listener(listener)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._session.subscribe(topic_filter, handler)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None,
                on_puback: PubackCallback | None = None, urgent: bool = False) -> None:
        """Queue a QoS 1 publication (see :meth:`MqttSession.publish`); raises ``NotConnected``
        offline, ``PublishFailed`` when paho refuses it. (Each instance binds the session's
        method over this one.)"""
        self._session.publish(topic, payload, qos=qos, retain=retain, user_properties=user_properties,
                              on_puback=on_puback, urgent=urgent)

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "MqttLink":
        self._driver.start()
        return self

    async def async_stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if configured), disconnect, end the driver (from the loop)."""
        await self._driver.async_stop(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if configured), disconnect cleanly, end the driver (loop
        driver: from another thread than the loop's; on the loop use ``async_stop``)."""
        self._driver.stop(timeout_s)


def gateway_link(*, gateway_id: str, version: str, clock: Clock, route: str = "primary",
                 **kwargs: object) -> MqttLink:
    """An :class:`MqttLink` for a gateway: client id ``<gw>-<route>``, retained
    ``Topics(gw).state`` (contracts/topics.py) online on connect, offline as last will and on clean stop.
    Other keyword arguments go to :class:`MqttLink`."""
    from gateway.domain.payload import Topics, encode_state

    topic = Topics(gateway_id).state
    since = clock.time()
    online = RetainedMessage(topic, encode_state(gateway_id=gateway_id, online=True, version=version, since=since))
    offline = RetainedMessage(topic, encode_state(gateway_id=gateway_id, online=False, version=version, since=since))
    return MqttLink(client_id=f"{gateway_id}-{route}", route=route, will=offline, online=online,
                    offline=offline, clock=clock, **kwargs)  # type: ignore[arg-type]


def alarm_lane_link(*, gateway_id: str, clock: Clock, route: str = "primary", **kwargs: object) -> MqttLink:
    """A second connection to a route's broker used only for alarms (client id
    ``<gw>-<route>-alarms``; no state/last will — the main link owns those). Its own TCP
    stream and network thread, so an alarm's PUBLISH and PUBACK never wait behind
    telemetry on the wire or behind a busy event loop. Pass it as ``Forwarder(alarm_lane=...)``
    and give it ``dispatch=loop.call_soon_threadsafe`` (thread driver: no ``loop``)."""
    return MqttLink(client_id=f"{gateway_id}-{route}-alarms", route=route, clock=clock,
                    **kwargs)  # type: ignore[arg-type]
