"""Ingest throughput: wt.health/1 through a real Mosquitto into the fleet database.

    from bench._fleet_ingest import measure
    measure("postgresql://postgres@127.0.0.1:5432/test", workers=2, messages=50000)
    -> {"msgs_per_s": ..., "lost": 0, "duplicates": 0, "cpu": {...}, ...}

    python bench/_fleet_ingest.py --dsn postgresql://... --workers 1 --messages 50000

Set-up: a private Mosquitto (gateway/testing/broker.py); ``workers`` ingest worker processes
(fleet.monitoring.IngestWorker: shared subscription ``$share/fleet/...``, manual PUBACK
after commit, batched writes); a load generator that writes pre-encoded MQTT v5
PUBLISH (QoS 1) packets on a raw socket so it costs little CPU next to the system under
test. ``msgs_per_s`` = messages / (first publish → last row committed). ``lost`` =
published − distinct rows in gateway_health; ``duplicates`` = deliveries to workers −
distinct rows (with a shared subscription each message must reach exactly one worker).
``cpu`` = CPU seconds / wall seconds per component during the measurement (1.0 = one
full core); ``worker_cpu_us_per_msg`` is the workers' CPU per stored message (the figure
that does not depend on how busy the shared machine is).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contracts.payloads import HEALTH_SCHEMA  # noqa: E402
from contracts.topics import Topics  # noqa: E402

PREFIX = "gw-bench-"


# -- a minimal MQTT v5 QoS 1 publisher (load generator only) ---------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class RawPublisher:
    def __init__(self, host: str, port: int, client_id: str, window: int = 5000) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + _varint(0) + _str(client_id)
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        self.acked = 0
        self._sem = threading.Semaphore(window)
        self._connack = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._connack.wait(10):
            raise RuntimeError("no CONNACK from the broker")

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 2:
                mult, length, i = 1, 0, 1
                while True:
                    if i >= len(buf):
                        break
                    b = buf[i]
                    length += (b & 0x7F) * mult
                    mult <<= 7
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    break
                if i >= len(buf) and length > 0 or len(buf) < i + length:
                    break
                ptype = buf[0] >> 4
                buf = buf[i + length:]
                if ptype == 2:
                    self._connack.set()
                elif ptype == 4:
                    self.acked += 1
                    self._sem.release()

    def publish_all(self, packets: list[bytes], chunk: int = 200) -> None:
        for i in range(0, len(packets), chunk):
            part = packets[i:i + chunk]
            for _ in part:
                self._sem.acquire()
            self.sock.sendall(b"".join(part))

    def wait_acked(self, n: int, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.acked < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acked >= n

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


def health_packets(messages: int, gateways: int = 1000) -> list[bytes]:
    base = 1_800_000_000
    out = []
    for k in range(messages):
        g, sample = k % gateways, k // gateways
        gw = f"{PREFIX}{g:05d}"
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + sample)) + f".{k % 1000:03d}Z"
        doc = {"schema": HEALTH_SCHEMA, "gateway": gw, "at": at, "version": "0.1.0", "uptime_s": 3600 + sample,
               "uplink": {"state": "connected", "route": "primary", "backlog": 0},
               "journal": {"depth": 3, "alarms_pending": 0, "shed": 0}, "config_version": 7,
               "devices": [{"device": f"{g:06x}{0:06x}", "role": "button", "last_seen": at, "battery_pct": 87 - sample % 50,
                            "rssi": -61, "fw": "1.2.0", "silent": False},
                           {"device": f"{g:06x}{1:06x}", "role": "bed", "last_seen": at, "battery_pct": 55,
                            "rssi": -70, "fw": "1.2.0", "silent": False}]}
        payload = json.dumps(doc, separators=(",", ":")).encode()
        topic = _str(Topics(gw).health)
        pid = (k % 65535) + 1
        body = topic + struct.pack("!H", pid) + b"\x00" + payload
        out.append(b"\x32" + _varint(len(body)) + body)
    return out


# -- worker process ------------------------------------------------------------------
def _worker_main(host: str, port: int, dsn: str, idx: int, ready, stop, results, written, pg_pids) -> None:
    import resource

    # The paho network thread is CPU-bound; let the writer thread get the GIL back quickly
    # after each database round trip (default interval 5 ms per switch).
    sys.setswitchinterval(float(os.environ.get("WT_INGEST_SWITCH_S", "0.0005")))

    from fleet.monitoring import IngestWorker, SqlMonitorSink
    from fleet.mqtt import MqttClient
    from fleet.store import open_store

    class Clock:
        def time(self) -> float:
            return time.time()

    def make_sink():                                    # on the writer thread (one Store per thread)
        store = open_store(dsn, migrate=False)
        if store.dialect.is_postgresql:
            with store.transaction(write=False) as tx:
                pg_pids.put(int(tx.scalar("SELECT pg_backend_pid()")))
        return SqlMonitorSink(store, close_store=True)

    def on_batch(n: int) -> None:
        with written.get_lock():
            written.value += n

    client = MqttClient(host, port, client_id=f"bench-ingest-{idx}", manual_ack=True)
    w = IngestWorker(client, make_sink, clock=Clock(), flush_s=0.05, max_batch=5000, on_batch=on_batch).start()
    ready.set()
    stop.wait()
    st = w.stop(drain_s=10)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"worker": idx, "received": st.received, "written": st.written, "batches": st.batches,
                 "write_errors": st.write_errors, "write_s": round(st.write_s, 2), "decode_s": round(st.decode_s, 2),
                 "writer_cpu_s": round(st.writer_cpu_s, 2),
                 "cpu_s": ru.ru_utime + ru.ru_stime})


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _count(store) -> int:
    with store.transaction(write=False) as tx:
        return int(tx.scalar("SELECT count(*) FROM gateway_health WHERE gateway_id LIKE ?", (PREFIX + "%",)))


def measure(dsn: str, workers: int, messages: int) -> dict:
    """Publish ``messages`` wt.health/1 through a private Mosquitto into ``dsn`` with ``workers`` processes."""
    from fleet.store import open_store
    from gateway.testing.broker import MosquittoProcess

    store = open_store(dsn)                              # applies migrations once, before the workers start
    with store.transaction() as tx:
        for t in ("gateway_health", "gateway_status", "device_status"):
            tx.execute(f"DELETE FROM {t} WHERE gateway_id LIKE ?", (PREFIX + "%",))
    packets = health_packets(messages)
    broker = MosquittoProcess().start()
    ctx = mp.get_context("spawn")
    stop, results, pg_pids = ctx.Event(), ctx.Queue(), ctx.Queue()
    written = ctx.Value("q", 0)
    procs, readies = [], []
    try:
        for i in range(workers):
            ready = ctx.Event()
            p = ctx.Process(target=_worker_main, args=(broker.host, broker.port, dsn, i, ready, stop, results, written, pg_pids),
                            daemon=True)
            p.start()
            procs.append(p)
            readies.append(ready)
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("an ingest worker did not start within 60 s")
        db_pids = [pg_pids.get(timeout=10) for _ in procs] if store.dialect.is_postgresql else []
        db_cpu0 = sum(_proc_cpu_s(p) for p in db_pids)
        broker_cpu0 = _proc_cpu_s(broker.proc.pid)
        worker_cpu0 = [_proc_cpu_s(p.pid) for p in procs]
        pub_cpu0 = time.process_time()
        pub = RawPublisher(broker.host, broker.port, "bench-load")
        t0 = time.perf_counter()
        sender = threading.Thread(target=pub.publish_all, args=(packets,), daemon=True)
        sender.start()
        last, last_change, stored = -1, time.monotonic(), 0
        while True:
            stored = written.value                       # rows committed by the workers (no DB polling load)
            if stored >= messages:
                break
            if stored != last:
                last, last_change = stored, time.monotonic()
            elif time.monotonic() - last_change > 15:
                break                                    # stalled: whatever is missing is lost
            time.sleep(0.01)
        t1 = time.perf_counter()
        db_cpu = sum(_proc_cpu_s(p) for p in db_pids) - db_cpu0
        worker_cpu = [_proc_cpu_s(p.pid) - c0 for p, c0 in zip(procs, worker_cpu0)]
        sender.join(30)
        pub.wait_acked(messages, 10)
        pub_cpu = time.process_time() - pub_cpu0
        broker_cpu = _proc_cpu_s(broker.proc.pid) - broker_cpu0
        time.sleep(0.3)                                   # late duplicates, if any, land now
        stop.set()
        stats = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        pub.close()
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
        broker.stop()
    distinct = _count(store)
    store.close()
    wall = t1 - t0
    received = sum(s["received"] for s in stats)
    return {
        "msgs_per_s": round(distinct / wall, 1) if wall > 0 else 0.0,
        "lost": messages - distinct,
        "duplicates": received - distinct,
        "cpu": {"workers": [round(c / wall, 2) for c in worker_cpu],
                "broker": round(broker_cpu / wall, 2), "load_generator": round(pub_cpu / wall, 2),
                "postgres_backends": round(db_cpu / wall, 2) if db_pids else None,
                "cores": os.cpu_count()},
        "workers": workers, "messages": messages, "duration_s": round(wall, 3),
        "per_worker_received": [s["received"] for s in stats],
        "batches": sum(s["batches"] for s in stats),
        "write_s": [s["write_s"] for s in stats], "decode_s": [s["decode_s"] for s in stats],
        "writer_thread_cpu_s": [s["writer_cpu_s"] for s in stats],
        "worker_cpu_us_per_msg": round(1e6 * sum(worker_cpu) / max(distinct, 1), 1),
        "write_errors": sum(s["write_errors"] for s in stats),
        "backend": dsn.split(":", 1)[0],
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="fleet ingest throughput")
    ap.add_argument("--dsn", default=os.environ.get("WT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--messages", type=int, default=50000)
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.dsn, a.workers, a.messages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
