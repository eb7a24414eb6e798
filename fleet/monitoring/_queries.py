"""SQL for `fleet monitor`, `fleet offline` and `fleet stats` (portable SQL over fleet.store):
the support queries, scoped to the reader's municipalities, and the benefit baseline.

A gateway's municipality comes from ``config_gateway`` (fleet config assignment) or its
active installation.
"""
from __future__ import annotations

from typing import Any, Collection

from fleet.store import in_scope

GW_MUNI = ("SELECT gateway_id, municipality_id FROM config_gateway WHERE municipality_id IS NOT NULL "
           "UNION SELECT gateway_id, municipality_id FROM installation WHERE gateway_id IS NOT NULL "
           "AND status IN ('commissioning', 'active')")


def _scope(scope: Collection[str] | None, municipality: str | None, col: str = "m.municipality_id"
           ) -> tuple[str, list]:
    """Limit to the reader's municipalities (``scope``, None = all) and optionally to one."""
    where, params = in_scope(col, scope)
    if municipality:
        where += f" AND {col} = ?"
        params = [*params, municipality]
    return where, list(params)


def silent_devices(tx: Any, *, now: float, minutes: float, scope: Collection[str] | None,
                   municipality: str | None = None, limit: int = 500) -> list[dict]:
    """Devices the gateway flags silent, or not heard for ``minutes``, or whose gateway went quiet."""
    where, params = _scope(scope, municipality)
    cutoff = now - minutes * 60
    return tx.query(
        f"WITH m AS ({GW_MUNI}) SELECT d.device_id, d.gateway_id, d.role, d.last_seen, d.battery_pct, d.fw, d.silent, "
        "m.municipality_id AS municipality FROM device_status d LEFT JOIN m ON m.gateway_id = d.gateway_id "
        f"WHERE (d.silent = ? OR d.last_seen IS NULL OR d.last_seen < ?) AND ({where}) "
        "ORDER BY d.last_seen LIMIT ?", (True, cutoff, *params, limit))


def low_battery(tx: Any, *, threshold_pct: int, scope: Collection[str] | None, municipality: str | None = None,
                limit: int = 500) -> list[dict]:
    where, params = _scope(scope, municipality)
    return tx.query(
        f"WITH m AS ({GW_MUNI}) SELECT d.device_id, d.gateway_id, d.role, d.battery_pct, d.last_seen, "
        "m.municipality_id AS municipality FROM device_status d LEFT JOIN m ON m.gateway_id = d.gateway_id "
        f"WHERE d.battery_pct IS NOT NULL AND d.battery_pct < ? AND ({where}) ORDER BY d.battery_pct, d.device_id LIMIT ?",
        (threshold_pct, *params, limit))


def failed_updates(tx: Any, *, since: float, scope: Collection[str] | None, municipality: str | None = None,
                   limit: int = 500) -> list[dict]:
    """Units a rollout marked failed plus error reports gateways sent (cmd/result) since ``since``."""
    where, params = _scope(scope, municipality)
    rows = tx.query(
        f"WITH m AS ({GW_MUNI}) SELECT 'rollout' AS source, u.rollout_id AS deployment, u.gateway_id, u.device_id, "
        "u.error, u.updated_at AS at, m.municipality_id AS municipality FROM rollout_unit u "
        f"LEFT JOIN m ON m.gateway_id = u.gateway_id WHERE u.state = ? AND u.updated_at >= ? AND ({where}) "
        "UNION ALL "
        "SELECT 'gateway' AS source, r.deployment, r.gateway_id, r.device_id, r.error, r.received_at AS at, "
        f"m.municipality_id AS municipality FROM update_report r LEFT JOIN m ON m.gateway_id = r.gateway_id "
        f"WHERE r.status = ? AND r.received_at >= ? AND ({where}) ORDER BY at DESC LIMIT ?",
        ("failed", since, *params, "error", since, *params, limit))
    return rows


def stats_inputs(tx: Any, *, start: float, end: float, scope: Collection[str] | None,
                 municipality: str | None = None) -> dict[str, Any]:
    """Everything fleet.monitoring._stats.compute needs for [start, end), limited to the actor's scope."""
    where, params = _scope(scope, municipality)
    gm = {r["gateway_id"]: r["municipality_id"] for r in tx.query(
        f"WITH m AS ({GW_MUNI}) SELECT gateway_id, municipality_id FROM m WHERE {where}", params)}
    munis = sorted({r["id"] for r in tx.query(
        f"SELECT id FROM municipality m WHERE {where.replace('m.municipality_id', 'm.id')}", params)})
    alarms = tx.query("SELECT event_id, gateway_id, class, type, test, occurred_at, ack_received_at, ack_accepted_at "
                      "FROM alarm_log WHERE occurred_at >= ? AND occurred_at < ?", (start, end))
    transitions = tx.query("SELECT gateway_id, at, online FROM gateway_state_log WHERE at >= ? AND at < ?",
                           (start, end))
    initial = {r["gateway_id"]: bool(r["online"]) for r in tx.query(
        "SELECT g.gateway_id, g.online FROM gateway_state_log g JOIN (SELECT gateway_id, max(at) AS at "
        "FROM gateway_state_log WHERE at < ? GROUP BY gateway_id) x ON x.gateway_id = g.gateway_id AND x.at = g.at",
        (start,))}
    night = tx.query(
        "SELECT n.municipality_id AS municipality, COALESCE(n.commissioned_at, n.created_at) AS start, "
        "n.deinstalled_at AS \"end\" FROM installation n WHERE n.gateway_id IN "
        "(SELECT gateway_id FROM device_status WHERE role IN (?, ?, ?)) "
        "AND n.status IN ('commissioning', 'active', 'deinstalled', 'purged')",
        ("bed", "door", "motion"))
    night = [r for r in night if r["municipality"] in munis]
    baselines = {r["municipality_id"]: float(r["night_checks_per_night"])
                 for r in tx.query("SELECT municipality_id, night_checks_per_night FROM benefit_baseline")}
    if municipality:
        munis = [m for m in munis if m == municipality]
    return {"alarms": alarms, "transitions": [t for t in transitions if t["gateway_id"] in gm],
            "initial_state": {g: v for g, v in initial.items() if g in gm}, "gateway_municipality": gm,
            "night_installations": night, "baselines": baselines, "municipalities": munis}


# never-seen gateways first, then oldest last_seen (same order on SQLite and PostgreSQL)
_ORDER = "(g.last_seen IS NOT NULL), g.last_seen, g.gateway_id"


def list_offline(tx, actor, *, now: float, minutes: float, municipality: str | None = None,
                 limit: int = 200) -> tuple[int, list[dict]]:
    """Gateways with ``online = false`` or ``last_seen`` older than ``minutes``, oldest first."""
    from fleet.access import Permission

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
    scope, sp = in_scope("inst.municipality_id", actor.municipalities)
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


def set_baseline(tx: Any, municipality: str, night_checks_per_night: float, *, at: float, by: str) -> None:
    """A municipality's zero-point for the night-check benefit figure."""
    tx.execute("INSERT INTO benefit_baseline (municipality_id, night_checks_per_night, updated_at, updated_by) "
               "VALUES (?, ?, ?, ?) ON CONFLICT (municipality_id) DO UPDATE SET night_checks_per_night = "
               "excluded.night_checks_per_night, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
               (municipality, night_checks_per_night, at, by))


def quarantine_rows(tx: Any, *, scope: Collection[str] | None, since: float | None = None, reason: str | None = None,
                    source: str | None = None, limit: int = 200) -> list[dict]:
    """Quarantined messages, newest first (one row per source, reason and topic, with a count).
    A scoped reader sees the rows of gateways in its municipalities only."""
    where, params = _scope(scope, None)
    extra, xp = "", []  # type: tuple[str, list[Any]]
    if since is not None:
        extra += " AND q.last_at >= ?"
        xp.append(since)
    if reason:
        extra += " AND q.reason = ?"
        xp.append(reason)
    if source:
        extra += " AND q.source = ?"
        xp.append(source)
    return tx.query(
        f"WITH m AS ({GW_MUNI}) SELECT q.last_at, q.first_at, q.reason, q.source, q.topic, q.count, q.size, "
        "q.head_hex, q.detail, q.worker, m.municipality_id AS municipality FROM ingest_quarantine q "
        f"LEFT JOIN m ON m.gateway_id = q.source WHERE ({where}){extra} ORDER BY q.last_at DESC LIMIT ?",
        (*params, *xp, limit))


def quarantine_totals(tx: Any, *, since: float) -> list[dict]:
    """Messages quarantined per reason: all time and with a last arrival since ``since``."""
    return tx.query(
        "SELECT reason, sum(count) AS total, sum(CASE WHEN last_at >= ? THEN count ELSE 0 END) AS recent, "
        "count(DISTINCT source) AS sources, max(last_at) AS last_at FROM ingest_quarantine "
        "GROUP BY reason ORDER BY reason", (since,))


def ingest_workers(tx: Any) -> list[dict]:
    return tx.query("SELECT worker, host, started_at, seen_at, stopped_at, received, written, quarantined, batches, "
                    "write_errors FROM ingest_worker ORDER BY worker")


def firmware_versions(tx: Any, hw_ids: list[str]) -> dict[str, str]:
    """The running version of each device (its gateway's health report) or gateway (its state/health)."""
    out: dict[str, str] = {}
    if not hw_ids:
        return out
    marks = ", ".join("?" * len(hw_ids))
    for r in tx.query(f"SELECT device_id, fw FROM device_status WHERE device_id IN ({marks}) AND fw IS NOT NULL",
                      hw_ids):
        out[r["device_id"]] = r["fw"]
    for r in tx.query(f"SELECT gateway_id, version FROM gateway_status WHERE gateway_id IN ({marks}) "
                      "AND version IS NOT NULL", hw_ids):
        out[r["gateway_id"]] = r["version"]
    return out
