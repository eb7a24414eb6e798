"""`[ble] scan_mode` and `[ble] pair` (docs/ble.md) reach the BLE adapter the daemon builds:
passive scanning registers an advertisement monitor on a fake BlueZ (private D-Bus) instead
of starting discovery, and the scanner's BleConfig carries ``pair``."""
from __future__ import annotations

import asyncio
import time

from gateway.adapters.transports.ble import ScanMode
from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.tests.fakebluez import FakeBluez
from gateway.tests.fakebluez.fixtures import system_bus  # noqa: F401  (fixture)


async def until(pred, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_passive_scan_mode_and_pair_from_the_configuration_reach_the_scanner(tmp_path, mosquitto, system_bus):
    async def scenario():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": "gw-ble-cfg", "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port}, "status": {"port": 0}, "discovery": {"enabled": False},
            "ble": {"enabled": True, "scan_mode": "passive", "pair": True}})
        async with FakeBluez(system_bus) as bluez:
            rt = bootstrap(cfg, loop=loop, serial=False)
            await rt.async_start()
            try:
                await until(lambda: rt.ble.receiver is not None and rt.ble.receiver[0].running)
                scanner = rt.ble.receiver[0]
                assert scanner.status()["mode"] == "passive"
                assert len(bluez.monitors.monitors) == 1 and bluez.adapter.start_calls == 0
                assert scanner._cfg.mode is ScanMode.PASSIVE and scanner._cfg.pair is True
            finally:
                await rt.async_stop()
    asyncio.run(asyncio.wait_for(scenario(), 90))
