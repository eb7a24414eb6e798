"""Fleet scale benchmark: delivery-note import, `fleet offline`, `fleet device show`, ingest.

    python bench/fleet_scale.py --items 1000000 --gateways 100000 --db sqlite
    python bench/fleet_scale.py --items 1000000 --gateways 100000 --db postgres

Builds a fresh database (a temp SQLite file, or a fresh PostgreSQL schema that is dropped
afterwards), then measures:

* ``import_s`` — one delivery-note CSV of ``--items`` lines (``--gateways`` of them gateways)
  through the real import path: parse + validate every line, then one transaction that
  writes the items and one ledger row each (COPY on PostgreSQL, executemany on SQLite);
* ``list_offline_ms`` — median of the `fleet offline` query (count + oldest 200) over
  ``--gateways`` gateway_status rows, 2 % of them silent;
* ``device_show_ms`` — median of `fleet device show` (item, model, location, gateway
  status, 20 history rows) for random serials and device ids;
* ``ingest_msgs_per_s_{1,2}_worker(s)`` — from fleet-ops' ``bench/_fleet_ingest.measure``
  (wt.health/1 through a private Mosquitto into the same database), null if absent.

Targets: import <= 60 s, list offline <= 200 ms, device show <= 50 ms. The last line is JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fresh_db(kind: str, pg_base: str) -> tuple[str, callable]:
    if kind == "sqlite":
        d = tempfile.mkdtemp(prefix="fleet-scale-")
        path = Path(d) / "fleet.db"

        def cleanup() -> None:
            for p in Path(d).glob("*"):
                p.unlink()
            os.rmdir(d)

        return f"sqlite:///{path}", cleanup
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_base, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")

    def cleanup() -> None:
        with psycopg.connect(pg_base, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")

    sep = "&" if "?" in pg_base else "?"
    return f"{pg_base}{sep}options=-csearch_path%3D{schema}", cleanup


def delivery_note(items: int, gateways: int) -> str:
    lines = ["serial,model,hw_id"]
    for i in range(gateways):
        lines.append(f"SN-GW-{i:08d},WT-GW-1,gw-{0xA0000000 + i:012x}")
    roles = ("WT-BTN-2", "WT-FALL-1", "WT-BED-1")
    for i in range(items - gateways):
        lines.append(f"SN-S-{i:08d},{roles[i % 3]},{0xB00000000000 + i:012x}")
    return "\n".join(lines) + "\n"


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--gateways", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg-dsn", default=os.environ.get("WT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--ingest-messages", type=int, default=20_000)
    ap.add_argument("--no-ingest", action="store_true")
    args = ap.parse_args(argv)
    if args.gateways > args.items:
        ap.error("--gateways must not exceed --items")

    from fleet import inventory as inv
    from fleet.access import Actor, Role
    from fleet.commands.offline import list_offline
    from fleet.store import open_store

    admin = Actor("bench", Role.ADMIN)
    url, cleanup = fresh_db(args.db, args.pg_dsn)
    result: dict[str, object] = {"db": args.db, "items": args.items, "gateways": args.gateways}
    try:
        store = open_store(url)
        now = time.time()
        with store.transaction() as tx:
            inv.add_municipality(tx, admin, "0301", "Oslo", at=now)
            inv.add_location(tx, admin, "WH-OSLO", "warehouse", "Oslo central store", municipality="0301", at=now)
            for code, role, radio in (("WT-GW-1", "gateway", "wifi+lte"), ("WT-BTN-2", "button", "ble"),
                                      ("WT-FALL-1", "fall", "ble"), ("WT-BED-1", "bed", "serial")):
                inv.add_model(tx, admin, code, code, role, radio, "wt", at=now)
        log(f"generating a delivery note of {args.items} lines ...")
        text = delivery_note(args.items, args.gateways)
        with store.transaction(write=False) as tx:
            models = {r["code"]: r["role"] for r in tx.query("SELECT code, role FROM device_model")}
        t0 = time.perf_counter()
        inv.parse_delivery_note(text, models)
        result["parse_only_s"] = round(time.perf_counter() - t0, 2)
        log(f"parse + validate alone: {result['parse_only_s']} s (included again in import_s)")
        log("importing ...")
        t0 = time.perf_counter()
        n = inv.import_delivery_note(store, admin, text, "WH-OSLO", at=now, ref="DN-BENCH")
        result["import_s"] = round(time.perf_counter() - t0, 2)
        assert n == args.items
        del text
        log(f"import: {n} items + {n} ledger rows in {result['import_s']} s")

        rng = random.Random(1)
        offline = set(rng.sample(range(args.gateways), max(1, args.gateways // 50))) if args.gateways else set()
        with store.transaction() as tx:
            tx.bulk_insert("gateway_status", ["gateway_id", "last_seen", "online", "version", "config_version"],
                           ((f"gw-{0xA0000000 + i:012x}",
                             now - (rng.uniform(3600, 86400) if i in offline else rng.uniform(0, 120)),
                             i not in offline, "0.1.0", 1) for i in range(args.gateways)))
            if store.dialect.is_postgresql:
                tx.execute("ANALYZE")
            else:
                tx.execute("ANALYZE")

        def offline_once() -> None:
            with store.transaction(write=False) as tx:
                total, rows = list_offline(tx, admin, now=now, minutes=15, limit=200)
            assert total == len(offline), (total, len(offline))

        offline_once()
        result["list_offline_ms"] = median_ms(offline_once, 15)
        log(f"list offline ({len(offline)} of {args.gateways}): {result['list_offline_ms']} ms median")

        sensors = args.items - args.gateways
        keys = ([f"SN-S-{rng.randrange(sensors):08d}" for _ in range(100)] if sensors else []) + \
               ([f"gw-{0xA0000000 + rng.randrange(args.gateways):012x}" for _ in range(100)] if args.gateways else [])
        it = itertools.cycle(keys)

        def show_once() -> None:
            with store.transaction(write=False) as tx:
                d = inv.device_show(tx, admin, next(it))
            assert d["history"]

        show_once()
        result["device_show_ms"] = median_ms(show_once, 200)
        log(f"device show: {result['device_show_ms']} ms median")
        store.close()

        result["ingest_msgs_per_s_1_worker"] = None
        result["ingest_msgs_per_s_2_workers"] = None
        if args.no_ingest:
            log("ingest: skipped (--no-ingest)")
        else:
            try:
                from bench._fleet_ingest import measure
            except ImportError as exc:
                log(f"ingest: bench/_fleet_ingest.py not importable ({exc}); figures are null")
            else:
                for w, key in ((1, "ingest_msgs_per_s_1_worker"), (2, "ingest_msgs_per_s_2_workers")):
                    r = measure(url, workers=w, messages=args.ingest_messages)
                    result[key] = round(r["msgs_per_s"], 1)
                    log(f"ingest {w} worker(s): {json.dumps(r)}")
    finally:
        cleanup()
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["targets_met"] = {"import": result["import_s"] <= 60, "list_offline": result["list_offline_ms"] <= 200,
                             "device_show": result["device_show_ms"] <= 50}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
