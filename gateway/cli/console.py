"""`gateway console`: a small response console (prints alarms with latency, acknowledges)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("console", help="response console: print alarms with end-to-end latency and ack them")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--gateway", default="+", help="gateway id to follow (default: all)")
    p.add_argument("--no-ack", action="store_true", help="only watch; do not send wt.ack/1")
    p.add_argument("--accept", action="store_true", help="also send status 'accepted' (FEEDBACK 2 to the device)")
    p.add_argument("--duration", type=float, default=0.0, metavar="S", help="exit after S seconds (0 = until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at exit")
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    from gateway.testing.console import ResponseConsole, make_console_link

    link = make_console_link(args.host, args.port, client_id=f"wt-console-{os.getpid()}")
    console = ResponseConsole(link, ack=not args.no_ack, accept=args.accept, gateway_filter=args.gateway).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    link.start()
    print(f"console on {args.host}:{args.port}, following gateway {args.gateway}; Ctrl-C to stop", file=sys.stderr)
    try:
        stop.wait(args.duration or None)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    s = console.stats
    summary = {"alarms": len(s.alarms), "events": len(s.events), "deliveries": s.deliveries,
               "duplicate_deliveries": s.duplicate_deliveries, "acks_sent": s.acks_sent}
    print(json.dumps(summary) if args.json else
          f"{summary['alarms']} alarm(s), {summary['events']} event(s), "
          f"{summary['duplicate_deliveries']} duplicate deliveries dropped", file=sys.stdout if args.json else sys.stderr)
    return 0
