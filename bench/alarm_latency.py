"""Alarm latency under load: gateway ingress (Forwarder.submit) -> broker PUBACK.

    python bench/alarm_latency.py [--alarms 1000] [--telemetry-rate 1000] [--backlog 100000]
                                  [--fsync-ms 50] [--alarm-interval-ms 10]

Conditions, all at once: --telemetry-rate events/s stream in through the same forwarder,
a --backlog event journal backlog replays, and every journal commit is slowed by
--fsync-ms (the SqliteJournal ``before_commit`` seam sleeps, as slow SD-card storage
would). Latency per alarm = PUBACK time as seen by the forwarder on the event loop minus
the event's ``received_at`` (set just before ``submit``), i.e. the figure ``gateway
status`` shows. Same run, same broker, same payload size: a bare paho client
(loop_start thread) publishing one QoS 1 message at a time, publish -> PUBACK.
The platform (a separate process) acks every alarm and de-duplicates on event_id.
Last line: {"p50_ms", "p99_ms", "baseline_p99_ms", "lost"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ReceiverProcess, baseline_latency_ms, percentile, start_broker, summary  # noqa: E402

from contracts.topics import Kind, all_gateways  # noqa: E402
from gateway.adapters.journal import JournalWriter, SqliteJournal  # noqa: E402
from gateway.domain.model import Event, EventCode, Role  # noqa: E402
from gateway.domain.ports import SystemClock  # noqa: E402
from gateway.domain.forwarder import Forwarder  # noqa: E402
from gateway.adapters.mqtt import alarm_lane_link, gateway_link  # noqa: E402
from gateway.domain.payload import encode_event  # noqa: E402

GW = "gw-bench"


def telemetry(i: int, t: float) -> Event:
    return Event(f"b0b0b0b0b0b0-{i:08x}", "b0b0b0b0b0b0", EventCode.MEASUREMENT, t, t, role=Role.HEALTH, seq=i,
                 data={"kind": "spo2", "value": 97, "unit": "%"})


def alarm(i: int, t: float) -> Event:
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.FALL_DETECTED, t, t, role=Role.FALL, seq=i)


async def run(a: argparse.Namespace, host: str, port: int, journal: SqliteJournal) -> dict:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    link = gateway_link(gateway_id=GW, version="bench", clock=clock, host=host, port=port, loop=loop)
    lane = None
    if not a.no_lane:
        lane = alarm_lane_link(gateway_id=GW, clock=clock, host=host, port=port, dispatch=loop.call_soon_threadsafe)
    fwd = Forwarder(gateway_id=GW, journal=writer, primary=link, alarm_lane=lane, clock=clock, ack_timeout_s=30,
                    replay_window=a.window, replay_rate_per_s=a.replay_rate, last_alarms=a.alarms + 50, tick_s=0.05)
    link.start()
    if lane is not None:
        lane.start()
    while not link.connected or (lane is not None and not lane.connected):
        await asyncio.sleep(0.005)
    tasks = [loop.create_task(fwd.async_run())]
    stop = asyncio.Event()

    async def feed_telemetry() -> None:
        i, t0 = 0, time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - t0) * a.telemetry_rate)
            now = time.time()
            while i < due:
                i += 1
                fwd.submit(telemetry(i, now))
            await asyncio.sleep(0.005)
        fed["telemetry"] = i

    fed: dict = {}
    tasks.append(loop.create_task(feed_telemetry()))
    await asyncio.sleep(0.5)                  # telemetry flowing, replay under way
    backlog_start = fwd.status().backlog
    rng = random.Random(7)
    for k in range(1, a.alarms + 1):
        await asyncio.sleep(a.alarm_interval_ms / 1000.0 * rng.uniform(0.5, 1.5))
        now = time.time()
        fwd.submit(alarm(k, now))             # received_at = now
    backlog_end = fwd.status().backlog
    deadline = time.perf_counter() + 30
    ids = {alarm(k, 0).event_id for k in range(1, a.alarms + 1)}
    while time.perf_counter() < deadline:
        recs = [r for r in fwd.status().last_alarms if r.event_id in ids and r.latency_ms is not None]
        if len(recs) == a.alarms:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.sleep(0.05)
    recs = [r for r in fwd.status().last_alarms if r.event_id in ids]
    status = fwd.status()
    for t in tasks:
        t.cancel()
    await link.async_stop()
    if lane is not None:
        await loop.run_in_executor(None, lane.stop)
    writer.stop()
    return {"latencies": [r.latency_ms for r in recs if r.latency_ms is not None], "backlog_start": backlog_start,
            "backlog_end": backlog_end, "telemetry_fed": fed.get("telemetry", 0), "stats": dict(fwd.stats),
            "unacked": status.alarms_unacknowledged, "escalations": fwd.stats["escalations"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alarms", type=int, default=1000)
    ap.add_argument("--telemetry-rate", type=float, default=1000.0, help="telemetry events/s streaming in")
    ap.add_argument("--backlog", type=int, default=100_000, help="journal backlog replaying meanwhile")
    ap.add_argument("--fsync-ms", type=float, default=50.0, help="extra time per journal commit")
    ap.add_argument("--alarm-interval-ms", type=float, default=10.0, help="mean gap between alarms")
    ap.add_argument("--window", type=int, default=64, help="forwarder replay window")
    ap.add_argument("--replay-rate", type=float, default=500.0,
                    help="forwarder replay_rate_per_s during the run (the Forwarder default, 500; 0 = no cap)")
    ap.add_argument("--no-lane", action="store_true", help="alarms share the telemetry connection")
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="sys.setswitchinterval for this process (CPython default 5 ms; the daemon "
                         "runs with 0.5, gateway.daemon._main.GIL_SWITCH_INTERVAL_S)")
    a = ap.parse_args(argv)
    if a.switch_interval_ms is not None:
        sys.setswitchinterval(a.switch_interval_ms / 1000.0)
    broker = start_broker()
    alarms_rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.ALARM), ack=True)
    events_rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.EVENT))
    try:
        sample = encode_event(alarm(1, time.time()), gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
        base = baseline_latency_ms(broker.host, broker.port, a.alarms, sample, gap_s=a.alarm_interval_ms / 1000)
        print(f"baseline bare paho publish->PUBACK ms: {summary(base)}")
        with tempfile.TemporaryDirectory() as d:
            armed = {"on": False}

            def slow_sync() -> None:
                if armed["on"]:
                    time.sleep(a.fsync_ms / 1000.0)

            journal = SqliteJournal(Path(d) / "journal.db", before_commit=slow_sync,
                                    max_telemetry_rows=a.backlog + 200_000)
            t = time.time()
            evs = [telemetry(i, t) for i in range(10_000_001, 10_000_001 + a.backlog)]
            for k in range(0, len(evs), 5000):
                journal.apply(evs[k:k + 5000])
            armed["on"] = True
            print(f"backlog {a.backlog} events in the journal; journal commits now take +{a.fsync_ms} ms")
            r = asyncio.run(run(a, broker.host, broker.port, journal))
            journal.close()
        lat = r["latencies"]
        got = alarms_rx.report(expect=a.alarms, timeout_s=30)
        lost = a.alarms - got["unique"]
        print(f"gateway alarm ingress->PUBACK ms: {summary(lat)}")
        print(f"during the alarms: backlog {r['backlog_start']} -> {r['backlog_end']} (replaying), "
              f"{r['telemetry_fed']} telemetry events fed at {a.telemetry_rate:.0f}/s; "
              f"platform got {got['unique']} alarms (raw {got['raw']}), unacked at end {r['unacked']}, "
              f"escalations {r['escalations']}; forwarder stats {r['stats']}")
        print(json.dumps({"p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3),
                          "baseline_p99_ms": round(percentile(base, 99), 3), "lost": lost}))
        return 0 if lost == 0 else 1
    finally:
        alarms_rx.stop()
        events_rx.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
