"""Adapters for commissioning: MQTT (fleet.mqtt) and zeroconf discovery (fleet.discovery)."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator

from contracts.payloads import Rejected, decode_cmd_result
from contracts.topics import Topics

from ..mqtt import MqttClient
from ._commission import AlarmSeen, GatewayEndpoint, decode_alarm

# (gateway_id, cmd, args) -> (cmd_id, the signed wt.signed/1 message to publish)
Sign = Callable[[str, str, dict[str, Any]], tuple[str, str | bytes]]


class MqttGatewayChannel:
    """Commands to ``wt/v1/gw/{gw}/cmd`` (wt.cmd/1); alarms from ``wt/v1/gw/{gw}/alarm``.

    Config push goes through the ``ConfigService`` (fleet.config) when one is given
    (``config_push(gateway_id) -> version``); otherwise no config is pushed here. Every command
    is signed by the fleet (the gateway refuses an unsigned one): ``sign(gateway_id, cmd, args)
    -> (cmd_id, payload)`` returns the ``wt.signed/1`` message to publish as it is — for
    ``fleet install commission`` the service signs it (``POST /installations/{code}/commands``),
    so the fleet's control key never reaches the technician's machine.
    """

    def __init__(self, client: MqttClient, *, sign: Sign, config_push: Callable[[str], int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self._clock = clock
        self._sign = sign
        self._config_push = config_push
        self._alarm_queues: dict[str, queue.Queue] = {}
        self._result_subs: set[str] = set()
        self._sent: set[str] = set()
        self._results: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()

    def subscribe_alarms(self, gateway_id: str) -> None:
        """Subscribe before test mode is switched on, so no test alarm is missed."""
        if gateway_id not in self._alarm_queues:
            q: queue.Queue = queue.Queue(maxsize=10_000)

            def on_alarm(topic: str, payload: bytes) -> None:  # paho thread: just queue it
                try:
                    q.put_nowait((payload, self._clock()))
                except queue.Full:
                    pass

            self._alarm_queues[gateway_id] = q
            self.client.subscribe(Topics(gateway_id).alarm, on_alarm, qos=1)

    def send_command(self, gateway_id: str, cmd: str, args: dict[str, Any]) -> str:
        self._subscribe_results(gateway_id)        # before the command: the answer must not be missed
        cmd_id, payload = self._sign(gateway_id, cmd, args)
        with self._cond:
            self._sent.add(cmd_id)
        self.client.publish(Topics(gateway_id).cmd, payload.encode() if isinstance(payload, str) else payload, qos=1)
        return cmd_id

    def _subscribe_results(self, gateway_id: str) -> None:
        if gateway_id in self._result_subs:
            return

        def on_result(topic: str, payload: bytes) -> None:   # paho thread: store, wake the waiter
            r = decode_cmd_result(payload)
            if isinstance(r, Rejected) or r.cmd_id is None:
                return
            with self._cond:
                if r.cmd_id in self._sent and r.status.value != "progress":
                    self._results[r.cmd_id] = {"status": r.status.value, "detail": r.detail}
                    self._cond.notify_all()

        self.client.subscribe(Topics(gateway_id).cmd_result, on_result, qos=1)
        self._result_subs.add(gateway_id)

    def command_result(self, gateway_id: str, cmd_id: str, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while cmd_id not in self._results:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._results.pop(cmd_id)

    def push_config(self, gateway_id: str, devices: list[dict[str, Any]]) -> int | None:
        if self._config_push is None:
            return None
        return self._config_push(gateway_id)

    def alarms(self, gateway_id: str, timeout_s: float) -> Iterator[AlarmSeen]:
        self.subscribe_alarms(gateway_id)
        q = self._alarm_queues[gateway_id]
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                payload, received_at = q.get(timeout=remaining)
            except queue.Empty:
                return
            alarm = decode_alarm(gateway_id, payload, received_at)
            if alarm is not None:
                yield alarm


class ZeroconfGatewayFinder:
    """Browse the gateways' service type (contracts.discovery) with the fleet's zeroconf adapter."""

    def __init__(self, interfaces: tuple[str, ...] = ()) -> None:
        self.interfaces = interfaces

    def find(self, gateway_id: str, timeout_s: float) -> GatewayEndpoint | None:
        from ..discovery import browse   # lazy: zeroconf only when discovery is used

        for g in browse(timeout_s, interfaces=self.interfaces, stop_at=gateway_id):
            if g.id == gateway_id:
                return GatewayEndpoint(g.id, g.host, g.port, g.version)
        return None
