"""SQL adapter for monitoring: the batch writer and the read queries (fleet.store Tx).

Portable SQL (SQLite and PostgreSQL); one transaction per batch. Redelivered messages
are harmless: samples are keyed (gateway_id, at), alarms by event_id, and status rows
only move forward in time (``WHERE excluded.last_seen >= ...``).

Before anything is written the batch is screened against the store (``_screen``): who
owns each device (the registry, else the first reporter) and whose alarm each event_id
is. What fails is quarantined in the same transaction. The alarm upsert itself also
refuses to touch another gateway's row (``WHERE alarm_log.gateway_id = excluded...``), so
two workers racing on the same event_id cannot get around the screen either.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Iterable

from fleet.monitoring._ingest import Batch
from fleet.monitoring._screen import apply_event_owners, apply_ownership, device_key, merge

_GW_UPSERT = (
    "INSERT INTO gateway_status (gateway_id, last_seen, online, version, config_version) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (gateway_id) DO UPDATE SET last_seen = excluded.last_seen, online = excluded.online, "
    "version = COALESCE(excluded.version, gateway_status.version), "
    "config_version = COALESCE(excluded.config_version, gateway_status.config_version) "
    "WHERE gateway_status.last_seen IS NULL OR excluded.last_seen >= gateway_status.last_seen")
_HEALTH_INSERT = (
    "INSERT INTO gateway_health (gateway_id, at, received_at, version, uptime_s, uplink_state, backlog, "
    "journal_depth, alarms_pending, config_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (gateway_id, at) DO NOTHING")
_DEVICE_UPSERT = (
    "INSERT INTO device_status (device_id, gateway_id, role, last_seen, battery_pct, rssi, fw, silent, reported_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET gateway_id = excluded.gateway_id, "
    "role = COALESCE(excluded.role, device_status.role), last_seen = COALESCE(excluded.last_seen, device_status.last_seen), "
    "battery_pct = COALESCE(excluded.battery_pct, device_status.battery_pct), rssi = excluded.rssi, "
    "fw = COALESCE(excluded.fw, device_status.fw), silent = excluded.silent, reported_at = excluded.reported_at "
    "WHERE excluded.reported_at >= device_status.reported_at")
_STATE_LOG = ("INSERT INTO gateway_state_log (gateway_id, at, online) VALUES (?, ?, ?) "
              "ON CONFLICT (gateway_id, at, online) DO NOTHING")
_ALARM_UPSERT = (
    "INSERT INTO alarm_log (event_id, gateway_id, device_id, role, class, type, test, occurred_at, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET gateway_id = excluded.gateway_id, "
    "device_id = excluded.device_id, role = excluded.role, class = excluded.class, type = excluded.type, "
    "test = excluded.test, occurred_at = excluded.occurred_at, "
    "received_at = COALESCE(alarm_log.received_at, excluded.received_at) "
    "WHERE alarm_log.gateway_id IS NULL OR alarm_log.gateway_id = excluded.gateway_id")
_QUARANTINE_UPSERT = (
    "INSERT INTO ingest_quarantine (source, reason, topic, first_at, last_at, count, size, head_hex, detail, worker) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, reason, topic) DO UPDATE SET "
    "first_at = CASE WHEN excluded.first_at < ingest_quarantine.first_at THEN excluded.first_at "
    "ELSE ingest_quarantine.first_at END, "
    "last_at = CASE WHEN excluded.last_at > ingest_quarantine.last_at THEN excluded.last_at "
    "ELSE ingest_quarantine.last_at END, "
    "count = ingest_quarantine.count + excluded.count, size = excluded.size, head_hex = excluded.head_hex, "
    "detail = excluded.detail, worker = excluded.worker")
_WORKER_UPSERT = (
    "INSERT INTO ingest_worker (worker, host, started_at, seen_at, received, written, quarantined, batches, "
    "write_errors, stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET "
    "host = excluded.host, started_at = excluded.started_at, seen_at = excluded.seen_at, "
    "received = excluded.received, written = excluded.written, quarantined = excluded.quarantined, "
    "batches = excluded.batches, write_errors = excluded.write_errors, stopped_at = excluded.stopped_at")
_OWNER_TTL_S = 60.0            # a cached device owner is re-read after this (a device moved installation)
_IN_CHUNK = 500


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i:i + _IN_CHUNK]


def registry_owners(tx: Any, keys: list[str]) -> dict[str, str]:
    """device key -> gateway of the commissioning/active installation holding the item."""
    out: dict[str, str] = {}
    for part in _chunks(keys):
        marks = ", ".join("?" * len(part))
        for r in tx.query(
                "SELECT i.hw_id, n.gateway_id FROM item i JOIN installation n ON n.id = i.installation_id "
                f"WHERE i.hw_id IN ({marks}) AND n.status IN ('commissioning', 'active') "
                "AND n.gateway_id IS NOT NULL", part):
            out[device_key(r["hw_id"])] = r["gateway_id"]
    return out


def reported_owners(tx: Any, device_ids: list[str]) -> dict[str, str]:
    """device key -> the gateway whose report device_status holds (the first reporter)."""
    out: dict[str, str] = {}
    for part in _chunks(device_ids):
        marks = ", ".join("?" * len(part))
        for r in tx.query(f"SELECT device_id, gateway_id FROM device_status WHERE device_id IN ({marks})", part):
            out[device_key(r["device_id"])] = r["gateway_id"]
    return out


def event_owners(tx: Any, event_ids: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for part in _chunks(event_ids):
        marks = ", ".join("?" * len(part))
        for r in tx.query(f"SELECT event_id, gateway_id FROM alarm_log WHERE event_id IN ({marks})", part):
            out[r["event_id"]] = r["gateway_id"]
    return out
_ACK_COL = {"received": "ack_received_at", "accepted": "ack_accepted_at", "resolved": "ack_resolved_at"}
_APPLIED_UPSERT = (
    "INSERT INTO config_applied (gateway_id, version, status, error, hash, reported_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (gateway_id) DO UPDATE SET version = excluded.version, status = excluded.status, "
    "error = excluded.error, hash = excluded.hash, reported_at = excluded.reported_at "
    "WHERE excluded.reported_at >= config_applied.reported_at")
_UPDATE_INSERT = ("INSERT INTO update_report (cmd_id, gateway_id, device_id, deployment, status, phase, error, "
                  "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cmd_id, status) DO NOTHING")


# Staging tables (per connection) so the hot path is one COPY + one INSERT ... SELECT per table
# instead of a round trip per row. ``WHERE true`` lets SQLite parse INSERT ... SELECT ... ON CONFLICT.
_STAGE = {
    "ingest_health": "gateway_id TEXT, at DOUBLE PRECISION, received_at DOUBLE PRECISION, version TEXT, "
                     "uptime_s BIGINT, uplink_state TEXT, backlog BIGINT, journal_depth BIGINT, "
                     "alarms_pending BIGINT, config_version BIGINT",
    "ingest_gw": "gateway_id TEXT, last_seen DOUBLE PRECISION, online BOOLEAN, version TEXT, config_version BIGINT",
    "ingest_device": "device_id TEXT, gateway_id TEXT, role TEXT, last_seen DOUBLE PRECISION, battery_pct INTEGER, "
                     "rssi INTEGER, fw TEXT, silent BOOLEAN, reported_at DOUBLE PRECISION",
}
_HEALTH_COLS = ["gateway_id", "at", "received_at", "version", "uptime_s", "uplink_state", "backlog",
                "journal_depth", "alarms_pending", "config_version"]
_GW_COLS = ["gateway_id", "last_seen", "online", "version", "config_version"]
_DEVICE_COLS = ["device_id", "gateway_id", "role", "last_seen", "battery_pct", "rssi", "fw", "silent", "reported_at"]


def upsert_gateway_status(tx: Any, gateway_id: str, *, last_seen: float | None, online: bool, version: str | None,
                          config_version: int | None) -> None:
    """One gateway's status as the ingest writes it (never moves ``last_seen`` backwards)."""
    tx.execute(_GW_UPSERT, (gateway_id, last_seen, online, version, config_version))


def _from_stage(upsert: str, stage: str, cols: list[str]) -> str:
    head, _, tail = upsert.partition(" VALUES (")
    tail = tail.split(") ", 1)[1] if ") " in tail else ""
    return f"{head} SELECT {', '.join(cols)} FROM {stage} WHERE true ORDER BY {cols[0]} {tail}"


class SqlMonitorSink:
    """Writes batches through a fleet.store Store (one Store per worker thread).

    Two transactions per batch: (1) the durable rows — health samples, state log, alarms,
    acks, update reports, config reports — which other workers never contend for; (2) the
    soft status rows (gateway_status, device_status) in key order, briefly locked and, on
    PostgreSQL, committed asynchronously. Messages are acknowledged after both. Status rows are
    coalesced: a health message that changes nothing but ``last_seen`` by less than
    ``status_resolution_s`` since this worker last wrote that row is not written again
    (state messages and any change of online/version/config/battery/silent always are).
    """

    def __init__(self, store: Any, *, staged_min: int = 50, status_resolution_s: float = 5.0,
                 close_store: bool = False, worker: str | None = None) -> None:
        self.store = store
        self.close_store = close_store
        self.staged_min = staged_min     # below this many rows, plain executemany is cheaper
        self.status_resolution_s = status_resolution_s
        self.worker = worker
        self._staged = False
        self._gw_cache: dict[str, tuple] = {}
        self._dev_cache: dict[str, tuple] = {}
        self._owner_cache: dict[str, tuple[str, float]] = {}   # device key -> (gateway, monotonic time)

    def ping(self) -> None:
        """Raises when the store cannot be reached (the worker tells a dead database from a poison message)."""
        with self.store.transaction(write=False) as tx:
            tx.scalar("SELECT 1")

    def heartbeat(self, *, worker: str, host: str | None, started_at: float, at: float, stats: Any,
                  stopped: bool = False) -> None:
        """This worker's counters, for `fleet monitor status` on any machine."""
        with self.store.transaction() as tx:
            tx.execute(_WORKER_UPSERT, (worker, host, started_at, at, stats.received, stats.written,
                                        stats.rejected, stats.batches, stats.write_errors, at if stopped else None))

    def _screen(self, tx: Any, batch: Batch) -> Batch:
        """A screened copy of ``batch`` (the worker may retry the original): device ownership
        and event ids checked against the store, failures moved to the quarantine."""
        b = copy.copy(batch)
        b.quarantine, b.rejected = list(batch.quarantine), batch.rejected.copy()
        ids: dict[str, set[str]] = {}
        senders: dict[str, set[str]] = {}
        for h in b.health:
            for d in h.devices:
                k = device_key(d.device_id)
                ids.setdefault(k, set()).add(d.device_id)
                senders.setdefault(k, set()).add(h.gateway_id)
        for a in b.alarms:
            if a.device_id:
                k = device_key(a.device_id)
                ids.setdefault(k, set()).add(a.device_id)
                senders.setdefault(k, set()).add(a.gateway_id)
        if ids:
            now = time.monotonic()
            owners: dict[str, str | None] = {}
            lookup: list[str] = []
            for k, who in senders.items():
                hit = self._owner_cache.get(k)
                if hit is not None and now - hit[1] < _OWNER_TTL_S and who == {hit[0]}:
                    owners[k] = hit[0]           # confirmed recently, and nobody else claims it
                else:
                    lookup.append(k)
            if lookup:
                reg = registry_owners(tx, sorted(lookup))
                rep = reported_owners(tx, sorted({i for k in lookup for i in ids[k]}))
                for k in lookup:
                    owners[k] = reg.get(k) or rep.get(k)
            claims = apply_ownership(b, owners)
            if len(self._owner_cache) > 200_000:
                self._owner_cache.clear()
            for k, o in owners.items():
                if o is not None:
                    self._owner_cache[k] = (o, now)
            for k, o in claims.items():
                self._owner_cache[k] = (o, now)
        if b.alarms or b.acks:
            apply_event_owners(b, event_owners(tx, sorted({a.event_id for a in b.alarms} |
                                                          {k.event_id for k in b.acks})))
        return b

    def close(self) -> None:
        if self.close_store:
            self.store.close()

    def _fresh(self, cache: dict[str, tuple], key: str, seen: float, same: tuple, forced: bool) -> bool:
        prev = cache.get(key)
        if not forced and prev is not None and prev[1] == same and seen - prev[0] < self.status_resolution_s:
            return False
        if len(cache) > 200_000:
            cache.clear()
        cache[key] = (seen, same)
        return True

    def _stage(self, tx: Any, table: str, cols: list[str], rows: list[tuple], upsert: str,
               script: list[str]) -> None:
        """Small sets: executemany. Large: COPY into the staging table now, and queue the
        ``INSERT … SELECT`` plus the staging cleanup for one parameterless round trip."""
        if len(rows) < self.staged_min:
            tx.executemany(upsert, rows)
            return
        if not self._staged:
            for name, ddl in _STAGE.items():
                tx.script(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({ddl})")
                tx.execute(f"DELETE FROM {name}")
            self._staged = True
        tx.bulk_insert(table, cols, rows)
        script.append(_from_stage(upsert, table, cols) + ";\n")
        script.append(f"DELETE FROM {table};\n")

    def write(self, batch: Batch) -> Batch:
        """Store the batch (screened first); returns the screened batch that was stored."""
        try:
            with self.store.transaction() as tx:
                b = self._screen(tx, batch)
                gw_rows, dev_rows = self._status_rows(b)
                self._durable(tx, b)
            if gw_rows or dev_rows:
                # Soft state, rebuilt by the next health message: a short transaction of its own
                # so row locks shared with other workers are held briefly; on PostgreSQL it
                # commits asynchronously (a crash can lose < 1 s of status, never a sample).
                with self.store.transaction() as tx:
                    script = ["SET LOCAL synchronous_commit = off;\n"] if tx.dialect.is_postgresql else []
                    if gw_rows:
                        self._stage(tx, "ingest_gw", _GW_COLS, gw_rows, _GW_UPSERT, script)
                    if dev_rows:
                        self._stage(tx, "ingest_device", _DEVICE_COLS, dev_rows, _DEVICE_UPSERT, script)
                    if script:
                        tx.script("".join(script))
        except Exception:
            self._gw_cache.clear()         # unknown what was committed: write every status row next time
            self._dev_cache.clear()
            self._owner_cache.clear()
            raise
        return b

    def _status_rows(self, batch: Batch) -> tuple[list[tuple], list[tuple]]:
        gw: dict[str, list[Any]] = {}     # gateway -> [last_seen, online, version, config_version, forced]
        for h in batch.health:
            cur = gw.get(h.gateway_id)
            if cur is None or h.received_at >= cur[0]:
                gw[h.gateway_id] = [h.received_at, True, h.version, h.config_version, cur[4] if cur else False]
        for s in batch.states:
            cur = gw.get(s.gateway_id)
            if cur is None or s.received_at >= cur[0]:
                gw[s.gateway_id] = [s.received_at, s.online, s.version or (cur[2] if cur else None),
                                    cur[3] if cur else None, True]
            elif cur is not None:
                cur[4] = True
        devices: dict[str, tuple] = {}
        for h in batch.health:
            for d in h.devices:
                prev = devices.get(d.device_id)
                if prev is None or h.received_at >= prev[-1]:
                    devices[d.device_id] = (d.device_id, h.gateway_id, d.role, d.last_seen, d.battery_pct, d.rssi,
                                            d.fw, d.silent, h.received_at)
        gw_rows = [(g, *v[:4]) for g, v in sorted(gw.items())
                   if self._fresh(self._gw_cache, g, v[0], (v[1], v[2], v[3]), v[4])]
        dev_rows = [devices[k] for k in sorted(devices)
                    if self._fresh(self._dev_cache, k, devices[k][-1],
                                   (devices[k][1], devices[k][2], devices[k][4], devices[k][6], devices[k][7]), False)]
        return gw_rows, dev_rows

    def _durable(self, tx: Any, batch: Batch) -> None:
        script: list[str] = []
        if batch.health:
            self._stage(tx, "ingest_health", _HEALTH_COLS, [
                (h.gateway_id, h.at, h.received_at, h.version, h.uptime_s, h.uplink_state, h.backlog,
                 h.journal_depth, h.alarms_pending, h.config_version)
                for h in sorted(batch.health, key=lambda h: (h.gateway_id, h.at))], _HEALTH_INSERT, script)
        if batch.states:
            tx.executemany(_STATE_LOG, [(s.gateway_id, s.received_at, s.online) for s in batch.states])
        if batch.alarms:
            tx.executemany(_ALARM_UPSERT, [
                (a.event_id, a.gateway_id, a.device_id, a.role, a.klass, a.type, a.test, a.occurred_at,
                 a.received_at) for a in sorted(batch.alarms, key=lambda a: a.event_id)])
        for status, col in _ACK_COL.items():
            # the ack topic names the alarm's gateway: an ack never touches another gateway's row
            rows = [(a.event_id, src.source, a.at) for a, src in zip(batch.acks, batch.ack_src) if a.status == status]
            if rows:
                tx.executemany(
                    f"INSERT INTO alarm_log (event_id, gateway_id, {col}) VALUES (?, ?, ?) ON CONFLICT (event_id) "
                    f"DO UPDATE SET {col} = CASE WHEN alarm_log.{col} IS NULL OR excluded.{col} < alarm_log.{col} "
                    f"THEN excluded.{col} ELSE alarm_log.{col} END "
                    "WHERE alarm_log.gateway_id IS NULL OR alarm_log.gateway_id = excluded.gateway_id", sorted(rows))
        if batch.updates:
            tx.executemany(_UPDATE_INSERT, [
                (u.cmd_id, u.gateway_id, u.device_id, u.deployment, u.status, u.phase, u.error,
                 u.received_at) for u in batch.updates])
        if batch.applied:
            tx.executemany(_APPLIED_UPSERT, sorted(
                (r.gateway_id, r.version, r.status.value, r.error, r.hash, r.reported_at)
                for r in batch.applied))
        if batch.quarantine:
            tx.executemany(_QUARANTINE_UPSERT, [
                (q.source, q.reason, q.topic, first, q.at, n, q.size, q.head_hex, q.detail, self.worker)
                for q, n, first in sorted(merge(batch.quarantine), key=lambda e: (e[0].source, e[0].reason,
                                                                                  e[0].topic))])
        if script:
            tx.script("".join(script))
