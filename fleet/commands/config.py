"""`fleet config`: templates (municipality -> group -> gateway -> device), push, status, diff."""
from __future__ import annotations

import argparse
import json
import sys

from ..clock import FunctionClock
from ._common import Progress, add_broker, add_json, connect_broker, emit, fmt_time, session

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


def _svc(tx, cfg):
    from ..config import ConfigService
    from ..config._sql import SqlConfigStore

    store = SqlConfigStore(tx)
    return store, ConfigService(store, FunctionClock(cfg.clock))


def _require(actor, perm_name: str, store, gateway_id: str | None) -> None:
    from ..access import Permission

    perm = Permission[perm_name]
    actor.require(perm, store.municipality_of(gateway_id) if gateway_id else None)


def cmd_show(args: argparse.Namespace, cfg) -> int:
    from ..errors import NotFound

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        store, svc = _svc(tx, cfg)
        _require(s.actor, "CONFIG_READ", store, args.gateway)
        if args.version is not None:
            v = store.get_version(args.gateway, args.version)
            if v is None:
                raise NotFound(f"gateway {args.gateway} has no config version {args.version}; "
                               f"see: fleet config status {args.gateway}")
            doc = {"gateway": args.gateway, "version": v.version, "hash": v.hash, "config": v.config}
        else:
            from ..config import content_hash

            conf = svc.render(args.gateway)
            layers = [{"scope": l.scope.value, "id": l.scope_id} for l in store.layers_for(args.gateway)]
            latest = store.latest_version(args.gateway)
            doc = {"gateway": args.gateway, "rendered": True, "hash": content_hash(conf),
                   "latest_version": latest.version if latest else None, "layers": layers, "config": conf}
    if cfg.json:
        emit(cfg, doc)
    else:
        for k, v in doc.items():
            if k != "config":
                print(f"{k}: {v}")
        print(json.dumps(doc["config"], indent=2, sort_keys=True))
    return 0


def cmd_set(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..config import Scope, parse_value
    from ..errors import ValidationError

    scope = next(sc for sc in SCOPES if getattr(args, sc))
    sid = getattr(args, scope)
    if args.unset:
        value = None
    elif args.value is None:
        raise ValidationError(f"no value for {args.key}; give one (e.g. 30, true, \"20:30\") or use --unset")
    else:
        value = parse_value(args.value)
    with session(cfg) as s, s.store.transaction() as tx:
        store, svc = _svc(tx, cfg)
        muni = sid if scope == "municipality" else (store.municipality_of(sid) if scope == "gateway" else None)
        s.actor.require(Permission.CONFIG_WRITE, muni)
        svc.set_key(Scope(scope), sid, args.key, value, by=s.actor.name)
        s.audit(tx, "config.set", "config_template", f"{scope}:{sid}", municipality=muni,
                detail={"key": args.key, "unset": args.unset})
    print(f"{scope} {sid}: {args.key} = {'(removed)' if args.unset else json.dumps(value)}; "
          "push it with: fleet config push GATEWAY (or --all)", file=sys.stderr)
    return 0


def cmd_assign(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..errors import ValidationError

    if not args.group and not args.municipality:
        raise ValidationError("give --group and/or --municipality")
    with session(cfg) as s, s.store.transaction() as tx:
        store, _ = _svc(tx, cfg)
        s.actor.require(Permission.CONFIG_WRITE, args.municipality or store.municipality_of(args.gateway))
        store.assign(args.gateway, group_id=args.group, municipality_id=args.municipality)
        s.audit(tx, "config.assign", "gateway", args.gateway, municipality=args.municipality,
                detail={"group": args.group})
    return 0


def cmd_push(args: argparse.Namespace, cfg) -> int:
    from ..config import ConfigError
    from ..errors import ValidationError

    with session(cfg) as s:
        with s.store.transaction(write=False) as tx:
            store, _ = _svc(tx, cfg)
            gws = store.gateway_ids() if args.all else list(args.gateways)
        if not gws:
            raise ValidationError("name gateways to push to, or --all")
        client = connect_broker(args, client_id=f"fleet-config-push-{s.actor.name}")
        bar = Progress(len(gws), "push", enabled=cfg.progress)
        results, failed = [], 0
        try:
            for gw in gws:
                try:
                    with s.store.transaction() as tx:
                        store, svc = _svc(tx, cfg)
                        _require(s.actor, "CONFIG_WRITE", store, gw)
                        v = svc.push(gw, client)
                        s.audit(tx, "config.push", "gateway", gw, municipality=store.municipality_of(gw),
                                detail={"version": v.version, "hash": v.hash})
                    results.append({"gateway": gw, "version": v.version, "hash": v.hash})
                except ConfigError as exc:
                    failed += 1
                    results.append({"gateway": gw, "error": str(exc)})
                    print(f"fleet: {gw}: not pushed: {exc}", file=sys.stderr)
                bar.advance()
        finally:
            bar.close()
            client.close()
    emit(cfg, results, columns=["gateway", "version", "hash", "error"])
    return 2 if failed else 0


def cmd_status(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        store, svc = _svc(tx, cfg)
        s.actor.require(Permission.CONFIG_READ)
        gws = list(args.gateways) or store.gateway_ids()
        rows = []
        for gw in gws:
            muni = store.municipality_of(gw)
            if not s.actor.can(Permission.CONFIG_READ, muni):
                continue
            st = svc.status(gw).as_dict()
            st["municipality"] = muni
            if args.drift and st["drift"] == "in_sync":
                continue
            rows.append(st)
    if not cfg.json:
        for r in rows:
            r["reported_at"] = fmt_time(r["reported_at"])
    emit(cfg, rows, columns=["gateway", "municipality", "drift", "desired_version", "applied_version",
                             "running_version", "applied_status", "reported_at", "error"])
    return 0


def cmd_diff(args: argparse.Namespace, cfg) -> int:
    with session(cfg) as s, s.store.transaction(write=False) as tx:
        store, svc = _svc(tx, cfg)
        _require(s.actor, "CONFIG_READ", store, args.gateway)
        a, b, entries = svc.diff(args.gateway, args.from_v, args.to_v)
    if cfg.json:
        emit(cfg, {"gateway": args.gateway, "from": a, "to": b, "changes": [e.as_dict() for e in entries]})
        return 0
    print(f"--- {a}\n+++ {b}")
    for e in entries:
        print(e.render())
    if not entries:
        print("(no differences)")
    return 0


def cmd_templates(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission

    from ..config import Scope

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        s.actor.require(Permission.CONFIG_READ)
        store, _ = _svc(tx, cfg)
        # secrets are redacted by the store; only templates of the reader's municipalities are listed
        rows = [r for r in store.templates() if s.actor.municipalities is None
                or s.actor.can(Permission.CONFIG_READ, store.template_municipality(Scope(r["scope"]), r["scope_id"]))
                and store.template_municipality(Scope(r["scope"]), r["scope_id"]) is not None]
    if not cfg.json:
        for r in rows:
            r["updated_at"] = fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["scope", "scope_id", "updated_at", "updated_by", "body"])
    return 0


def cmd_check(args: argparse.Namespace, cfg) -> int:
    from ..config import validate

    with session(cfg) as s, s.store.transaction(write=False) as tx:
        store, svc = _svc(tx, cfg)
        _require(s.actor, "CONFIG_READ", store, args.gateway)
        conf = svc.render(args.gateway)
    problems = validate(conf)
    if cfg.json:
        emit(cfg, {"gateway": args.gateway, "valid": not problems, "problems": [p.as_dict() for p in problems],
                   "config": conf})
    else:
        print(json.dumps(conf, indent=2, sort_keys=True))
        for p in problems:
            print(f"fleet: invalid: {p}", file=sys.stderr)
        print("valid" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 2 if problems else 0
