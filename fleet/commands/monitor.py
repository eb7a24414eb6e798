"""`fleet monitor`: ingest workers, their status and quarantine, and the support queries
(offline, devices, battery, updates)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..clock import FunctionClock
from ._common import add_broker, add_json, api, broker_client, emit, fmt_ago, fmt_time, local_only, session


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
    x = add_json(s.add_parser("status", help="ingest workers (alive, counters) and quarantined messages per reason"))
    x.add_argument("--hours", type=float, default=24.0, help="'recent' means within this many hours (default 24)")
    x.set_defaults(func=cmd_status)
    x = add_json(s.add_parser("quarantine", help="messages the ingest refused: reason, topic, size, first bytes"))
    x.add_argument("--reason", help="e.g. nul, oversized, not_utf8, not_owner, event_clash")
    x.add_argument("--gateway", help="only this sending gateway")
    x.add_argument("--days", type=float, help="only rows with a message in the last DAYS days")
    x.add_argument("--limit", type=int, default=200)
    x.set_defaults(func=cmd_quarantine)
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


def _municipality(c, args) -> None:
    from ._filters import check_municipality

    if args.municipality:
        args.municipality = check_municipality(c, args.municipality)


def cmd_devices(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        _municipality(c, args)
        rows = c.monitoring.silent_devices(minutes=args.minutes, municipality=args.municipality, limit=args.limit)
    _finish(cfg, rows, ["device_id", "role", "gateway_id", "municipality", "last_seen", "silent", "battery_pct", "fw"])
    return 0


def cmd_battery(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        _municipality(c, args)
        rows = c.monitoring.low_batteries(below=args.below, municipality=args.municipality, limit=args.limit)
    _finish(cfg, rows, ["device_id", "role", "battery_pct", "gateway_id", "municipality", "last_seen"])
    return 0


def cmd_updates(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        _municipality(c, args)
        rows = c.monitoring.failed_updates(days=args.days, municipality=args.municipality, limit=args.limit)
    _finish(cfg, rows, ["at", "source", "deployment", "gateway_id", "device_id", "municipality", "error"],
            time_cols=("at",))
    return 0


def cmd_status(args: argparse.Namespace, cfg) -> int:
    now = cfg.clock()
    with api(cfg) as c:              # quarantine totals only for a reader of all municipalities
        got = c.monitoring.ingest(hours=args.hours)
    workers, totals = got["workers"], got["quarantine"]
    if cfg.json:
        emit(cfg, {"workers": workers, "quarantine": totals, "recent_hours": args.hours})
        return 0
    for w in workers:
        w["seen"] = fmt_ago(w["seen_at"], now) + " ago"
    print("ingest workers:")
    emit(cfg, workers, columns=["worker", "host", "state", "seen", "started_at", "received", "written",
                                "quarantined", "write_errors"])
    print(f"\nquarantined messages by reason (recent = last {args.hours:g} h; see `fleet monitor quarantine`):")
    emit(cfg, totals, columns=["reason", "recent", "total", "sources", "last_at"])
    return 0


def cmd_quarantine(args: argparse.Namespace, cfg) -> int:
    from ..monitoring import Reason
    from ._filters import check_choice

    if args.reason:
        check_choice(args.reason, [r.value for r in Reason], "--reason", "reason")
    with api(cfg) as c:
        rows = c.monitoring.quarantine(reason=args.reason, gateway=args.gateway, days=args.days, limit=args.limit)
    emit(cfg, rows, columns=["last_at", "reason", "source", "topic", "count", "size", "head_hex", "detail"])
    return 0


def cmd_ingest(args: argparse.Namespace, cfg) -> int:
    """Runs until SIGINT/SIGTERM; several of these split the stream (same --group)."""
    import socket

    from ..access import Permission
    from ..monitoring import IngestWorker, SqlMonitorSink

    # This process only ingests: let the writer thread get the GIL back quickly from paho's
    # CPU-bound network thread after each database round trip (default switch interval 5 ms).
    sys.setswitchinterval(0.0005)
    local_only(cfg, "fleet monitor ingest (a worker between the broker and the database)")
    with session(cfg) as s:
        s.actor.require(Permission.MONITOR_READ)
        name = args.client_id or f"fleet-ingest-{socket.gethostname()}"
        client = broker_client(args, client_id=name, manual_ack=True, session_expiry_s=args.session_expiry_s or None)
        w = IngestWorker(client, lambda: SqlMonitorSink(cfg.open_store(migrate=False), close_store=True, worker=name),
                         clock=FunctionClock(cfg.clock), flush_s=args.flush_s, max_batch=args.max_batch,
                         group=args.group, name=name).start()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"ingesting from {client.settings.url} as $share/{args.group}/... (Ctrl-C to stop)", file=sys.stderr)
        stop.wait()
        st = w.stop()
    print(f"received {st.received}, written {st.written} in {st.batches} batches, rejected {st.rejected} "
          "(quarantined: fleet monitor quarantine)", file=sys.stderr)
    return 0
