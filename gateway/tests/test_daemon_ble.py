"""Daemon with [ble] enabled: bleak's real BlueZ backend on a fake BlueZ (private D-Bus) →
the daemon's scanner wiring → ingress → real Mosquitto."""
from __future__ import annotations

import asyncio
import io
import time

from gateway.codec.bthome import encode_advert
from gateway.config import load_config
from gateway.testing.console import ResponseConsole, make_console_link
from gateway.daemon import bootstrap
from gateway.tests.fakebluez import FakeBluez
from gateway.tests.fakebluez.fixtures import system_bus  # noqa: F401  (fixture)

MAC = "A4:C1:38:0D:00:01"
DEV = "a4c1380d0001"
KEY = bytes(range(16))


async def until(pred, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_encrypted_bthome_fall_advert_reaches_the_broker(tmp_path, mosquitto, system_bus):
    async def scenario():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": "gw-ble", "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port, "ack_timeout_s": 5}, "status": {"port": 0}, "discovery": {"enabled": False},
            "ble": {"enabled": True, "adapter": "hci0"},
            "devices": {DEV: {"role": "fall", "key": KEY.hex()}}})
        async with FakeBluez(system_bus) as bluez:
            dev = bluez.add_device(MAC)
            rt = bootstrap(cfg, loop=loop, serial=False)
            clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-ble-console",
                                      dispatch=loop.call_soon_threadsafe)
            console = ResponseConsole(clink, out=io.StringIO()).start()
            clink.start()
            await rt.async_start()
            try:
                await until(lambda: rt.uplink_connected() and clink.connected)
                await until(lambda: rt.ble.receiver is not None and rt.ble.receiver[0].running)
                sealed = encode_advert([(0x01, 64), (0xF0, 2), (0x54, bytes([0x10, 0x9C, 0x01, 0x00]))],
                                       key=KEY, mac=MAC, counter=7)
                dev.advertise(service_data={"fcd2": sealed}, rssi=-67)
                eid = f"{DEV}-00000007"
                await until(lambda: eid in console.stats.alarms)
                a = console.stats.alarms[eid]
                assert a.type == "fall_detected" and a.device == DEV
                st = rt.registry.get(DEV)
                assert st.battery_pct == 64 and st.rssi == -67
                snap = rt.snapshot()
                assert any(ln["name"] == "ble" for ln in snap["links"])
            finally:
                await rt.async_stop()
                clink.stop()
    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_gatt_frame_device_alarm_reaches_broker_and_ack_returns_over_gatt(tmp_path, mosquitto, system_bus):
    """[devices.<id>] link = "ble-gatt": the daemon keeps a WT-frame GATT link to the tracker."""
    from gateway.codec import Ack, AckStatus, Frame, MsgType, StreamDecoder, encode_frame
    from gateway.codec.events import EventPayload
    from gateway.codec.payloads import decode_payload
    from gateway.domain.model import EventCode
    from gateway.tests.fakebluez import FakeCharacteristic, FakeService
    from gateway.adapters.transports.ble import WT_FRAME_RX_UUID, WT_FRAME_SERVICE_UUID, WT_FRAME_TX_UUID

    gmac, gdev = "A4:C1:38:0E:00:02", "a4c1380e0002"

    async def scenario():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": "gw-gatt", "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port, "ack_timeout_s": 5}, "status": {"port": 0}, "discovery": {"enabled": False},
            "ble": {"enabled": True},
            "devices": {gdev: {"role": "gps", "key": KEY.hex(), "link": "ble-gatt"}}})
        async with FakeBluez(system_bus) as bluez:
            rx_dec, rx_frames = StreamDecoder(), []
            rx = FakeCharacteristic(WT_FRAME_RX_UUID, ["write-without-response"],
                                    on_write=lambda data, kind: rx_frames.extend(rx_dec.feed(data)))
            tx = FakeCharacteristic(WT_FRAME_TX_UUID, ["notify"])
            dev = bluez.add_device(gmac, name="wt-gps", services=[FakeService(WT_FRAME_SERVICE_UUID, [rx, tx])])
            bluez.start_beacon(dev, 0.05, lambda n: {})
            rt = bootstrap(cfg, loop=loop, serial=False)
            clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-gatt-console",
                                      dispatch=loop.call_soon_threadsafe)
            console = ResponseConsole(clink, out=io.StringIO()).start()
            clink.start()
            await rt.async_start()
            try:
                name = f"ble:{gmac}"
                await until(lambda: rt.uplink_connected() and clink.connected and rt.links[name].state.value == "up")
                wire = encode_frame(MsgType.EVENT, gdev, 3, EventPayload(EventCode.GEOFENCE_EXIT, 0, {
                    "lat": 59.95, "lon": 10.8, "alt_m": 5, "fix_quality": 1, "sats": 6, "zone": 0}),
                    key=KEY, urgent=True)
                for i in range(0, len(wire), 20):
                    assert dev.notify(WT_FRAME_TX_UUID, wire[i:i + 20])
                eid = f"{gdev}-00000003"
                await until(lambda: eid in console.stats.alarms)
                assert console.stats.alarms[eid].type == "geofence_exit"
                # the ACK (after the journal commit) may come after the platform's FEEDBACK (fast path)
                await until(lambda: any(isinstance(f, Frame) and f.type is MsgType.ACK for f in rx_frames))
                f = next(f for f in rx_frames if isinstance(f, Frame) and f.type is MsgType.ACK)
                ack = decode_payload(f.type, f.payload)
                assert isinstance(ack, Ack) and ack.acked_seq == 3 and ack.status is AckStatus.STORED
                assert f.downlink and f.verify(KEY)
            finally:
                await rt.async_stop()
                clink.stop()
    asyncio.run(asyncio.wait_for(scenario(), 90))
