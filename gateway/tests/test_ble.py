"""BLE transport against a fake BlueZ on a private D-Bus daemon.

Everything below runs bleak's real BlueZ backend unmodified: bleak connects to the
"system bus" (our private dbus-daemon, via DBUS_SYSTEM_BUS_ADDRESS), reads the
adapter and devices with GetManagedObjects, and receives advertisements as
InterfacesAdded / PropertiesChanged signals emitted by gateway/tests/fakebluez.
"""
from __future__ import annotations

import asyncio
import functools
import time

import pytest

from gateway.testing.stimuli import bthome_plain
from gateway.testing.waiting import async_wait_until, run_async
from gateway.tests.fakebluez import FakeBluez, FakeCharacteristic, FakeService
from gateway.adapters.transports.ble_gatt import BleFrameLink, BleHealthClient
from gateway.adapters.transports.ble import (
    BleConfig,
    BleError,
    BleScanner,
    BleTimeout,
    BlueZAdapterPower,
    HealthChar,
    ScanMode,
    WT_FRAME_RX_UUID,
    WT_FRAME_SERVICE_UUID,
    WT_FRAME_TX_UUID,
)
from gateway.adapters.transports.ble_watchdog import BleWatchdog, HangKind, WatchdogConfig, WatchdogState

DOOR = "A4:C1:38:0D:00:01"
BUTTON = "A4:C1:38:0B:00:02"
PILLBOX = "F0:0D:00:00:00:0A"
BPM = "C0:FF:EE:00:2A:35"


run = run_async                                                       # 30 s limit per scenario
wait_until = functools.partial(async_wait_until, timeout_s=5.0, step_s=0.01)


# --------------------------------------------------------------------------- scanner


def test_scanner_delivers_service_data_changes_from_properties_changed(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR, name="door", known=True)  # cached in BlueZ already
            other = bluez.add_device("11:22:33:44:55:66", known=True)
            got: list[tuple[str, bytes, int]] = []
            scanner = BleScanner(BleConfig(), on_advert=lambda m, d, r: got.append((m, d, r)))
            await scanner.async_start()
            assert bluez.adapter.discovering
            assert bluez.adapter.filters[-1] == {"Transport": "le", "DuplicateData": True}

            assert door.advertise(service_data={"fcd2": bthome_plain(1, (0x1A, 1))}, rssi=-61)
            assert other.advertise(manufacturer_data={0x004C: b"\x02\x15"}, rssi=-70)
            assert door.advertise(service_data={"fcd2": bthome_plain(2, (0x1A, 0))}, rssi=-61)
            await wait_until(lambda: len(got) == 2, what="two BTHome adverts")

            assert got == [
                (DOOR, bthome_plain(1, (0x1A, 1)), -61),
                (DOOR, bthome_plain(2, (0x1A, 0)), -61),
            ]
            assert scanner.stats.reports == 3          # the Apple advert counts as liveness
            assert scanner.stats.bthome_reports == 2
            assert scanner.known_advertisers == 1      # BTHome sensors only
            st = scanner.status()
            assert st["running"] and st["devices_tracked"] == 2 and st["bthome_devices"] == 1
            assert scanner.known_device(DOOR) is not None

            await scanner.async_stop()
            assert not bluez.adapter.discovering
            assert bluez.adapter.filters[-1] == {}     # bleak clears its filter on stop
            assert door.advertise(service_data={"fcd2": bthome_plain(3)}) is False  # not scanning
            await asyncio.sleep(0.1)
            assert len(got) == 2

    run(scenario)


def test_scanner_reports_a_new_device_from_interfaces_added(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            got: list[tuple[str, bytes, int]] = []
            scanner = BleScanner(BleConfig(), on_advert=lambda m, d, r: got.append((m, d, r)))
            await scanner.async_start()
            button = bluez.add_device(BUTTON, name="button")
            assert not button.exported
            button.advertise(service_data={"0000fcd2-0000-1000-8000-00805f9b34fb": bthome_plain(9, (0x3A, 1))},
                             rssi=-48)
            await wait_until(lambda: got, what="advert of the new device")
            assert button.exported
            assert got == [(BUTTON, bthome_plain(9, (0x3A, 1)), -48)]
            await scanner.async_stop()

    run(scenario)


def test_a_failing_consumer_does_not_stop_the_scanner(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR, known=True)
            got: list[bytes] = []

            def consumer(mac: str, data: bytes, rssi: int) -> None:
                if data[2] == 1:
                    raise ValueError("consumer bug")
                got.append(data)

            scanner = BleScanner(BleConfig(), on_advert=consumer)
            await scanner.async_start()
            door.advertise(service_data={"fcd2": bthome_plain(1)})
            door.advertise(service_data={"fcd2": bthome_plain(2)})
            await wait_until(lambda: got, what="second advert")
            assert got == [bthome_plain(2)]
            assert scanner.stats.callback_errors == 1
            await scanner.async_stop()

    run(scenario)


def test_passive_scanning_registers_an_advertisement_monitor(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR, known=True)
            got: list[tuple[str, bytes, int]] = []
            scanner = BleScanner(BleConfig(mode=ScanMode.PASSIVE), on_advert=lambda *a: got.append(a))
            await scanner.async_start()
            assert len(bluez.monitors.monitors) == 1
            assert bluez.adapter.start_calls == 0        # no active discovery
            door.advertise(service_data={"fcd2": bthome_plain(5, (0x21, 1))}, rssi=-55)
            await wait_until(lambda: got, what="passive advert")
            assert got == [(DOOR, bthome_plain(5, (0x21, 1)), -55)]
            await scanner.async_stop()
            assert bluez.monitors.monitors == []

    run(scenario)


def test_scanner_errors_are_translated(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            scanner = BleScanner(BleConfig(adapter="hci1"), on_advert=lambda *a: None)
            with pytest.raises(BleError) as missing:
                await scanner.async_start()
            assert missing.value.op == "scan_start" and "hci1" in str(missing.value)

            bluez.adapter.Powered = False  # local property write, as if `bluetoothctl power off`
            scanner = BleScanner(BleConfig(), on_advert=lambda *a: None)
            with pytest.raises(BleError) as off:
                await scanner.async_start()
            assert off.value.dbus_error == "org.bluez.Error.NotReady"
            assert not scanner.running

            bluez.adapter.Powered = True
            bluez.adapter.hang_start_discovery = True
            scanner = BleScanner(BleConfig(call_timeout_s=0.3), on_advert=lambda *a: None)
            t0 = time.monotonic()
            with pytest.raises(BleTimeout):
                await scanner.async_start()
            assert time.monotonic() - t0 < 5.0
            assert scanner.stats.start_failures == 1

    run(scenario)


def test_no_bluez_on_the_bus_is_a_clear_error(system_bus):
    async def scenario() -> None:
        scanner = BleScanner(BleConfig(call_timeout_s=3.0), on_advert=lambda *a: None)
        with pytest.raises(BleError) as err:
            await scanner.async_start()
        assert err.value.op == "scan_start"
        assert "org.bluez" in str(err.value) or "ServiceUnknown" in str(err.value)

    run(scenario)


# --------------------------------------------------------------------------- watchdog


def _beacon_payload(n: int) -> dict[str, bytes]:
    return {"fcd2": bthome_plain(n, (0x01, 90))}


def test_watchdog_power_cycles_an_adapter_that_went_silent(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR, known=True)
            got: list[bytes] = []
            cfg = BleConfig(call_timeout_s=2.0)
            scanner = BleScanner(cfg, on_advert=lambda m, d, r: got.append(d))
            power = BlueZAdapterPower(cfg)
            statuses = []
            wd = BleWatchdog(
                scanner, power,
                WatchdogConfig(silence_timeout_s=1.2, check_interval_s=0.1, power_off_s=0.05,
                               backoff_initial_s=0.2, restarts_before_power_cycle=1),
                on_status=statuses.append,
            )
            task = asyncio.create_task(wd.async_run())
            await wait_until(lambda: bluez.adapter.discovering, what="scanner started")
            bluez.start_beacon(door, 0.05, _beacon_payload)
            await wait_until(lambda: len(got) >= 3, what="beacon adverts")
            assert wd.status().state is WatchdogState.SCANNING

            bluez.adapter.wedged = True          # controller stops reporting, Discovering stays true
            await wait_until(lambda: wd.status().recoveries == 1, timeout_s=15, what="recovery")
            st = wd.status()
            assert st.hangs_detected == 2        # silent, restart did not help, silent again
            assert st.last_hang is HangKind.SILENT
            assert st.scanner_restarts == 2      # plain restart, then restart after power cycle
            assert st.adapter_power_cycles == 1
            assert bluez.adapter.power_log == [False, True]
            assert st.state is WatchdogState.SCANNING and not st.degraded
            n = len(got)
            await wait_until(lambda: len(got) > n + 2, what="adverts after recovery")
            assert any(s.degraded for s in statuses) and not statuses[-1].degraded
            assert st.to_dict()["state"] == "scanning"

            wd.request_stop()
            await asyncio.wait_for(task, 5)
            assert wd.status().state is WatchdogState.STOPPED
            assert not bluez.adapter.discovering

    run(scenario)


def test_watchdog_recovers_from_a_start_discovery_that_never_answers(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR, known=True)
            bluez.adapter.hang_start_discovery = True
            got: list[bytes] = []
            cfg = BleConfig(call_timeout_s=1.0)
            scanner = BleScanner(cfg, on_advert=lambda m, d, r: got.append(d))
            wd = BleWatchdog(
                scanner, BlueZAdapterPower(cfg),
                WatchdogConfig(silence_timeout_s=2.0, check_interval_s=0.1, power_off_s=0.05,
                               backoff_initial_s=0.2),
            )
            task = asyncio.create_task(wd.async_run())
            bluez.start_beacon(door, 0.05, _beacon_payload)  # dropped until discovery runs
            await wait_until(lambda: got, timeout_s=15, what="adverts after recovery")
            await wait_until(lambda: wd.status().recoveries == 1, what="recovery counted")
            st = wd.status()
            assert st.hangs_detected == 1 and st.last_hang is HangKind.CALL_FAILED
            assert st.adapter_power_cycles == 1
            assert st.scanner_restarts == 2
            assert bluez.adapter.start_calls == 3  # hung, hung again after restart, ok after power cycle
            assert scanner.stats.start_failures == 2
            wd.request_stop()
            await asyncio.wait_for(task, 5)

    run(scenario)


# --------------------------------------------------------------------------- GATT


def _wt_device(bluez: FakeBluez, rx_log: list[bytes], mtu: int = 23):
    rx = FakeCharacteristic(WT_FRAME_RX_UUID, ["write-without-response"],
                            on_write=lambda data, kind: rx_log.append(data))
    tx = FakeCharacteristic(WT_FRAME_TX_UUID, ["notify"])
    svc = FakeService(WT_FRAME_SERVICE_UUID, [rx, tx])
    return bluez.add_device(PILLBOX, name="wt-pillbox", services=[svc], mtu=mtu)


def test_frame_link_writes_rx_in_mtu_chunks_and_receives_tx_notifications(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            rx_log: list[bytes] = []
            dev = _wt_device(bluez, rx_log)
            cfg = BleConfig(connect_timeout_s=5.0)
            scanner = BleScanner(cfg, on_advert=lambda *a: None)
            await scanner.async_start()                  # the link must coexist with scanning
            dev.advertise(manufacturer_data={0xFFFF: b"wt"})
            await wait_until(lambda: scanner.known_device(PILLBOX) is not None, what="device seen")

            received: list[bytes] = []
            lost: list[str] = []
            link = BleFrameLink(PILLBOX, cfg, on_bytes=received.append, on_disconnect=lost.append,
                                resolve=scanner.known_device)
            await link.async_connect()
            assert link.connected and link.name == f"ble:{PILLBOX}"
            assert dev.char(WT_FRAME_TX_UUID).notifying

            stream = bytes(range(1, 48)) + b"\x00" + b"\x05hello\x00"
            link.send(stream[:30])
            link.send(stream[30:])
            await link.async_drain()
            await wait_until(lambda: sum(map(len, rx_log)) == len(stream), what="rx writes")
            assert b"".join(rx_log) == stream
            assert max(map(len, rx_log)) <= 20           # ATT_MTU 23 - 3
            assert {kind for _, kind in dev.char(WT_FRAME_RX_UUID).writes} == {"command"}

            assert dev.notify(WT_FRAME_TX_UUID, b"\x03ab")
            assert dev.notify(WT_FRAME_TX_UUID, b"c\x00")
            await wait_until(lambda: len(received) == 2, what="tx notifications")
            assert b"".join(received) == b"\x03abc\x00"

            dev.drop_connection()                        # peripheral walks out of range
            await wait_until(lambda: lost, what="disconnect callback")
            assert lost == ["link lost"] and not link.connected
            with pytest.raises(BleError):
                link.send(b"x")
            await link.async_close()
            await scanner.async_stop()

    run(scenario)


def test_connecting_by_bare_address_while_scanning_is_refused_by_bluez(system_bus):
    """Why the links take ``resolve=scanner.known_device``: without it bleak starts a
    second discovery session from this process, which bluetoothd refuses."""

    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            _wt_device(bluez, [])
            cfg = BleConfig(connect_timeout_s=2.0)
            scanner = BleScanner(cfg, on_advert=lambda *a: None)
            await scanner.async_start()
            link = BleFrameLink(PILLBOX, cfg, on_bytes=lambda b: None)
            with pytest.raises(BleError) as err:
                await link.async_connect()
            assert err.value.op == "connect"
            assert err.value.dbus_error == "org.bluez.Error.InProgress"
            await scanner.async_stop()

    run(scenario)


def test_frame_link_connect_without_scanner_and_missing_service(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            other = bluez.add_device(BPM, services=[FakeService("180f", [
                FakeCharacteristic("2a19", ["read", "notify"], value=b"\x50")])])
            rx_log: list[bytes] = []
            dev = _wt_device(bluez, rx_log, mtu=185)
            bluez.start_beacon(dev, 0.05, lambda n: {})
            bluez.start_beacon(other, 0.05, lambda n: {})
            cfg = BleConfig(connect_timeout_s=5.0)

            # not scanning: bleak finds the device by address itself
            link = BleFrameLink(PILLBOX, cfg, on_bytes=lambda b: None)
            await link.async_connect()
            link.send(bytes(200))
            await link.async_drain()
            await wait_until(lambda: sum(map(len, rx_log)) == 200, what="writes")
            assert max(map(len, rx_log)) == 182            # ATT_MTU 185 - 3
            await link.async_close()
            assert not dev.connected

            wrong = BleFrameLink(BPM, cfg, on_bytes=lambda b: None)
            with pytest.raises(BleError, match="no WT frame service"):
                await wrong.async_connect()
            await wait_until(lambda: not other.connected, what="disconnect after failed connect")

    run(scenario)


def test_health_device_indication_is_delivered_raw_with_its_uuid(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            bpm = bluez.add_device(BPM, name="BP monitor", known=True, services=[
                FakeService("1810", [FakeCharacteristic("2a35", ["indicate"]),
                                     FakeCharacteristic("2a49", ["read"], value=b"\x00\x00")]),
                FakeService("1809", [FakeCharacteristic("2a1c", ["indicate"])]),
            ])
            got: list[tuple[str, int, bytes]] = []
            client = BleHealthClient(BPM, BleConfig(connect_timeout_s=5.0),
                                     on_measurement=lambda m, u, d: got.append((m, u, d)))
            bluez.start_beacon(bpm, 0.05, lambda n: {})
            subscribed = await client.async_connect()
            assert subscribed == [HealthChar.BLOOD_PRESSURE, HealthChar.TEMPERATURE]
            assert bpm.char("2a35").notifying and bpm.char("2a1c").notifying

            # 120/80 mmHg, MAP 93, SFLOAT exponent 0
            bp = bytes([0x00, 120, 0x00, 80, 0x00, 93, 0x00])
            assert bpm.notify("2a35", bp)
            temp = bytes([0x00, 0x6F, 0x0E, 0x00, 0xFE])  # 3695e-2 = 36.95 °C FLOAT
            assert bpm.notify("2a1c", temp)
            await wait_until(lambda: len(got) == 2, what="indications")
            assert got == [(BPM, 0x2A35, bp), (BPM, 0x2A1C, temp)]
            # the uuid16 is what the codec takes
            from gateway.codec.gatt import decode_gatt
            reading = decode_gatt(got[0][1], got[0][2])
            assert reading.name == "blood_pressure_measurement"
            assert reading.fields["systolic"].mantissa == 120
            await client.async_close()
            assert not bpm.connected

    run(scenario)


# --------------------------------------------------------------------------- supervision


def test_supervised_link_reconnects_after_loss_and_reports_state(system_bus):
    from gateway.adapters.transports import LinkState
    from gateway.adapters.transports.ble_links import SupervisedGattLink

    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            rx_log: list[bytes] = []
            dev = _wt_device(bluez, rx_log)
            dev.connect_error = ("org.bluez.Error.Failed", "Software caused connection abort")
            cfg = BleConfig(connect_timeout_s=3.0)
            scanner = BleScanner(cfg, on_advert=lambda *a: None)
            await scanner.async_start()
            bluez.start_beacon(dev, 0.05, lambda n: {})
            await wait_until(lambda: scanner.known_device(PILLBOX) is not None, what="device seen")

            received: list[bytes] = []
            states: list[LinkState] = []
            link = SupervisedGattLink(
                BleFrameLink(PILLBOX, cfg, on_bytes=received.append, resolve=scanner.known_device),
                reconnect_s=0.1, reconnect_max_s=0.4, on_state=lambda name, st: states.append(st))
            link.send(b"early")                      # not up yet: dropped and counted
            link.start()
            await wait_until(lambda: link.connect_failures >= 2, what="failed attempts")
            assert link.state is LinkState.DOWN
            assert "Software caused connection abort" in link.last_error
            dev.connect_error = None
            await wait_until(lambda: link.state is LinkState.UP, what="link up")

            link.send(b"\x02hi\x00")
            await wait_until(lambda: b"".join(rx_log) == b"\x02hi\x00", what="write")
            dev.drop_connection()
            await wait_until(lambda: link.connects == 2 and link.state is LinkState.UP,
                             what="reconnected after loss")
            assert link.losses == 1
            assert dev.notify(WT_FRAME_TX_UUID, b"\x01\x00")
            await wait_until(lambda: received == [b"\x01\x00"], what="notification after reconnect")

            st = link.status()
            assert st["state"] == "up" and st["dropped_writes"] == 1 and st["kind"] == "ble"
            await link.async_stop()
            assert link.state is LinkState.STOPPED and not dev.connected
            assert states[:3] == [LinkState.DOWN, LinkState.UP, LinkState.DOWN]
            assert states[-1] is LinkState.STOPPED
            await scanner.async_stop()

    run(scenario)


def test_scanner_tracks_a_bounded_number_of_devices(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            scanner = BleScanner(BleConfig(max_tracked_devices=16), on_advert=lambda *a: None)
            await scanner.async_start()
            devs = [bluez.add_device(f"7A:00:00:00:00:{i:02X}") for i in range(20)]  # phones, RPAs
            for d in devs:
                d.advertise(manufacturer_data={0x004C: b"\x10\x05"})
            await wait_until(lambda: scanner.stats.reports == 20, what="20 reports")
            assert scanner.status()["devices_tracked"] == 16
            assert scanner.known_device(devs[0].address) is None
            assert scanner.known_device(devs[19].address) is not None
            await scanner.async_stop()

    run(scenario)


def test_frame_link_can_receive_tx_through_acquire_notify(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            dev = _wt_device(bluez, [])
            bluez.start_beacon(dev, 0.05, lambda n: {})
            received: list[bytes] = []
            link = BleFrameLink(PILLBOX, BleConfig(connect_timeout_s=5.0, use_acquire_notify=True),
                                on_bytes=received.append)
            await link.async_connect()
            tx = dev.char(WT_FRAME_TX_UUID)
            assert tx._acquired is not None and not tx.notifying   # socket, not PropertiesChanged
            for chunk in (b"\x04abc", b"\x00", b"\x02z\x00"):
                assert dev.notify(WT_FRAME_TX_UUID, chunk)
            await wait_until(lambda: len(received) == 3, what="packets from the notify socket")
            assert received == [b"\x04abc", b"\x00", b"\x02z\x00"]   # one packet per notification
            await link.async_close()

    run(scenario)


def test_watchdog_recovers_after_bluetoothd_restarts(system_bus):
    """bluetoothd crashes and systemd restarts it: the old discovery session is gone
    with it, the new daemon does not scan, and nothing on the bus says so."""

    async def scenario() -> None:
        got: list[bytes] = []
        cfg = BleConfig(call_timeout_s=2.0)
        scanner = BleScanner(cfg, on_advert=lambda m, d, r: got.append(d))
        wd = BleWatchdog(scanner, BlueZAdapterPower(cfg),
                         WatchdogConfig(silence_timeout_s=1.2, check_interval_s=0.1, power_off_s=0.05))
        first = await FakeBluez(system_bus).start()
        task = asyncio.create_task(wd.async_run())
        await wait_until(lambda: first.adapter.discovering, what="scanning")
        first.start_beacon(first.add_device(DOOR), 0.05, _beacon_payload)
        await wait_until(lambda: len(got) >= 3, what="adverts from the first daemon")
        await first.stop()

        second = await FakeBluez(system_bus).start()
        second.start_beacon(second.add_device(DOOR), 0.05, _beacon_payload)
        try:
            await wait_until(lambda: wd.status().recoveries == 1, timeout_s=15, what="recovery")
            n = len(got)
            await wait_until(lambda: len(got) > n + 2, what="adverts from the new daemon")
            st = wd.status()
            assert st.scanner_restarts == 1 and st.adapter_power_cycles == 0
            assert second.adapter.start_calls == 1
            wd.request_stop()
            await asyncio.wait_for(task, 5)
        finally:
            await second.stop()

    run(scenario)


def test_missing_dbus_daemon_is_reported_with_the_install_command():
    from gateway.tests.fakebluez import DbusDaemonMissing, find_dbus_daemon

    with pytest.raises(DbusDaemonMissing, match="apt-get install -y dbus-daemon"):
        find_dbus_daemon(search_path="/nonexistent", fallbacks=())
    assert find_dbus_daemon().endswith("dbus-daemon")


def test_encrypted_bthome_alarm_survives_bluez_and_bleak_byte_for_byte(system_bus):
    """A fall alarm sealed by the codec's encoder (AES-CCM) is delivered unchanged and
    decrypts with the device key: nothing between air and codec alters the bytes."""
    from gateway.codec.bthome import decode_advert, encode_advert

    key = bytes(range(16))
    sealed = [encode_advert([(0x01, 77), (0x54, bytes([0x10, 0x02]))], key=key, mac=DOOR, counter=c)
              for c in (41, 42)]

    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            dev = bluez.add_device(DOOR)
            got: list[tuple[str, bytes, int]] = []
            scanner = BleScanner(BleConfig(), on_advert=lambda *a: got.append(a))
            await scanner.async_start()
            for data in sealed:
                dev.advertise(service_data={"fcd2": data}, rssi=-70)
            await wait_until(lambda: len(got) == 2, what="two encrypted adverts")
            await scanner.async_stop()
        assert [d for _, d, _ in got] == sealed
        for (mac, data, _), counter in zip(got, (41, 42)):
            advert = decode_advert(data, mac=mac, key=key)
            assert advert.counter == counter
            assert advert.first(0x54).value == bytes([0x10, 0x02])

    run(scenario)


def test_watchdog_waits_out_an_unplugged_dongle_and_resumes_when_it_is_back(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            door = bluez.add_device(DOOR)
            got: list[bytes] = []
            cfg = BleConfig(call_timeout_s=2.0)
            scanner = BleScanner(cfg, on_advert=lambda m, d, r: got.append(d))
            wd = BleWatchdog(scanner, BlueZAdapterPower(cfg),
                             WatchdogConfig(silence_timeout_s=1.2, check_interval_s=0.1, power_off_s=0.05,
                                            backoff_initial_s=0.1, backoff_max_s=0.2))
            task = asyncio.create_task(wd.async_run())
            bluez.start_beacon(door, 0.05, _beacon_payload)
            await wait_until(lambda: len(got) >= 3, what="adverts")

            bluez.unplug_adapter()
            await wait_until(lambda: wd.status().adapter_power_cycles >= 2, timeout_s=15,
                             what="failing power cycles while unplugged")
            st = wd.status()
            assert st.degraded and st.last_hang is HangKind.CALL_FAILED
            assert "hci0" in st.last_error
            assert st.recoveries == 0

            bluez.plug_adapter()
            await wait_until(lambda: wd.status().recoveries == 1, timeout_s=15, what="recovery after replug")
            n = len(got)
            await wait_until(lambda: len(got) > n + 2, what="adverts after replug")
            assert not wd.status().degraded
            wd.request_stop()
            await asyncio.wait_for(task, 5)

    run(scenario)


def test_wt_frames_cross_the_gatt_link_in_both_directions_with_the_codec_stream_decoder(system_bus):
    """The same COBS stream decoder as on serial reassembles frames split at ATT MTU."""
    from gateway.codec.enums import MsgType
    from gateway.codec.frame import Frame, encode_frame
    from gateway.codec.stream import StreamDecoder

    key = b"k" * 32
    event = encode_frame(MsgType.EVENT, PILLBOX, 7, bytes([0x50, 0, 0, 0, 0]), key=key, urgent=True)
    ack = encode_frame(MsgType.ACK, PILLBOX, 7, b"", key=key, downlink=True)
    assert len(event) > 20 and len(ack) > 20          # both need several ATT packets

    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            device_rx = StreamDecoder()
            device_frames: list = []
            dev = _wt_device(bluez, [])
            bluez.start_beacon(dev, 0.05, lambda n: {})
            gateway_rx = StreamDecoder()
            gateway_frames: list = []
            link = BleFrameLink(PILLBOX, BleConfig(connect_timeout_s=5.0),
                                on_bytes=lambda b: gateway_frames.extend(gateway_rx.feed(b)))
            await link.async_connect()
            dev.char(WT_FRAME_RX_UUID).char.on_write = lambda data, kind: device_frames.extend(
                device_rx.feed(data))

            for i in range(0, len(event), 20):            # the peripheral's MTU-sized notifications
                assert dev.notify(WT_FRAME_TX_UUID, event[i:i + 20])
            await wait_until(lambda: gateway_frames, what="event frame")
            (frame,) = gateway_frames
            assert isinstance(frame, Frame) and frame.type is MsgType.EVENT and frame.seq == 7
            assert frame.urgent and frame.verify(key)

            link.send(ack)
            await wait_until(lambda: device_frames, what="ack frame at the device")
            (got_ack,) = device_frames
            assert isinstance(got_ack, Frame) and got_ack.type is MsgType.ACK and got_ack.verify(key)
            await link.async_close()

    run(scenario)


def test_health_device_that_needs_bonding(system_bus):
    async def scenario() -> None:
        async with FakeBluez(system_bus) as bluez:
            scale = bluez.add_device(BPM, services=[
                FakeService("181d", [FakeCharacteristic("2a9d", ["indicate"])])])
            scale.requires_pairing = True
            bluez.start_beacon(scale, 0.05, lambda n: {})
            got: list[tuple[str, int, bytes]] = []

            plain = BleHealthClient(BPM, BleConfig(connect_timeout_s=5.0), on_measurement=lambda *a: None)
            with pytest.raises(BleError) as err:
                await plain.async_connect()
            assert err.value.op == "subscribe" and "Not paired" in str(err.value)
            await wait_until(lambda: not scale.connected, what="disconnect after refusal")

            bonded = BleHealthClient(BPM, BleConfig(connect_timeout_s=5.0, pair=True),
                                     on_measurement=lambda *a: got.append(a))
            assert await bonded.async_connect() == [HealthChar.WEIGHT]
            assert scale.paired and scale.trusted
            weight = bytes([0x00, 0x10, 0x36])          # 0x3610 * 0.005 kg = 69.2 kg
            assert scale.notify("2a9d", weight)
            await wait_until(lambda: got, what="weight indication")
            assert got == [(BPM, 0x2A9D, weight)]
            await bonded.async_close()

    run(scenario)


def test_scanner_against_fake_bluez_running_in_another_process(system_bus):
    """The fake as a separate process, as a daemon-level test would run it."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.tests.fakebluez", "--bus", system_bus,
         "--beacon", f"{DOOR}=4000001a01", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        got: list[tuple[str, bytes, int]] = []

        async def scenario() -> None:
            scanner = BleScanner(BleConfig(), on_advert=lambda *a: got.append(a))
            await scanner.async_start()
            await wait_until(lambda: len(got) >= 3, what="adverts from the fake bluetoothd process")
            await scanner.async_stop()

        run(scenario)
        ids = [d[2] for _, d, _ in got]
        assert all(mac == DOOR for mac, _, _ in got)
        assert all(d[3:] == b"\x1a\x01" for _, d, _ in got)
        assert len(set(ids)) == len(ids)            # packet id advances with every advert
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
