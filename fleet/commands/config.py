"""`fleet config`: templates (municipality -> group -> gateway -> device), push, status, diff."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import Progress, add_broker, add_json, api, broker_settings, emit, fmt_time

SCOPES = ("municipality", "group", "gateway", "device")


def register(sub) -> None:
    p = sub.add_parser("config", help="gateway configuration: templates, push, drift, diff",
                       description="Effective config = municipality < group < gateway < device templates "
                                   "(later wins; null removes a key). See docs/fleet-config.md.")
    s = p.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)

    x = add_json(s.add_parser("show", help="effective config of a gateway (rendered now, or a stored --version)"))
    x.add_argument("gateway")
    x.add_argument("--version", type=int)
    x.set_defaults(func=cmd_show)

    x = s.add_parser("set", help="set KEY=VALUE in one template (validated; nothing stored on error)")
    g = x.add_mutually_exclusive_group(required=True)
    for sc in SCOPES:
        g.add_argument(f"--{sc}", metavar="ID")
    x.add_argument("key", help="dotted key, e.g. rules.bed.max_out_min")
    x.add_argument("value", nargs="?", help="JSON value (30, true, \"20:30\"); omit with --unset")
    x.add_argument("--unset", action="store_true", help="remove the key from this template")
    x.set_defaults(func=cmd_set)

    x = s.add_parser("assign", help="put a gateway in a config group (and/or municipality)")
    x.add_argument("gateway")
    x.add_argument("--group")
    x.add_argument("--municipality")
    x.set_defaults(func=cmd_assign)

    x = add_json(add_broker(s.add_parser("push", help="version and publish the desired config (retained) to gateways")))
    x.add_argument("gateways", nargs="*")
    x.add_argument("--all", action="store_true", help="every gateway known to config")
    x.add_argument("--group", help="every gateway of this config group")
    x.add_argument("--wave-size", type=int, help="push in waves of this many gateways; the next wave starts when "
                                                 "this one applied it (docs/fleet-config.md \"Group pushes\")")
    x.add_argument("--error-threshold", type=float, default=0.0,
                   help="with --wave-size: halt when more than this fraction of a wave rejected or rolled back "
                        "the push (default 0: the first failure halts)")
    x.add_argument("--timeout", type=float, default=300.0, help="with --wave-size: seconds a gateway has to report")
    x.set_defaults(func=cmd_push)

    x = add_json(s.add_parser("status", help="desired vs applied version per gateway (drift)"))
    x.add_argument("gateways", nargs="*")
    x.add_argument("--drift", action="store_true", help="only gateways that are not in sync")
    x.set_defaults(func=cmd_status)

    x = add_json(s.add_parser("diff", help="applied -> desired, or --from/--to between stored versions"))
    x.add_argument("gateway")
    x.add_argument("--from", dest="from_v", type=int)
    x.add_argument("--to", dest="to_v", type=int)
    x.set_defaults(func=cmd_diff)

    x = add_json(s.add_parser("templates", help="list templates"))
    x.set_defaults(func=cmd_templates)

    x = add_json(s.add_parser("check", help="validate a gateway's effective config; exit 2 on problems"))
    x.add_argument("gateway")
    x.set_defaults(func=cmd_check)


def cmd_show(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:             # secrets come back redacted ("set" + fingerprint), never in clear
        doc = c.config.show(args.gateway, version=args.version)
    if cfg.json:
        emit(cfg, doc)
    else:
        for k, v in doc.items():
            if k != "config":
                print(f"{k}: {v}")
        print(json.dumps(doc["config"], indent=2, sort_keys=True))
    return 0


def cmd_set(args: argparse.Namespace, cfg) -> int:
    from ..config import parse_value
    from ..errors import ValidationError

    scope = next(sc for sc in SCOPES if getattr(args, sc))
    sid = getattr(args, scope)
    if args.unset:
        value = None
    elif args.value is None:
        raise ValidationError(f"no value for {args.key}; give one (e.g. 30, true, \"20:30\") or use --unset")
    else:
        value = parse_value(args.value)
    with api(cfg) as c:             # validated by the service; nothing stored on error
        c.config.set_key(scope, sid, args.key, value)
    print(f"{scope} {sid}: {args.key} = {'(removed)' if args.unset else json.dumps(value)}; "
          "push it with: fleet config push GATEWAY (or --all)", file=sys.stderr)
    return 0


def cmd_assign(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    if not args.group and not args.municipality:
        raise ValidationError("give --group and/or --municipality")
    with api(cfg) as c:
        c.config.assign(args.gateway, group=args.group, municipality=args.municipality)
    return 0


def cmd_push(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    if not args.gateways and not args.all and not args.group:
        raise ValidationError("name gateways to push to, or --group GROUP, or --all")
    # The service versions, publishes and audits each push through its broker: on one machine
    # the --broker options below; a server uses its own (FLEET_MQTT on the server).
    broker = None if cfg.server else broker_settings(args)
    with api(cfg, mqtt=broker) as c:
        rows = c.config.status() if args.all or args.group else []
        gws = ([r["gateway"] for r in rows if not args.group or r.get("group") == args.group] if rows
               else list(args.gateways))
        if not gws:
            raise ValidationError("no gateways known to config; assign one first (fleet config assign)")
        if args.wave_size:
            return _push_waves(args, cfg, c, gws)
        bar = Progress(len(gws), "push", enabled=cfg.progress)
        results, failed = [], 0
        try:
            for gw in gws:
                try:
                    v = c.config.push(gw)
                    results.append({"gateway": gw, "version": v["version"], "hash": v["hash"]})
                except ValidationError as exc:          # the configuration does not validate: nothing pushed
                    failed += 1
                    results.append({"gateway": gw, "error": exc.message})
                    print(f"fleet: {gw}: not pushed: {exc.message}", file=sys.stderr)
                bar.advance()
        finally:
            bar.close()
    emit(cfg, results, columns=["gateway", "version", "hash", "error"])
    return 2 if failed else 0


def _push_waves(args: argparse.Namespace, cfg, c, gws: list[str]) -> int:
    """The push in waves with a halt threshold (fleet/config/_waves.py); exit 1 if it halted."""
    from ..clock import SystemClock
    from ..config._waves import push_in_waves

    def reports():
        return {r["gateway"]: (r.get("applied_version"), r.get("applied_status"), r.get("error"))
                for r in c.config.status()}
    out = push_in_waves(gws, push=lambda gw: int(c.config.push(gw)["version"]), reports=reports,
                        clock=SystemClock(), wave_size=args.wave_size, error_threshold=args.error_threshold,
                        timeout_s=args.timeout)
    emit(cfg, out.rows(), columns=["gateway", "wave", "state", "version", "error"])
    if out.halted:
        print(f"fleet: push halted: {out.engine.halt_reason}; later waves were not pushed", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.config.status(drift_only=args.drift)
    if args.gateways:
        order = {gw: i for i, gw in enumerate(args.gateways)}
        rows = sorted((r for r in rows if r["gateway"] in order), key=lambda r: order[r["gateway"]])
    if not cfg.json:
        for r in rows:
            r["reported_at"] = fmt_time(r["reported_at"])
    emit(cfg, rows, columns=["gateway", "municipality", "drift", "desired_version", "applied_version",
                             "running_version", "applied_status", "reported_at", "error"])
    return 0


def cmd_diff(args: argparse.Namespace, cfg) -> int:
    from ..config import Change, DiffEntry

    with api(cfg) as c:
        d = c.config.diff(args.gateway, from_version=args.from_v, to_version=args.to_v)
    if cfg.json:
        emit(cfg, d)
        return 0
    print(f"--- {d['from']}\n+++ {d['to']}")
    for e in d["changes"]:
        print(DiffEntry(e["key"], Change(e["change"]), e.get("old"), e.get("new")).render())
    if not d["changes"]:
        print("(no differences)")
    return 0


def cmd_templates(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:            # secrets redacted; only templates of the reader's municipalities
        rows = c.config.templates()
    if not cfg.json:
        for r in rows:
            r["updated_at"] = fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["scope", "scope_id", "updated_at", "updated_by", "body"])
    return 0


def cmd_check(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        check = c.config.check(args.gateway)
        conf = c.config.show(args.gateway)["config"]          # secrets redacted
    problems = check["problems"]
    if cfg.json:
        emit(cfg, {"gateway": args.gateway, "valid": not problems, "problems": problems, "config": conf})
    else:
        print(json.dumps(conf, indent=2, sort_keys=True))
        for p in problems:
            print(f"fleet: invalid: {p['key']}: {p['problem']}" + (f" ({p['fix']})" if p.get("fix") else ""),
                  file=sys.stderr)
        print("valid" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 2 if problems else 0
