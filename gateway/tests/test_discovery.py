"""Zeroconf adapter against real mDNS on loopback: advertise, discover, `gateway discover --json`."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from gateway.discovery import GatewayAdvertiser, discover

GATEWAY = str(Path(sys.executable).with_name("gateway"))


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
