"""`gateway demo`: broker + gateway + emulated home + response console, one command."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo (emulated home, real broker, response console)")
    p.add_argument("--duration", type=float, default=40.0, metavar="S",
                   help="length of the scripted scenario (default 40 s; the silent-device step needs ≥ 30)")
    p.add_argument("--outage", type=float, default=0.0, metavar="S",
                   help="cut the uplink for S seconds after the scenario and show the backlog delivered")
    p.add_argument("--broker", metavar="HOST:PORT", help="reuse this MQTT broker instead of starting Mosquitto")
    p.add_argument("--data-dir", metavar="DIR", help="gateway data directory (default: a temporary one)")
    p.add_argument("--no-discovery", action="store_true", help="do not advertise the demo gateway over mDNS")
    p.add_argument("--scaip", action="store_true",
                   help="also run a SIPp alarm receiving centre and send alarms to it over SCAIP first "
                        "(needs sipp: Debian package sip-tester); prints press -> centre reply latencies")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    p.add_argument("--verbose", "-v", action="store_true", help="show the gateway's own log lines")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.testing.broker import BrokerError
    from gateway.config import ConfigError
    from gateway.daemon import DaemonError
    from gateway.testing.emulator.demo import Demo, DemoOptions
    from gateway.testing.sip_centre import SipToolMissing

    if args.duration <= 0 or args.outage < 0:
        print("gateway demo: --duration must be > 0 and --outage ≥ 0 (seconds)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    opts = DemoOptions(duration_s=args.duration, outage_s=args.outage, broker=args.broker,
                       data_dir=args.data_dir, discovery=not args.no_discovery, scaip=args.scaip)
    demo = Demo(opts)
    try:
        summary = asyncio.run(demo.run())
    except KeyboardInterrupt:
        print("\ndemo interrupted; everything stopped", file=sys.stderr)
        return 130
    except (BrokerError, ConfigError, DaemonError, SipToolMissing) as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.as_dict()))
    return 0 if summary.ok else 1
