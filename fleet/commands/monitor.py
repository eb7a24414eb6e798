"""`fleet monitor`: ingest workers and the support queries (offline, devices, battery, updates)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..clock import FunctionClock
from ._common import add_broker, add_json, emit, fmt_time, session


def register(sub) -> None:
    p = sub.add_parser("monitor", help="gateway/device monitoring: ingest and queries",
                       description="See docs/monitoring.md.")
    s = p.add_subparsers(dest="monitor_cmd", metavar="ACTION", required=True)
    x = add_json(s.add_parser("offline", help="gateways offline or not seen for --minutes"))
    x.add_argument("--minutes", type=float, default=15.0)
    x.add_argument("--municipality", "-m")
    x.add_argument("--limit", type=int, default=200)
    x.set_defaults(func=cmd_offline)
    x = add_json(s.add_parser("devices", help="silent devices: flagged by the gateway or not heard for --minutes"))
    x.add_argument("--minutes", type=float, default=60.0)
    x.add_argument("--municipality", "-m")
    x.add_argument("--limit", type=int, default=500)
    x.set_defaults(func=cmd_devices)
    x = add_json(s.add_parser("battery", help="devices with battery below --below percent"))
    x.add_argument("--below", type=int, default=20)
    x.add_argument("--municipality", "-m")
    x.add_argument("--limit", type=int, default=500)
    x.set_defaults(func=cmd_battery)
    x = add_json(s.add_parser("updates", help="failed updates (rollout units and gateway error reports)"))
    x.add_argument("--days", type=float, default=7.0)
    x.add_argument("--municipality", "-m")
    x.add_argument("--limit", type=int, default=500)
    x.set_defaults(func=cmd_updates)
    x = add_broker(s.add_parser("ingest", help="run one ingest worker (shared subscription $share/fleet/...)"))
    x.add_argument("--group", default="fleet", help="shared-subscription group")
    x.add_argument("--max-batch", type=int, default=2000)
    x.add_argument("--flush-s", type=float, default=0.2)
    x.add_argument("--id", dest="client_id", help="MQTT client id; keep it stable per worker so a restarted worker "
                                                  "resumes its session (default fleet-ingest-<host>)")
    x.add_argument("--session-expiry-s", type=int, default=60,
                   help="how long the broker keeps an absent worker's session: a restart within this time "
                        "loses nothing; meanwhile its share of new messages waits for it (0 = clean session)")
    x.set_defaults(func=cmd_ingest)


def cmd_offline(args: argparse.Namespace, cfg) -> int:
    from .offline import cmd_offline as core_offline

    return core_offline(args, cfg)


def _finish(cfg, rows, columns, time_cols=("last_seen",)):
    for r in rows:
        if "silent" in r and r["silent"] is not None:
            r["silent"] = bool(r["silent"])
    if not cfg.json:
        for r in rows:
            for c in time_cols:
                if c in r:
                    r[c] = fmt_time(r[c])
    emit(cfg, rows, columns=columns)


def cmd_devices(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..monitoring._queries import silent_devices

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        s.actor.require(Permission.MONITOR_READ, args.municipality)
        rows = silent_devices(tx, now=cfg.clock(), minutes=args.minutes, scope=s.actor.municipalities,
                              municipality=args.municipality, limit=args.limit)
    _finish(cfg, rows, ["device_id", "role", "gateway_id", "municipality", "last_seen", "silent", "battery_pct", "fw"])
    return 0


def cmd_battery(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..monitoring._queries import low_battery

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        s.actor.require(Permission.MONITOR_READ, args.municipality)
        rows = low_battery(tx, threshold_pct=args.below, scope=s.actor.municipalities,
                           municipality=args.municipality, limit=args.limit)
    _finish(cfg, rows, ["device_id", "role", "battery_pct", "gateway_id", "municipality", "last_seen"])
    return 0


def cmd_updates(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..monitoring._queries import failed_updates

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        s.actor.require(Permission.MONITOR_READ, args.municipality)
        rows = failed_updates(tx, since=cfg.clock() - args.days * 86400,
                              scope=s.actor.municipalities, municipality=args.municipality,
                              limit=args.limit)
    _finish(cfg, rows, ["at", "source", "deployment", "gateway_id", "device_id", "municipality", "error"],
            time_cols=("at",))
    return 0


def cmd_ingest(args: argparse.Namespace, cfg) -> int:
    """Runs until SIGINT/SIGTERM; several of these split the stream (same --group)."""
    import os

    from ..access import Permission
    from ..monitoring import IngestWorker, SqlMonitorSink
    from ..mqtt import MqttClient, parse_broker

    # This process only ingests: let the writer thread get the GIL back quickly from paho's
    # CPU-bound network thread after each database round trip (default switch interval 5 ms).
    sys.setswitchinterval(0.0005)
    with session(cfg) as s:
        s.actor.require(Permission.MONITOR_READ)
        host, port = parse_broker(args.broker or os.environ.get("FLEET_MQTT") or "127.0.0.1:1883")
        import socket

        client = MqttClient(host, port, client_id=args.client_id or f"fleet-ingest-{socket.gethostname()}",
                            manual_ack=True, session_expiry_s=args.session_expiry_s or None)
        w = IngestWorker(client, lambda: SqlMonitorSink(cfg.open_store(migrate=False), close_store=True), clock=FunctionClock(cfg.clock), flush_s=args.flush_s,
                         max_batch=args.max_batch, group=args.group).start()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"ingesting from {host}:{port} as $share/{args.group}/... (Ctrl-C to stop)", file=sys.stderr)
        stop.wait()
        st = w.stop()
    print(f"received {st.received}, written {st.written} in {st.batches} batches, rejected {st.rejected}",
          file=sys.stderr)
    return 0
