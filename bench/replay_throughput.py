"""Backlog replay throughput: a journal backlog replayed to Mosquitto vs. a bare paho publisher.

    python bench/replay_throughput.py [--backlog 100000] [--window 256] [--batch 1024]

Baseline (same run, same broker, same payload size): a bare paho QoS 1 publisher
(loop_start thread) publishing --backlog pre-encoded messages with the same number of
messages in flight as the forwarder's replay window; time until its last PUBACK.
Gateway: SqliteJournal + JournalWriter + Forwarder + MqttLink replaying the backlog;
time from connect until every event is PUBACKed. The receiver de-duplicates on
event_id. Last line: {"events_per_s", "baseline_events_per_s", "lost", "duplicates"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ReceiverProcess, baseline_throughput, start_broker  # noqa: E402

from gateway.journal import JournalWriter, SqliteJournal  # noqa: E402
from gateway.model import Event, EventCode, Role  # noqa: E402
from gateway.ports import SystemClock  # noqa: E402
from gateway.uplink import Forwarder  # noqa: E402
from gateway.uplink.mqtt import gateway_link  # noqa: E402
from gateway.uplink.payload import encode_event  # noqa: E402

GW = "gw-bench"


def make_events(n: int) -> list[Event]:
    t = time.time()
    return [Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.MEASUREMENT, t + i * 0.001, t + i * 0.001,
                  role=Role.HEALTH, seq=i, data={"kind": "spo2", "value": 97, "unit": "%"}) for i in range(1, n + 1)]


async def replay(host: str, port: int, journal: SqliteJournal, n: int, window: int, batch: int,
                 progress: bool) -> tuple[float, dict]:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    link = gateway_link(gateway_id=GW, version="bench", clock=clock, host=host, port=port, loop=loop)
    fwd = Forwarder(gateway_id=GW, journal=writer, primary=link, clock=clock, replay_window=window,
                    replay_batch=batch, tick_s=0.05)
    link.start()
    while not link.connected:
        await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    task = loop.create_task(fwd.async_run())
    last = 0.0
    while fwd.stats["telemetry_delivered"] < n:
        await asyncio.sleep(0.01)
        if progress and time.perf_counter() - last > 2:
            last = time.perf_counter()
            print(f"  replayed {fwd.stats['telemetry_delivered']}/{n}", file=sys.stderr)
        if time.perf_counter() - t0 > 600:
            break
    dt = time.perf_counter() - t0
    fwd.flush()
    await asyncio.sleep(0.2)
    stats = dict(fwd.stats)
    task.cancel()
    await link.async_stop()
    writer.stop()
    return n / dt, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=256, help="replay window (un-PUBACKed publications)")
    ap.add_argument("--batch", type=int, default=1024, help="journal rows per read")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    n = a.backlog
    broker = start_broker()
    rx = ReceiverProcess(broker.host, broker.port, "wt/v1/gw/+/event")
    base_rx = ReceiverProcess(broker.host, broker.port, "bench/baseline")   # same broker fan-out work
    try:
        events = make_events(n)
        sample = encode_event(events[0], gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
        print(f"payload {len(sample)} bytes, backlog {n}, window {a.window}, batch {a.batch}")
        base_payloads = [encode_event(e, gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
                         .replace(b'"a4c1380a1b2c-', b'"baseline0000-') for e in events]
        base = baseline_throughput(broker.host, broker.port, base_payloads, max_inflight=a.window)
        print(f"baseline bare paho QoS 1: {base:,.0f} msg/s")
        with tempfile.TemporaryDirectory() as d:
            journal = SqliteJournal(Path(d) / "journal.db", max_telemetry_rows=max(n, 100_000))
            t0 = time.perf_counter()
            for k in range(0, n, 5000):
                journal.apply(events[k:k + 5000])
            print(f"journal filled with {n} events in {time.perf_counter() - t0:.1f}s")
            rate, stats = asyncio.run(replay(broker.host, broker.port, journal, n, a.window, a.batch, not a.quiet))
            undelivered = journal.depth().undelivered
            journal.close()
        r = rx.report(expect=n, timeout_s=60)
        got = r["order"]
        lost = n - len(set(got))
        duplicates = r["duplicates_after_dedup"]
        in_order = got == [e.event_id for e in events]
        print(f"gateway replay: {rate:,.0f} events/s ({rate / base:.2f} x baseline); "
              f"receiver unique {len(set(got))} in journal order: {in_order}, raw {r['raw']} "
              f"(raw duplicates before de-duplication {r['raw'] - len(set(got))}), "
              f"journal undelivered after flush {undelivered}; forwarder stats {stats}")
        print(json.dumps({"events_per_s": round(rate, 1), "baseline_events_per_s": round(base, 1),
                          "lost": lost, "duplicates": duplicates}))
        return 0 if lost == 0 and duplicates == 0 else 1
    finally:
        rx.stop()
        base_rx.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
