"""Gateway status: the snapshot JSON, a tiny local HTTP endpoint serving it, the client
side used by ``gateway status``, and the ``wt.health/1`` payload built from a snapshot.

The endpoint is plain asyncio (no web framework): ``GET /status`` → the snapshot as JSON,
``GET /healthz`` → ``ok``. It listens on loopback by default (config ``[status]``) and
never accepts writes.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
import urllib.error
import urllib.request
from typing import Any, Callable

from gateway.errors import GatewayError

log = logging.getLogger("gateway.adapters.status")

SnapshotFn = Callable[[], dict[str, Any]]


class StatusError(GatewayError):
    """Root exception of gateway.adapters.status (``url`` names the endpoint)."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    ms = int(round(epoch_s * 1000))
    return _dt.datetime.fromtimestamp(ms // 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


class StatusServer:
    """Serves ``snapshot()`` as JSON over HTTP/1.0 on (host, port); port 0 picks a free one."""

    def __init__(self, snapshot: SnapshotFn, host: str = "127.0.0.1", port: int = 8787) -> None:
        self._snapshot = snapshot
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self.requests = 0

    async def async_start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("status endpoint on http://%s:%d/status", self.host, self.port)
        return self.port

    async def async_stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            while True:  # drain headers
                h = await asyncio.wait_for(reader.readline(), 5.0)
                if h in (b"\r\n", b"\n", b""):
                    break
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            method = parts[0] if parts else ""
            self.requests += 1
            if method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"only GET\n"
            elif path in ("/status", "/"):
                body = json.dumps(self._snapshot(), default=str).encode()
                status, ctype = "200 OK", "application/json"
            elif path == "/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /status\n"
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        except Exception:  # a status bug must never take the daemon down
            log.exception("status request failed")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


def fetch_status(url: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """GET the snapshot (client side of ``gateway status``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read().decode())
    except urllib.error.URLError as exc:
        raise StatusError(f"cannot reach the gateway status endpoint at {url}: {exc.reason}; "
                          "is `gateway run` running, and is [status] enabled with this host/port?", url=url) from None
    except (OSError, ValueError) as exc:
        raise StatusError(f"bad answer from {url}: {exc}", url=url) from None


def health_payload(snap: dict[str, Any]) -> dict[str, Any]:
    """``wt.health/1`` (docs/mqtt.md) from a status snapshot."""
    up = snap.get("uplink", {})
    j = snap.get("journal", {})
    doc = {
        "schema": "wt.health/1",
        "gateway": snap["gateway"],
        "at": iso(snap["at"]),
        "version": snap["version"],
        "uptime_s": int(snap["uptime_s"]),
        "uplink": {"state": "connected" if up.get("connected") else "disconnected",
                   "route": up.get("route") or "none", "backlog": up.get("backlog", 0)},
        "journal": {"depth": j.get("total", 0), "alarms_pending": j.get("alarms_pending", 0), "shed": j.get("shed", 0)},
        "config_version": snap.get("config_version", 0),
        "devices": [{"device": d["device"], "role": d["role"], "last_seen": iso(d["last_seen"]),
                     "battery_pct": d["battery_pct"], "rssi": d["rssi"], "fw": d["fw"], "silent": d["silent"]}
                    for d in snap.get("devices", [])],
    }
    tm = snap.get("test_mode_status")
    if tm is not None:
        doc["test_mode"] = {"active": bool(tm.get("active")), "until": tm.get("until"),
                            "devices": sorted(tm.get("devices") or ())}
    ctl = snap.get("control")
    if ctl is not None:
        doc["control"] = {"rejected": ctl.get("rejected", {}), "accepted": ctl.get("accepted", 0),
                          "key": ctl.get("key")}
    ble = snap.get("ble")
    if ble and ble.get("watchdog"):
        w = ble["watchdog"]
        doc["ble"] = {"state": w.get("state"), "degraded": bool(w.get("degraded")),
                      "hangs_detected": w.get("hangs_detected", 0), "recoveries": w.get("recoveries", 0),
                      "last_hang": w.get("last_hang"), "last_report_age_s": w.get("last_report_age_s")}
    return doc


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return "never"
    s = max(0.0, now - t)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def render_table(snap: dict[str, Any]) -> str:
    """Human-readable status (``gateway status`` without ``--json``)."""
    now = snap.get("at", 0.0)
    up = snap.get("uplink", {})
    j = snap.get("journal", {})
    lines = [
        f"gateway {snap.get('gateway')}  version {snap.get('version')}  up {int(snap.get('uptime_s', 0))}s",
        f"uplink  {'connected' if up.get('connected') else 'DISCONNECTED'}"
        f"  route={up.get('route') or '-'}  backlog={up.get('backlog', 0)}  inflight={up.get('inflight', 0)}"
        f"  unacked alarms={up.get('alarms_unacknowledged', 0)}",
        f"journal events={j.get('total', 0)}  undelivered={j.get('undelivered', 0)}"
        f"  alarms pending ack={j.get('alarms_pending', 0)}  shed={j.get('shed', 0)}  bytes={j.get('bytes_used', 0)}",
    ]
    sc = up.get("scaip")
    if sc:
        hb = sc.get("heartbeat") or {}
        ans = hb.get("last_answered_s_ago")
        lines.append(f"scaip   {'healthy' if sc.get('healthy') else 'UNHEALTHY'}  centre={sc.get('centre')}"
                     f" ({sc.get('transport')})  last snu={_dash(sc.get('last_snu'))}  open={sc.get('open', 0)}"
                     f"  heartbeat every {hb.get('interval_s')}s, answered "
                     f"{'never' if ans is None else f'{ans:.0f}s ago'}, missed {hb.get('missed', 0)},"
                     f" hbi {_dash(hb.get('hbi'))}, last snu {_dash(hb.get('last_snu'))}")
    links = snap.get("links", [])
    if links:
        lines.append("links   " + "  ".join(f"{ln['name']}={ln['state']}" for ln in links))
    w = (snap.get("ble") or {}).get("watchdog")
    if w:
        lines.append(f"ble     {'DEGRADED' if w.get('degraded') else 'ok'}  state={w.get('state')}"
                     f"  hangs={w.get('hangs_detected', 0)}  scanner restarts={w.get('scanner_restarts', 0)}"
                     f"  power cycles={w.get('adapter_power_cycles', 0)}  recoveries={w.get('recoveries', 0)}"
                     + (f"  last error: {w['last_error']}" if w.get("last_error") else ""))
    lines.append("")
    lines.append(f"{'DEVICE':<14}{'ROLE':<11}{'LAST SEEN':<12}{'BATT':>5}{'RSSI':>6}  {'FW':<9}STATE")
    for d in snap.get("devices", []):
        batt = f"{d['battery_pct']}%" if d.get("battery_pct") is not None else "-"
        rssi = str(d["rssi"]) if d.get("rssi") is not None else "-"
        state = "SILENT" if d.get("silent") else ("ok" if d.get("last_seen") else "waiting")
        if not d.get("configured", True):
            state += " (unpaired)"
        if d.get("settings"):     # the configuration's settings for it (gateway/domain/device_settings.py)
            state += f"  settings {d['settings'] if d['settings'] == 'synced' else d['settings'].upper()}"
        lines.append(f"{d['device']:<14}{(d.get('role') or '?'):<11}{_ago(now, d.get('last_seen')):<12}"
                     f"{batt:>5}{rssi:>6}  {(d.get('fw') or '-'):<9}{state}")
    ds = (snap.get("device_settings") or {}).get("devices") or {}
    for dev, st in ds.items():       # why a device does not hold its settings
        if st.get("state") in ("refused", "failed", "no_downlink"):
            lines.append(f"  settings of {dev} {st['state'].upper()}: {st.get('reason') or '-'}")
    alarms = snap.get("last_alarms", [])
    lines.append("")
    lines.append(f"last alarms ({len(alarms)}):")
    for a in alarms:
        lat = f"{a['latency_ms']:.0f} ms" if a.get("latency_ms") is not None else "-"
        lines.append(f"  {a['event_id']:<28}{a['type']:<22}latency {lat:<9}attempts {a.get('attempts', 0)}"
                     f"  ack {a.get('ack') or '-'}" + (f"  snu {a['snu']}" if a.get("snu") is not None else ""))
    return "\n".join(lines)
