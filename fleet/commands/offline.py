"""`fleet offline`: gateways not seen recently (last_seen written by fleet-ops monitoring)."""
from __future__ import annotations

import argparse

from ._common import add_json, emit, fmt_time, session


def register(sub) -> None:
    p = add_json(sub.add_parser("offline", help="gateways offline or not seen for --minutes (default 15)"))
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--municipality", "-m")
    p.add_argument("--limit", type=int, default=200, help="rows to show (the total is always counted)")
    p.set_defaults(func=cmd_offline)


# never-seen gateways first, then oldest last_seen (same order on SQLite and PostgreSQL)
_ORDER = "(g.last_seen IS NOT NULL), g.last_seen, g.gateway_id"


def list_offline(tx, actor, *, now: float, minutes: float, municipality: str | None = None,
                 limit: int = 200) -> tuple[int, list[dict]]:
    """Gateways with ``online = false`` or ``last_seen`` older than ``minutes``, oldest first."""
    from ..access import Permission

    actor.require(Permission.MONITOR_READ, municipality)
    cutoff = now - minutes * 60
    scoped = actor.municipalities is not None or municipality
    if not scoped:
        cond = "(g.online = ? OR g.last_seen < ? OR g.last_seen IS NULL)"
        total = tx.scalar(f"SELECT count(*) FROM gateway_status g WHERE {cond}", (False, cutoff))
        rows = tx.query(
            "SELECT g.gateway_id, g.last_seen, g.online, g.version, g.config_version, i.serial,"
            " inst.code AS installation, inst.municipality_id AS municipality"
            " FROM (SELECT * FROM gateway_status g WHERE " + cond + " ORDER BY " + _ORDER + " LIMIT ?) g"
            " LEFT JOIN item i ON i.hw_id = g.gateway_id"
            " LEFT JOIN installation inst ON inst.id = i.installation_id ORDER BY " + _ORDER,
            (False, cutoff, limit))
        return int(total), rows
    scope, sp = actor.scope_sql("inst.municipality_id")
    extra, ep = ("AND inst.municipality_id = ?", [municipality]) if municipality else ("", [])
    base = (" FROM gateway_status g JOIN item i ON i.hw_id = g.gateway_id"
            " JOIN installation inst ON inst.id = i.installation_id"
            f" WHERE (g.online = ? OR g.last_seen < ? OR g.last_seen IS NULL) AND {scope} {extra}")
    params = (False, cutoff, *sp, *ep)
    total = tx.scalar("SELECT count(*)" + base, params)
    rows = tx.query("SELECT g.gateway_id, g.last_seen, g.online, g.version, g.config_version, i.serial,"
                    " inst.code AS installation, inst.municipality_id AS municipality" + base +
                    " ORDER BY " + _ORDER + " LIMIT ?", (*params, limit))
    return int(total), rows


def cmd_offline(args: argparse.Namespace, cfg) -> int:
    with session(cfg) as s, s.store.transaction(write=False) as tx:
        total, rows = list_offline(tx, s.actor, now=cfg.clock(), minutes=args.minutes,
                                   municipality=args.municipality, limit=args.limit)
    now = cfg.clock()
    for r in rows:
        r["online"] = bool(r["online"])
        r["minutes_ago"] = None if r["last_seen"] is None else round((now - r["last_seen"]) / 60, 1)
    if cfg.json:
        emit(cfg, {"total": total, "gateways": rows})
        return 0
    for r in rows:
        r["last_seen"] = fmt_time(r["last_seen"])
    emit(cfg, rows, columns=["gateway_id", "serial", "installation", "municipality", "last_seen", "minutes_ago",
                             "online", "version"])
    print(f"{total} gateway(s) offline or silent for more than {args.minutes:g} min"
          + (f" (showing {len(rows)})" if total > len(rows) else ""))
    return 0
