"""Status snapshot rendering, wt.health/1 payload, the HTTP endpoint and `gateway status`."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from gateway.cli import main as cli_main
from gateway.adapters.status import StatusError, StatusServer, fetch_status, health_payload, render_table

NOW = 1_795_000_000.0


def snap() -> dict:
    return {
        "schema": "wt.status/1", "gateway": "gw-0001", "version": "0.1.0", "at": NOW, "uptime_s": 3600.4,
        "uplink": {"connected": False, "route": None, "routes": {"primary": False}, "backlog": 12,
                   "inflight": 0, "alarms_unacknowledged": 1, "alarms_held": 1},
        "journal": {"total": 40, "undelivered": 12, "alarms_pending": 1, "shed": 0, "bytes_used": 4096},
        "links": [{"name": "serial:/dev/ttyUSB0", "state": "down"}],
        "devices": [
            {"device": "a4c1380a1b2c", "role": "button", "configured": True, "last_seen": NOW - 30,
             "battery_pct": 87, "rssi": -61, "fw": "1.2.0", "link": "serial:/dev/ttyUSB0", "silent": False},
            {"device": "a4c1380a1b2d", "role": "bed", "configured": True, "last_seen": NOW - 900,
             "battery_pct": None, "rssi": None, "fw": None, "link": None, "silent": True},
        ],
        "last_alarms": [{"event_id": "a4c1380a1b2c-0000002a", "type": "button_press", "latency_ms": 12.5,
                         "attempts": 1, "ack": "received"}],
        "config_version": 7,
    }


def test_render_table_shows_uplink_devices_journal_and_alarms():
    text = render_table(snap())
    assert "DISCONNECTED" in text and "backlog=12" in text
    assert "undelivered=12" in text and "alarms pending ack=1" in text
    assert "serial:/dev/ttyUSB0=down" in text
    row = next(l for l in text.splitlines() if l.startswith("a4c1380a1b2c"))
    assert "30s ago" in row and "87%" in row and "-61" in row and "1.2.0" in row and row.endswith("ok")
    row = next(l for l in text.splitlines() if l.startswith("a4c1380a1b2d"))
    assert "15m ago" in row and "SILENT" in row
    assert "a4c1380a1b2c-0000002a" in text and "12 ms" in text and "received" in text


def test_health_payload_matches_contract():
    h = health_payload(snap())
    assert h["schema"] == "wt.health/1" and h["gateway"] == "gw-0001" and h["uptime_s"] == 3600
    assert h["uplink"] == {"state": "disconnected", "route": "none", "backlog": 12}
    assert h["journal"] == {"depth": 40, "alarms_pending": 1, "shed": 0}
    assert h["config_version"] == 7
    assert h["devices"][0] == {"device": "a4c1380a1b2c", "role": "button", "last_seen": "2026-11-18T11:06:10.000Z",
                               "battery_pct": 87, "rssi": -61, "fw": "1.2.0", "silent": False}
    assert h["devices"][1]["silent"] is True


def test_health_payload_decodes_with_the_contract_the_fleet_uses():
    """Gateway half of the wt.health/1 contract (the fleet half is fleet/tests/test_monitor.py)."""
    from contracts.payloads import Health, decode_health

    h = decode_health("gw-0001", json.dumps(health_payload(snap())).encode(), NOW + 1)
    assert isinstance(h, Health), h
    assert (h.at, h.uptime_s, h.uplink_state, h.backlog, h.journal_depth, h.alarms_pending, h.config_version) == (
        pytest.approx(NOW), 3600, "disconnected", 12, 40, 1, 7)
    assert h.devices[0].last_seen == pytest.approx(NOW - 30) and h.devices[0].battery_pct == 87
    assert h.devices[1].silent is True and h.devices[1].fw is None


class ServerThread:
    """A StatusServer on its own loop (so the blocking CLI can query it)."""

    def __init__(self, data) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = StatusServer(lambda: data, "127.0.0.1", 0)
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.async_start())
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.async_stop(), self.loop)
        fut.result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(5)


def test_endpoint_and_cli(capsys):
    srv = ServerThread(snap())
    try:
        url = f"http://127.0.0.1:{srv.server.port}/status"
        assert fetch_status(url)["gateway"] == "gw-0001"
        assert cli_main(["status", "--url", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["journal"]["total"] == 40
        assert cli_main(["status", "--url", url]) == 0
        out = capsys.readouterr().out
        assert "gateway gw-0001" in out and "SILENT" in out
        import urllib.request, urllib.error
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{srv.server.port}/nope", timeout=3)
        port = srv.server.port
    finally:
        srv.stop()
    assert cli_main(["status", "--url", f"http://127.0.0.1:{port}/status", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the gateway status endpoint" in err and "gateway run" in err


def test_status_uses_config_port(tmp_path, capsys):
    srv = ServerThread(snap())
    try:
        cfg = tmp_path / "gw.toml"
        cfg.write_text(f"[status]\nport = {srv.server.port}\n")
        assert cli_main(["status", "--config", str(cfg), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["gateway"] == "gw-0001"
    finally:
        srv.stop()


def test_fetch_status_unreachable_raises_status_error():
    with pytest.raises(StatusError) as ei:
        fetch_status("http://127.0.0.1:9/status", 0.5)
    assert ei.value.url.endswith(":9/status")
