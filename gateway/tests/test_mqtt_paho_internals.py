"""The paho private members the MQTT adapter relies on (gateway/adapters/mqtt/_paho.py) still
exist and behave as assumed on the installed paho — an upgrade that changes them fails here,
not silently in production (slow reads, or a dead socket that sends DISCONNECT and so
drops the session and the last will). Also: the driver is chosen at construction."""
from __future__ import annotations

import asyncio
import inspect
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from gateway.adapters.mqtt import LoopDriver, MqttLink, ThreadDriver
from gateway.adapters.mqtt._paho import PRIVATE_API, READ_SIZE, BufferedClient
from gateway.domain.backoff import Backoff
from gateway.testing.broker import free_port

PINGRESP = b"\xd0\x00"


class FakeSock:
    """Just enough socket for paho's reader: recv() from a script, close(), no pending()."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sizes: list[int] = []
        self.closed = False
        self.sent = b""

    def recv(self, n: int) -> bytes:
        self.sizes.append(n)
        if not self.data:
            raise BlockingIOError()
        out, self.data = self.data[:n], self.data[n:]
        return out

    def send(self, b: bytes) -> int:
        self.sent += bytes(b)
        return len(b)

    def close(self) -> None:
        self.closed = True


def _client() -> BufferedClient:
    return BufferedClient(CallbackAPIVersion.VERSION2, client_id="paho-internals", protocol=mqtt.MQTTv5)


def test_private_members_exist_with_the_expected_signatures():
    for name, params in PRIVATE_API.items():
        if params is None:
            assert name in vars(mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)), name
            continue
        fn = getattr(mqtt.Client, name, None)
        assert callable(fn), f"paho.mqtt.client.Client.{name} is gone"
        assert tuple(inspect.signature(fn).parameters)[1:] == params, (name, inspect.signature(fn))
    # every fixed-header read of paho's packet reader goes through _sock_recv
    assert "self._sock_recv(" in inspect.getsource(mqtt.Client._packet_read)


def test_paho_reads_every_packet_through_the_buffered_sock_recv():
    c = _client()
    sock = FakeSock(PINGRESP * 2)
    c._sock = sock                     # test-only: a connected socket without a broker
    assert c.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert c.has_buffered()            # the second packet came with the first recv
    assert c.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert not c.has_buffered()
    assert sock.sizes == [READ_SIZE], "paho read around the buffer (one recv per header byte)"


def test_a_new_socket_drops_the_old_connections_bytes():
    c = _client()
    c._sock = FakeSock(PINGRESP * 2)
    c.loop_read()
    assert c.has_buffered()
    c._sock = fresh = FakeSock(b"")
    assert not c.has_buffered()
    assert c.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS      # would-block: nothing to read
    assert fresh.sizes == [READ_SIZE]


def test_drop_socket_closes_without_disconnect():
    c = _client()
    closed: list = []
    c.on_socket_close = lambda client, userdata, sock: closed.append(sock)
    sock = FakeSock(b"")
    c._sock = sock
    c.drop_socket()
    assert c.socket() is None and sock.closed and closed == [sock]
    assert sock.sent == b"", "a DISCONNECT was written: the broker would discard the last will"


def test_the_driver_is_chosen_at_construction():
    thread_link = MqttLink(host="127.0.0.1", port=1, client_id="t")
    assert isinstance(thread_link._driver, ThreadDriver)
    loop = asyncio.new_event_loop()
    try:
        loop_link = MqttLink(host="127.0.0.1", port=1, client_id="l", loop=loop)
        assert isinstance(loop_link._driver, LoopDriver)
    finally:
        loop.close()


def test_thread_driver_async_stop_joins_the_network_thread():
    link = MqttLink(host="127.0.0.1", port=free_port(), client_id="nobody-listens", route="lane-test",
                    backoff=Backoff(initial_s=0.05, cap_s=0.1))

    async def main() -> None:
        link.start()
        await asyncio.sleep(0.1)
        assert any(t.name == "mqtt-lane-test" for t in threading.enumerate())
        await link.async_stop()

    asyncio.run(main())
    assert not any(t.name == "mqtt-lane-test" for t in threading.enumerate())
    assert not link.connected and link.last_error and "failed" in link.last_error


@pytest.mark.parametrize("driver", ["loop", "thread"])
def test_publish_offline_raises_not_connected(driver):
    from gateway.domain.uplink_errors import NotConnected

    loop = asyncio.new_event_loop()
    try:
        link = MqttLink(host="127.0.0.1", port=1, client_id="x", **({"loop": loop} if driver == "loop" else {}))
        with pytest.raises(NotConnected):
            link.publish("a/b", b"x", urgent=True)
    finally:
        loop.close()
