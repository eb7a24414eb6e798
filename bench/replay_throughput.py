"""Backlog replay throughput: a journal backlog replayed to Mosquitto vs. a bare paho publisher.

    python bench/replay_throughput.py [--backlog 100000] [--window 256] [--batch 1024] [--rounds 2]

Baseline (same run, same broker, same payload size, a subscriber on its topic too): a
bare paho QoS 1 publisher (loop_start thread) publishing --backlog pre-encoded messages
with at most as many un-PUBACKed as the forwarder's replay window; time until its last
PUBACK. Baseline and gateway runs alternate --rounds times; medians are reported.
Gateway: SqliteJournal + JournalWriter + Forwarder + MqttLink replaying the backlog;
time from connect until every event is PUBACKed. The receiver de-duplicates on
event_id. Last line: {"events_per_s", "baseline_events_per_s", "lost", "duplicates"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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
                 progress: bool, link_mode: str = "loop") -> tuple[float, dict]:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    mode = {"loop": loop} if link_mode == "loop" else {"dispatch": loop.call_soon_threadsafe}
    link = gateway_link(gateway_id=GW, version="bench", clock=clock, host=host, port=port, **mode)
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
    if link_mode == "loop":
        await link.async_stop()
    else:
        await loop.run_in_executor(None, link.stop)
    writer.stop()
    return n / dt, stats


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=256, help="replay window (un-PUBACKed publications)")
    ap.add_argument("--batch", type=int, default=1024, help="journal rows per read")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternate baseline and gateway runs this many times; medians are reported "
                         "(the machine's load drifts; alternating keeps the comparison fair)")
    ap.add_argument("--link-mode", choices=("loop", "thread"), default="loop",
                    help="MqttLink driven by the event loop or by its own network thread")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    n = a.backlog
    broker = start_broker()
    rx = ReceiverProcess(broker.host, broker.port, "wt/v1/gw/+/event")
    base_rx = ReceiverProcess(broker.host, broker.port, "bench/baseline")   # same broker fan-out work
    lost = duplicates = 0
    rates: list[float] = []
    bases: list[float] = []
    try:
        events = make_events(n)
        sample = encode_event(events[0], gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
        print(f"payload {len(sample)} bytes, backlog {n}, window {a.window}, batch {a.batch}, rounds {a.rounds}")
        base_payloads = [encode_event(e, gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
                         .replace(b'"a4c1380a1b2c-', b'"baseline0000-') for e in events]
        for rnd in range(1, a.rounds + 1):
            c0 = _cpu_s()
            base = baseline_throughput(broker.host, broker.port, base_payloads, max_inflight=a.window)
            base_cpu = (_cpu_s() - c0) / n * 1e6
            base_rx.report(expect=n, timeout_s=60)     # its subscriber has caught up: no overlap
            base_rx.stop()
            base_rx = ReceiverProcess(broker.host, broker.port, "bench/baseline")
            bases.append(base)
            print(f"round {rnd}: baseline bare paho QoS 1: {base:,.0f} msg/s, {base_cpu:.0f} us CPU/msg")
            with tempfile.TemporaryDirectory() as d:
                journal = SqliteJournal(Path(d) / "journal.db", max_telemetry_rows=max(n, 100_000))
                t0 = time.perf_counter()
                for k in range(0, n, 5000):
                    journal.apply(events[k:k + 5000])
                print(f"round {rnd}: journal filled with {n} events in {time.perf_counter() - t0:.1f}s")
                c0 = _cpu_s()
                rate, stats = asyncio.run(replay(broker.host, broker.port, journal, n, a.window, a.batch,
                                                 not a.quiet, a.link_mode))
                gw_cpu = (_cpu_s() - c0) / n * 1e6
                undelivered = journal.depth().undelivered
                journal.close()
            rates.append(rate)
            r = rx.report(expect=n, timeout_s=60)
            got = r["order"]
            round_lost = n - len(set(got))
            lost += round_lost
            duplicates += r["duplicates_after_dedup"]
            in_order = got == [e.event_id for e in events]
            print(f"round {rnd}: gateway replay {rate:,.0f} events/s, {gw_cpu:.0f} us CPU/event "
                  f"({rate / base:.2f} x baseline); receiver "
                  f"unique {len(set(got))} in journal order: {in_order}, raw {r['raw']}, "
                  f"journal undelivered after flush {undelivered}; forwarder stats {stats}")
            if rnd < a.rounds:
                rx.stop()      # the next round replays the same event ids: a fresh receiver
                rx = ReceiverProcess(broker.host, broker.port, "wt/v1/gw/+/event")
        rate, base = statistics.median(rates), statistics.median(bases)
        print(f"median gateway replay {rate:,.0f} events/s, median baseline {base:,.0f} msg/s: "
              f"{rate / base:.2f} x baseline (rounds: gateway {[round(x) for x in rates]}, "
              f"baseline {[round(x) for x in bases]})")
        print(json.dumps({"events_per_s": round(rate, 1), "baseline_events_per_s": round(base, 1),
                          "lost": lost, "duplicates": duplicates}))
        return 0 if lost == 0 and duplicates == 0 else 1
    finally:
        rx.stop()
        base_rx.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
