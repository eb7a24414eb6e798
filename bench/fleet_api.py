"""Fleet service benchmark: `fleet serve` on PostgreSQL at fleet scale, queried over HTTP by 50
concurrent clients.

    python bench/fleet_api.py                                  # 1,000,000 items, 100,000 gateways
    python bench/fleet_api.py --items 5000 --gateways 500 --duration 2     # a smoke run

Loads a fresh PostgreSQL schema the way bench/fleet_scale.py does (one delivery note of
``--items`` lines through the real import path, COPY into the items and their ledger;
``--gateways`` gateway_status rows, 2 % of them silent), starts ``fleet serve`` with 1 and then
2 worker processes, logs in once as a support user of all municipalities (the central support
desk), and runs ``--clients`` concurrent clients, each on its own keep-alive connection
(reconnecting every ``--reconnect-every`` requests so connections spread over the workers):

* **saturated** (closed loop, no think time): ``GET /api/v1/items/{serial or device id}``
  (``fleet device show``) for ``--duration`` s -> requests per second (``rps_*``) and latency;
  then ``GET /api/v1/monitoring/offline-gateways?limit=200`` (``fleet offline``) likewise;
* **steady** (open loop): the same clients send a mix (90 % device show, 10 % offline list) at
  Poisson times at ``--load`` (default 50 %) of the saturated device-show rate; latency counts
  from the scheduled send time, so a request that had to wait for its client counts the wait
  (no coordinated omission). ``show_p99_ms`` and ``offline_list_p99_ms`` are these, with 2
  workers; the saturated p99s are printed and in the JSON as well.

CPU of the server (every process of ``fleet serve``), of the database backends serving it (its
connections, found through /proc and pg_stat_activity), of this load generator and of the whole
machine is read from /proc for each phase and printed as % of one core. The load generator is a
minimal asyncio HTTP/1.1 client (no HTTP library) so that it costs little next to the server.

Targets: device show p99 <= 20 ms, offline list p99 <= 200 ms, 2 workers >= 1.6 x 1 worker.
The last line is JSON: {"show_p99_ms", "offline_list_p99_ms", "rps_1_worker", "rps_2_workers",
"errors", ...}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet_scale import delivery_note, fresh_db  # noqa: E402

PASSWORD = "bench-password-1"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))], 2)


# -- data ------------------------------------------------------------------------------------
def load(url: str, items: int, gateways: int) -> dict:
    """The fleet_scale data set, plus a support user of all municipalities; returns the keys."""
    from fleet import inventory as inv
    from fleet.access import AccessService, Actor, Role
    from fleet.access._sql import SqlAccessRepo
    from fleet.clock import FixedClock
    from fleet.store import open_store

    admin = Actor("bench", Role.ADMIN)
    rng = random.Random(1)
    with open_store(url) as store:                       # migrates (the bench's role owns the schema)
        now = time.time()
        with store.transaction() as tx:
            inv.add_municipality(tx, admin, "0301", "Oslo", at=now)
            inv.add_location(tx, admin, "WH-OSLO", "warehouse", "Oslo central store", municipality="0301", at=now)
            for code, role, radio in (("WT-GW-1", "gateway", "wifi+lte"), ("WT-BTN-2", "button", "ble"),
                                      ("WT-FALL-1", "fall", "ble"), ("WT-BED-1", "bed", "serial")):
                inv.add_model(tx, admin, code, code, role, radio, "wt", at=now)
            AccessService(SqlAccessRepo(tx), FixedClock(now)).create_user(admin, "support.bench", Role.SUPPORT,
                                                                          municipalities=None, password=PASSWORD)
        log(f"loading {items} items ({gateways} gateways) through the delivery-note import (COPY) ...")
        t0 = time.perf_counter()
        n = inv.import_delivery_note(store, admin, delivery_note(items, gateways), "WH-OSLO", at=now, ref="DN-API")
        assert n == items
        log(f"  {n} items + ledger rows in {time.perf_counter() - t0:.1f} s")
        silent = set(rng.sample(range(gateways), max(1, gateways // 50))) if gateways else set()
        now = time.time()
        with store.transaction() as tx:
            tx.bulk_insert("gateway_status", ["gateway_id", "last_seen", "online", "version", "config_version"],
                           ((f"gw-{0xA0000000 + i:012x}",
                             now - (rng.uniform(3600, 86400) if i in silent else rng.uniform(0, 60)),
                             i not in silent, "0.1.0", 1) for i in range(gateways)))
            tx.execute("ANALYZE")
    sensors = items - gateways
    keys = [f"SN-S-{rng.randrange(sensors):08d}" for _ in range(2000)] if sensors else []
    keys += [f"gw-{0xA0000000 + rng.randrange(gateways):012x}" for _ in range(500)] if gateways else []
    rng.shuffle(keys)
    return {"keys": keys, "silent": len(silent)}


# -- CPU from /proc ----------------------------------------------------------------------------
def ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])             # utime + stime


def group_pids(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:                   # field 5: pgrp
                out.append(int(d.name))
    return out


def machine_ticks() -> tuple[int, int]:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in cpu]
    return sum(vals) - vals[3] - vals[4], sum(vals)      # busy (minus idle, iowait), total


def backend_pids(server_pids: list[int], dsn: str) -> list[int]:
    """The PostgreSQL backends serving the server: its sockets' local ports = client_port."""
    import psycopg

    inodes = set()
    for pid in server_pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[9] in inodes and int(f[2].rsplit(":", 1)[1], 16) == 5432:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL").fetchall()
    return [pid for pid, port in rows if port in ports]


@dataclass
class Cpu:
    server: list[int]
    db: list[int]
    t0: float = 0.0
    start: dict = field(default_factory=dict)

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.start = self._snap()

    def _snap(self) -> dict:
        return {"server": sum(ticks(p) for p in self.server), "db": sum(ticks(p) for p in self.db),
                "load": ticks(os.getpid()), "machine": machine_ticks()}

    def end(self) -> dict:
        now, dt = self._snap(), time.monotonic() - self.t0
        core = lambda d: round(100 * d / TICK / dt, 1)  # noqa: E731 - % of one core
        busy = now["machine"][0] - self.start["machine"][0]
        total = now["machine"][1] - self.start["machine"][1]
        return {"server_pct": core(now["server"] - self.start["server"]), "db_pct": core(now["db"] - self.start["db"]),
                "loadgen_pct": core(now["load"] - self.start["load"]),
                "machine_busy_pct_of_all_cores": round(100 * busy / max(total, 1), 1)}


# -- the load generator: a minimal HTTP/1.1 keep-alive client -----------------------------------
class Conn:
    def __init__(self, host: str, port: int, auth: bytes) -> None:
        self.host, self.port, self.auth = host, port, auth
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None
        self.used = 0

    async def get(self, path: str, reconnect_every: int) -> tuple[int, bytes]:
        if self.w is None or self.used >= reconnect_every:
            await self.close()
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
            self.used = 0
        self.used += 1
        assert self.r is not None
        self.w.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + self.auth +
                     b"\r\n\r\n")
        status = int((await self.r.readline()).split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        return status, await self.r.readexactly(length)

    async def close(self) -> None:
        if self.w is not None:
            self.w.close()
            self.w = None


@dataclass
class Tally:
    show: list[float] = field(default_factory=list)
    offline: list[float] = field(default_factory=list)
    errors: int = 0
    notes: list[str] = field(default_factory=list)


def show_path(keys: list[str], i: int) -> str:
    return f"/api/v1/items/{keys[i % len(keys)]}"


OFFLINE = "/api/v1/monitoring/offline-gateways?limit=200"


async def request(conn: Conn, path: str, kind: str, tally: Tally, started: float, reconnect_every: int,
                  expect_total: int) -> None:
    try:
        status, body = await conn.get(path, reconnect_every)
        ms = (time.perf_counter() - started) * 1000
        if status != 200:
            tally.errors += 1
            if len(tally.notes) < 5:
                tally.notes.append(f"{status} {path}: {body[:200]!r}")
            return
        if kind == "offline" and len(tally.offline) % 200 == 0:      # check the answer now and then
            doc = json.loads(body)
            if doc["total"] != expect_total or len(doc["items"]) != min(200, expect_total):
                tally.errors += 1
                tally.notes.append(f"offline total {doc['total']} != {expect_total}")
        (tally.offline if kind == "offline" else tally.show).append(ms)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        tally.errors += 1
        if len(tally.notes) < 5:
            tally.notes.append(f"{type(exc).__name__}: {exc}")
        await conn.close()


async def saturate(host: str, port: int, auth: bytes, keys: list[str], kind: str, clients: int, duration: float,
                   reconnect_every: int, expect_total: int) -> Tally:
    tally = Tally()
    stop = time.monotonic() + duration
    counter = iter(range(10**12))

    async def client(c: int) -> None:
        conn = Conn(host, port, auth)
        while time.monotonic() < stop:
            path = OFFLINE if kind == "offline" else show_path(keys, next(counter))
            await request(conn, path, kind, tally, time.perf_counter(), reconnect_every, expect_total)
        await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return tally


async def steady(host: str, port: int, auth: bytes, keys: list[str], rate: float, clients: int, duration: float,
                 reconnect_every: int, expect_total: int) -> Tally:
    """Open loop: each client sends at Poisson times (rate / clients per s); latency from the scheduled time."""
    tally = Tally()
    rng = random.Random(7)
    t_end = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def client(c: int) -> None:
        conn = Conn(host, port, auth)
        due = time.perf_counter() + rng.expovariate(rate / clients)
        while due < t_end:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            kind = "offline" if rng.random() < 0.1 else "show"
            path = OFFLINE if kind == "offline" else show_path(keys, next(counter))
            await request(conn, path, kind, tally, due, reconnect_every, expect_total)
            due += rng.expovariate(rate / clients)
        await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return tally


# -- the server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, workers: int, logdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "FLEET_DB": url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "serve", "--listen", f"127.0.0.1:{port}",
                             "--workers", str(workers), "--log-level", "warning"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(logdir / f"serve-{workers}.log", "w"),
                            start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fleet serve exited: {(logdir / f'serve-{workers}.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("fleet serve did not become ready in 60 s")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_workers(url: str, workers: int, data: dict, args, logdir: Path) -> dict:
    import httpx

    proc, port = serve(url, workers, logdir)
    try:
        tok = httpx.post(f"http://127.0.0.1:{port}/api/v1/login", json={"user": "support.bench",
                                                                          "password": PASSWORD}, timeout=30)
        tok.raise_for_status()
        auth = tok.json()["token"].encode()
        keys, silent = data["keys"], data["silent"]
        rc = args.reconnect_every
        log(f"{workers} worker(s): warm-up {args.warmup:g} s ...")
        asyncio.run(saturate("127.0.0.1", port, auth, keys, "show", args.clients, args.warmup, rc, silent))
        asyncio.run(saturate("127.0.0.1", port, auth, keys, "offline", args.clients, min(args.warmup, 2), rc, silent))
        server = group_pids(proc.pid)
        db = backend_pids(server, args.pg_dsn)
        out: dict = {"server_processes": len(server), "db_backends": len(db)}
        for kind in ("show", "offline"):
            cpu = Cpu(server, db)
            cpu.begin()
            t0 = time.perf_counter()
            tally = asyncio.run(saturate("127.0.0.1", port, auth, keys, kind, args.clients, args.duration, rc, silent))
            dt = time.perf_counter() - t0
            lat = tally.show if kind == "show" else tally.offline
            out[f"saturated_{kind}"] = {"rps": round(len(lat) / dt, 1), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                                        "requests": len(lat), "errors": tally.errors, "notes": tally.notes,
                                        **cpu.end()}
            log(f"  saturated {kind}: {json.dumps(out[f'saturated_{kind}'])}")
        rate = max(1.0, args.load * out["saturated_show"]["rps"])
        cpu = Cpu(server, db)
        cpu.begin()
        tally = asyncio.run(steady("127.0.0.1", port, auth, keys, rate, args.clients, args.duration, rc, silent))
        out["steady"] = {"offered_rps": round(rate, 1), "show_p50_ms": pct(tally.show, 50),
                         "show_p99_ms": pct(tally.show, 99), "offline_p50_ms": pct(tally.offline, 50),
                         "offline_p99_ms": pct(tally.offline, 99), "requests": len(tally.show) + len(tally.offline),
                         "errors": tally.errors, "notes": tally.notes, **cpu.end()}
        log(f"  steady at {rate:.0f} rps (mix 90 % show / 10 % offline): {json.dumps(out['steady'])}")
        return out
    finally:
        stop(proc)
        text = (logdir / f"serve-{workers}.log").read_text()
        if "Traceback" in text:
            log(f"fleet serve log ({workers} workers) has a traceback:\n{text[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--gateways", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--load", type=float, default=0.5, help="steady phase: fraction of the saturated show rate")
    ap.add_argument("--reconnect-every", type=int, default=200, help="requests per connection")
    ap.add_argument("--pg-dsn", default=os.environ.get("WT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args(argv)
    if args.gateways > args.items or args.gateways < 1:
        ap.error("--gateways must be at least 1 and at most --items")

    url, cleanup = fresh_db("postgres", args.pg_dsn)
    logdir = Path(tempfile.mkdtemp(prefix="fleet-api-bench-"))
    result: dict = {}
    try:
        data = load(url, args.items, args.gateways)
        load_before = round(os.getloadavg()[0], 2)
        runs = {w: run_workers(url, w, data, args, logdir) for w in (1, 2)}
    finally:
        cleanup()  # type: ignore[misc]  # (fleet_scale annotates it as `callable`)
    errors = sum(r[k]["errors"] for r in runs.values() for k in ("saturated_show", "saturated_offline", "steady"))
    rps1, rps2 = runs[1]["saturated_show"]["rps"], runs[2]["saturated_show"]["rps"]
    two = runs[2]
    log("")
    log(f"device show, saturated: 1 worker {rps1} rps, 2 workers {rps2} rps ({rps2 / max(rps1, 1e-9):.2f} x)")
    for w, r in runs.items():
        for k in ("saturated_show", "saturated_offline", "steady"):
            x = r[k]
            log(f"  {w} worker(s) {k:18s} CPU % of one core: server {x['server_pct']}, database {x['db_pct']}, "
                f"load generator {x['loadgen_pct']}; machine busy {x['machine_busy_pct_of_all_cores']} % of "
                f"{os.cpu_count()} cores")
    log(f"load average before the runs: {load_before}, after: {round(os.getloadavg()[0], 2)} "
        f"(the machine is shared)")
    result = {"show_p99_ms": two["steady"]["show_p99_ms"], "offline_list_p99_ms": two["steady"]["offline_p99_ms"],
              "rps_1_worker": rps1, "rps_2_workers": rps2, "errors": errors,
              "scaling_2_over_1": round(rps2 / max(rps1, 1e-9), 2),
              "steady_offered_rps_2_workers": two["steady"]["offered_rps"],
              "show_p99_ms_saturated_2_workers": two["saturated_show"]["p99_ms"],
              "offline_list_p99_ms_saturated_2_workers": two["saturated_offline"]["p99_ms"],
              "offline_list_rps_1_worker": runs[1]["saturated_offline"]["rps"],
              "offline_list_rps_2_workers": two["saturated_offline"]["rps"],
              "cpu_pct_2_workers_show": {k: two["saturated_show"][k] for k in
                                         ("server_pct", "db_pct", "loadgen_pct", "machine_busy_pct_of_all_cores")},
              "items": args.items, "gateways": args.gateways, "clients": args.clients, "cores": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(result))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
