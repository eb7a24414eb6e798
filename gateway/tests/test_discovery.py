"""Zeroconf adapter against real mDNS on loopback: advertise, discover, `gateway discover --json`."""
from __future__ import annotations

import asyncio
import json
import subprocess

from gateway.adapters.discovery import GatewayAdvertiser, discover
from gateway.tests._kit import GATEWAY_EXE as GATEWAY


def test_advertise_and_discover_on_loopback():
    async def run():
        adv = GatewayAdvertiser("gw-disc-test", "9.9.9", 18787, interfaces=("127.0.0.1",))
        await adv.async_start()
        try:
            found = await asyncio.to_thread(discover, 2.0, interfaces=("127.0.0.1",))
            cli = await asyncio.to_thread(
                subprocess.run, [GATEWAY, "discover", "--json", "--timeout", "2", "--interface", "127.0.0.1"],
                capture_output=True, text=True, timeout=30)
        finally:
            await adv.async_stop()
        gw = next(g for g in found if g.id == "gw-disc-test")
        assert gw.version == "9.9.9" and gw.port == 18787 and "127.0.0.1" in gw.addresses
        assert gw.status_url == "http://127.0.0.1:18787/status"
        assert cli.returncode == 0, cli.stderr
        listed = json.loads(cli.stdout)
        assert any(g["id"] == "gw-disc-test" and g["port"] == 18787 for g in listed)
        after = await asyncio.to_thread(discover, 1.0, interfaces=("127.0.0.1",))
        assert all(g.id != "gw-disc-test" for g in after)     # unregistered on stop
    asyncio.run(run())


def test_daemon_advertises_its_status_port(tmp_path):
    """The composition root advertises the gateway id, version and the real status port."""
    from gateway import __version__
    from gateway.config import load_config
    from gateway.daemon import bootstrap
    from gateway.adapters.status import fetch_status
    from gateway.testing.platform import FakePublisher

    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": "gw-disc-daemon", "data_dir": str(tmp_path / "gw")},
        "status": {"port": 0}, "discovery": {"interfaces": ["127.0.0.1"]}})

    async def run():
        rt = bootstrap(cfg, publisher=FakePublisher(connected=False), serial=False)
        await rt.async_start()
        try:
            found = await asyncio.to_thread(discover, 2.0, interfaces=("127.0.0.1",))
            gw = next(g for g in found if g.id == "gw-disc-daemon")
            assert gw.port == rt.status_server.port and gw.version == __version__
            snap = await asyncio.to_thread(fetch_status, gw.status_url)
            assert snap["gateway"] == "gw-disc-daemon" and snap["uplink"]["connected"] is False
        finally:
            await rt.async_stop()
    asyncio.run(run())
