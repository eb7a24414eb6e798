"""Backlog replay throughput: a journal backlog replayed to Mosquitto vs. a bare paho publisher.

    python bench/replay_throughput.py [--backlog 100000] [--window 128] [--batch 1024] [--chunks 10]

Gateway: SqliteJournal (holding --backlog undelivered events) + JournalWriter + Forwarder
+ MqttLink (event-loop driven) replaying the backlog to a private Mosquitto; a subscriber
in another process de-duplicates on event_id and checks journal order.
Baseline (same run, same broker, same payload size, same number of messages in flight,
a subscriber on its topic too): a bare paho QoS 1 publisher (loop_start thread).

The machine's load drifts (other jobs share the cores), so the two are measured in
alternating chunks of --backlog/--chunks messages: baseline chunk, gateway chunk (the
replay is paused between chunks by closing a gate in front of the route), ... Each
side's rate = its messages / the sum of its chunk times (first publish to the last
PUBACK of the chunk). Last line: {"events_per_s", "baseline_events_per_s", "lost",
"duplicates"} (duplicates: after the receiver's de-duplication).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ReceiverProcess, baseline_throughput, start_broker  # noqa: E402

from contracts.topics import Kind, all_gateways  # noqa: E402
from gateway.adapters.journal import JournalWriter, SqliteJournal  # noqa: E402
from gateway.domain.model import Event, EventCode, Role  # noqa: E402
from gateway.domain.ports import SystemClock  # noqa: E402
from gateway.domain.forwarder import Forwarder  # noqa: E402
from gateway.adapters.mqtt import MqttLink, gateway_link  # noqa: E402
from gateway.domain.payload import encode_event  # noqa: E402

GW = "gw-bench"


def make_events(n: int) -> list[Event]:
    t = time.time()
    return [Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.MEASUREMENT, t + i * 0.001, t + i * 0.001,
                  role=Role.HEALTH, seq=i, data={"kind": "spo2", "value": 97, "unit": "%"}) for i in range(1, n + 1)]


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Gate:
    """A Publisher in front of the real route that the bench opens and closes: closed, it
    reports "not connected", so the forwarder pauses its replay between chunks."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self.open = False
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def route(self) -> str:
        return self.link.route

    @property
    def receive_maximum(self) -> int:
        return self.link.receive_maximum

    @property
    def connected(self) -> bool:
        return self.open and self.link.connected

    def publish(self, topic: str, payload: bytes, **kw: Any) -> None:
        self.link.publish(topic, payload, **kw)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        self.link.subscribe(topic_filter, handler)

    def add_connection_listener(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def set_open(self, up: bool) -> None:
        self.open = up
        for listener in self._listeners:
            listener(up)


async def run(a: argparse.Namespace, host: str, port: int, journal: SqliteJournal, events: list[Event],
              base_payloads: list[bytes], rx: ReceiverProcess, base_rx: ReceiverProcess) -> dict:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    n = len(events)
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    link = gateway_link(gateway_id=GW, version="bench", clock=clock, host=host, port=port, loop=loop)
    gate = Gate(link)
    fwd = Forwarder(gateway_id=GW, journal=writer, primary=gate, clock=clock, replay_window=a.window,
                    replay_batch=a.batch, replay_rate_per_s=a.rate_cap, tick_s=0.05)
    link.start()
    while not link.connected:
        await asyncio.sleep(0.005)
    task = loop.create_task(fwd.async_run())
    chunk = max(1, n // a.chunks)
    g_time = b_time = g_cpu = b_cpu = 0.0
    b_sent = 0
    k = 0
    while fwd.stats["telemetry_delivered"] < n:
        k += 1
        # baseline chunk (its subscriber catches up before the gateway runs: no overlap)
        part = base_payloads[b_sent:b_sent + chunk]
        if part:
            c0 = cpu_s()
            rate = await loop.run_in_executor(None, baseline_throughput, host, port, part, a.window)
            b_cpu += cpu_s() - c0
            b_time += len(part) / rate
            b_sent += len(part)
            await loop.run_in_executor(None, base_rx.report, b_sent, 60)
        # gateway chunk
        target = min(n, fwd.stats["telemetry_delivered"] + chunk)
        c0, t0 = cpu_s(), time.perf_counter()
        gate.set_open(True)
        while fwd.stats["telemetry_delivered"] < target:
            await asyncio.sleep(0.002)
            if time.perf_counter() - t0 > 300:
                raise SystemExit("replay stalled")
        g_time += time.perf_counter() - t0
        g_cpu += cpu_s() - c0
        gate.set_open(False)
        await asyncio.sleep(0.05)                       # the window in flight is acked
        await loop.run_in_executor(None, rx.report, fwd.stats["telemetry_delivered"], 60)
        if not a.quiet:
            print(f"  chunk {k}: gateway {fwd.stats['telemetry_delivered']}/{n}, baseline {b_sent}/{n}",
                  file=sys.stderr)
    fwd.flush()
    await asyncio.sleep(0.3)
    g_n = fwd.stats["telemetry_delivered"]
    stats = dict(fwd.stats)
    task.cancel()
    await link.async_stop()
    writer.stop()
    return {"rate": g_n / g_time, "base": b_sent / b_time, "g_cpu_us": g_cpu / g_n * 1e6,
            "b_cpu_us": b_cpu / max(b_sent, 1) * 1e6, "stats": stats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=128,
                    help="replay window (un-PUBACKed publications); the baseline gets the same")
    ap.add_argument("--batch", type=int, default=1024, help="journal rows per read")
    ap.add_argument("--chunks", type=int, default=10, help="alternating baseline/gateway chunks")
    ap.add_argument("--rate-cap", type=float, default=0.0,
                    help="forwarder replay_rate_per_s; 0 (default here) measures the replay's capacity "
                         "(the daemon's default cap is 500/s, see Forwarder)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    n = a.backlog
    broker = start_broker()
    rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.EVENT))
    base_rx = ReceiverProcess(broker.host, broker.port, "bench/baseline")
    try:
        events = make_events(n)
        base_payloads = [encode_event(e, gateway_id=GW, attempt=1, route="primary", sent_at=time.time())
                         .replace(b'"a4c1380a1b2c-', b'"baseline0000-') for e in events]
        print(f"payload {len(base_payloads[0])} bytes, backlog {n}, window {a.window}, batch {a.batch}, "
              f"chunks {a.chunks}, replay rate cap {a.rate_cap or 'none'}")
        with tempfile.TemporaryDirectory() as d:
            journal = SqliteJournal(Path(d) / "journal.db", max_telemetry_rows=max(n, 100_000))
            t0 = time.perf_counter()
            for k in range(0, n, 5000):
                journal.apply(events[k:k + 5000])
            print(f"journal filled with {n} undelivered events in {time.perf_counter() - t0:.1f}s")
            r = asyncio.run(run(a, broker.host, broker.port, journal, events, base_payloads, rx, base_rx))
            undelivered = journal.depth().undelivered
            journal.close()
        got = rx.report(expect=n, timeout_s=60)
        order = got["order"]
        lost = n - len(set(order))
        duplicates = got["duplicates_after_dedup"]
        in_order = order == [e.event_id for e in events]
        print(f"baseline bare paho QoS 1: {r['base']:,.0f} msg/s, {r['b_cpu_us']:.0f} us CPU/msg")
        print(f"gateway replay: {r['rate']:,.0f} events/s, {r['g_cpu_us']:.0f} us CPU/event "
              f"({r['rate'] / r['base']:.2f} x baseline); receiver: {len(set(order))} unique in journal order: "
              f"{in_order}, {got['raw']} raw ({got['raw'] - len(set(order))} duplicates before de-duplication); "
              f"journal undelivered after flush {undelivered}; forwarder stats {r['stats']}")
        print(json.dumps({"events_per_s": round(r["rate"], 1), "baseline_events_per_s": round(r["base"], 1),
                          "lost": lost, "duplicates": duplicates}))
        return 0 if lost == 0 and duplicates == 0 and in_order else 1
    finally:
        rx.stop()
        base_rx.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
