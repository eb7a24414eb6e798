"""Alarm latency through the SCAIP route under load: gateway ingress -> the centre's snu 0.

    python bench/scaip_latency.py [--alarms 1000] [--telemetry-rate 500] [--backlog 20000]
                                  [--fsync-ms 20] [--alarm-interval-ms 10]

The centre is SIPp on loopback (UDP) running the scenario of the demo
(gateway/testing/sip_centre.py ``CENTRE_OK``: 200 OK with ``<mrs>`` snu 0 in the body).

1. Baseline, same run, same SIPp scenario and process: a bare minimal sender (one UDP
   socket, a hand-written MESSAGE with a SCAIP body of the same size, one at a time) —
   send -> the 200 OK carrying snu 0. It runs in its own process *at the same time* as the
   gateway's alarms (same count, same pace), so both see the same machine: on a shared
   box the load of the moment dominates the tails, and a baseline taken a minute earlier
   would compare two different machines.
2. The gateway: the real forwarder, journal (every commit slowed by --fsync-ms, as a slow
   SD card) and writer, the real SIP user agent and SCAIP route (``[scaip] role =
   "primary"``) and a real MQTT route to a private Mosquitto. At once: --telemetry-rate
   events/s stream in (journal, then MQTT), a --backlog of telemetry replays over MQTT,
   and the SCAIP centre feed replays the backlog's follow-ups (a ``button_cancel`` every
   100 rows) to the same centre in journal order. Latency per alarm = the time the centre's
   snu 0 reached the gateway's socket (kernel receive timestamp: like the MQTT bench's
   PUBACK, taken where it arrives, not when a busy event loop gets to it) minus the
   event's ``received_at`` (set just before ``submit``) — what ``gateway status`` shows as
   ``centre_latency_ms``. Also printed: the same up to the moment the forwarder has
   handled the answer on the loop (journal mark queued, device FEEDBACK sent).

``lost``: alarms without snu 0 at the end; ``duplicates_at_centre``: extra copies of the
alarms' refs in SIPp's message trace (same ref re-sent). Target: p99 <= 3 x baseline p99,
lost 0.

Also printed: how long the centre takes to notice a dead gateway with the default
heartbeat interval, computed from the interval and the centre's supervision rule (stated
there; SS 91100 leaves the rule to the centre).

Last line: {"p50_ms", "p99_ms", "baseline_p99_ms", "lost", "duplicates_at_centre"}.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ReceiverProcess, percentile, start_broker, summary  # noqa: E402

from contracts.gateway_config import ScaipSection  # noqa: E402
from contracts.topics import Kind, all_gateways  # noqa: E402
from gateway.adapters.journal import JournalWriter, SqliteJournal  # noqa: E402
from gateway.adapters.mqtt import gateway_link  # noqa: E402
from gateway.adapters.sip import ScaipRoute, ScaipSettings, SipUserAgent, Timers, UaConfig  # noqa: E402
from gateway.daemon._main import GIL_SWITCH_INTERVAL_S  # noqa: E402
from gateway.domain.forwarder import Forwarder  # noqa: E402
from gateway.domain.model import Event, EventCode, Role  # noqa: E402
from gateway.domain.ports import SystemClock  # noqa: E402
from gateway.domain.scaip import CURSOR_KEY, build_request, encode_request, ref_for  # noqa: E402
from gateway.testing.sip_centre import CENTRE_OK, SippCentre  # noqa: E402

GW = "gw-bench"
CID = "4700000001"
#: The centre's supervision rule assumed for the dead-gateway figure: it raises a "unit
#: silent" alarm when no heartbeat arrived for one interval plus this grace.
CENTRE_GRACE_S = 60.0


def telemetry(i: int, t: float) -> Event:
    return Event(f"b0b0b0b0b0b0-{i:08x}", "b0b0b0b0b0b0", EventCode.MEASUREMENT, t, t, role=Role.HEALTH, seq=i,
                 data={"kind": "spo2", "value": 97, "unit": "%"})


def follow_up(i: int, t: float) -> Event:
    return Event(f"c0c0c0c0c0c0-{i:08x}", "c0c0c0c0c0c0", EventCode.BUTTON_CANCEL, t, t, role=Role.BUTTON, seq=i)


class Tap:
    """The route's listener in front of the forwarder: when each snu 0 was handled on the loop."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.handled: dict[str, float] = {}

    def scaip_delivered(self, event: Event, reply: object, *, escalated: bool, at: float | None = None) -> None:
        self.inner.scaip_delivered(event, reply, escalated=escalated, at=at)  # type: ignore[attr-defined]
        self.handled[event.event_id] = time.time()

    def scaip_escalate(self, event: Event, reason: str) -> None:
        self.inner.scaip_escalate(event, reason)  # type: ignore[attr-defined]

    def scaip_refused(self, event: Event, reply: object, reason: str) -> None:
        self.inner.scaip_refused(event, reply, reason)  # type: ignore[attr-defined]


def alarm(i: int, t: float) -> Event:
    return Event(f"a4c1380a1b2c-{i:08x}", "a4c1380a1b2c", EventCode.FALL_DETECTED, t, t, role=Role.FALL, seq=i)


# ---- baseline: a bare minimal sender ------------------------------------------------------
def baseline_latency_ms(port: int, n: int, gap_s: float) -> list[float]:
    """One MESSAGE at a time from a bare UDP socket: send -> 200 OK with snu 0."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    lport = s.getsockname()[1]
    out: list[float] = []
    for k in range(n):
        ref = f"bl{k:014d}"
        body = encode_request(build_request(alarm(k, time.time()), cid=CID, ref=ref))
        head = (f"MESSAGE sip:arc@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKbl{k}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{CID}@127.0.0.1>;tag=bl{k}\r\nTo: <sip:arc@127.0.0.1:{port}>\r\n"
                f"Call-ID: bl{k}@bench\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        t0 = time.perf_counter()
        s.sendto(head.encode() + body, ("127.0.0.1", port))
        while True:
            data = s.recv(65535)
            if f"Call-ID: bl{k}@bench".encode() in data and b"<snu>0</snu>" in data:
                out.append((time.perf_counter() - t0) * 1000.0)
                break
        time.sleep(gap_s)
    s.close()
    return out


class BaselineProcess:
    """:func:`baseline_latency_ms` in its own process, started on :meth:`go`."""

    def __init__(self, port: int, n: int, gap_s: float) -> None:
        import subprocess

        self.p = subprocess.Popen([sys.executable, __file__, "--baseline-only", str(port), str(n), str(gap_s)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def result(self, timeout_s: float = 120.0) -> list[float]:
        out, _ = self.p.communicate(timeout=timeout_s)
        return json.loads(out.strip().splitlines()[-1])


# ---- the gateway --------------------------------------------------------------------------
async def run(a: argparse.Namespace, host: str, port: int, centre_port: int, journal: SqliteJournal,
              baseline: BaselineProcess) -> dict:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    link = gateway_link(gateway_id=GW, version="bench", clock=clock, host=host, port=port, loop=loop)
    defaults = ScaipSection()
    t1 = defaults.t1_ms / 1000.0
    ua = SipUserAgent(UaConfig(target=f"sip:arc@127.0.0.1:{centre_port}", local_user=CID, local_host="127.0.0.1",
                               timers=Timers(t1=t1, t2=8 * t1, t4=10 * t1)))
    settings = ScaipSettings(cid=CID, heartbeat_interval_s=defaults.heartbeat_interval_s,
                             reply_timeout_s=defaults.reply_timeout_s, escalate_after_s=defaults.escalate_after_s)
    taps: list[Tap] = []

    def make_route(listener: object) -> ScaipRoute:
        taps.append(Tap(listener))
        return ScaipRoute(ua, settings, listener=taps[0], clock=clock)  # type: ignore[arg-type]

    fwd = Forwarder(gateway_id=GW, journal=writer, primary=link, clock=clock, ack_timeout_s=30,
                    last_alarms=a.alarms + 50, tick_s=0.05, centre=make_route, centre_first=True)
    route = fwd.centre
    assert isinstance(route, ScaipRoute)
    link.start()
    await route.async_start()
    while not link.connected:
        await asyncio.sleep(0.005)
    tasks = [loop.create_task(fwd.async_run())]
    stop = asyncio.Event()
    fed: dict = {}

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

    tasks.append(loop.create_task(feed_telemetry()))
    await asyncio.sleep(0.5)                   # telemetry flowing, both replays under way
    backlog_start = fwd.status().backlog
    baseline.go()                              # the bare sender starts now, alongside the alarms
    rng = random.Random(7)
    for k in range(1, a.alarms + 1):
        await asyncio.sleep(a.alarm_interval_ms / 1000.0 * rng.uniform(0.5, 1.5))
        fwd.submit(alarm(k, time.time()))       # received_at = now
    backlog_end = fwd.status().backlog
    ids = {alarm(k, 0).event_id for k in range(1, a.alarms + 1)}
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        recs = [r for r in fwd.status().last_alarms if r.event_id in ids and r.centre_latency_ms is not None]
        if len(recs) == a.alarms:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.sleep(0.05)
    recs = [r for r in fwd.status().last_alarms if r.event_id in ids]
    st = route.status()
    feed = fwd.status().scaip["feed"]            # type: ignore[index]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await route.async_close()
    await link.async_stop()
    writer.stop()
    handled = [(taps[0].handled[r.event_id] - r.received_at) * 1000.0 for r in recs if r.event_id in taps[0].handled]
    return {"latencies": [r.centre_latency_ms for r in recs if r.centre_latency_ms is not None], "handled": handled,
            "acked": sum(1 for r in recs if r.centre_latency_ms is not None), "backlog_start": backlog_start,
            "backlog_end": backlog_end, "telemetry_fed": fed.get("telemetry", 0), "route": st, "feed": feed,
            "escalations": fwd.stats["escalations"], "ids": ids,
            "replayed": fwd.stats["replayed"], "live": fwd.stats["live"]}


def dead_gateway_detection(interval_s: float, grace_s: float) -> dict:
    """When the centre notices a gateway that died at a uniformly random moment."""
    return {"interval_s": interval_s, "grace_s": grace_s, "best_s": grace_s, "mean_s": interval_s / 2 + grace_s,
            "worst_s": interval_s + grace_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alarms", type=int, default=1000)
    ap.add_argument("--telemetry-rate", type=float, default=500.0, help="telemetry events/s streaming in")
    ap.add_argument("--backlog", type=int, default=20_000, help="journal backlog replaying meanwhile")
    ap.add_argument("--fsync-ms", type=float, default=20.0, help="extra time per journal commit")
    ap.add_argument("--alarm-interval-ms", type=float, default=10.0, help="mean gap between alarms")
    ap.add_argument("--workdir", help="keep SIPp's trace here (default: a temporary directory)")
    a = ap.parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)          # as gateway run does
    work = Path(a.workdir or tempfile.mkdtemp(prefix="wt-bench-scaip-"))
    centre = SippCentre("centre_ok.xml", work / "sipp", calls=0, timeout_s=0, scenario_text=CENTRE_OK).start()
    broker = start_broker()
    events_rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.EVENT))
    baseline = BaselineProcess(centre.port, a.alarms, a.alarm_interval_ms / 1000.0)
    try:
        with tempfile.TemporaryDirectory() as d:
            armed = {"on": False}

            def slow_sync() -> None:
                if armed["on"]:
                    time.sleep(a.fsync_ms / 1000.0)

            journal = SqliteJournal(Path(d) / "journal.db", before_commit=slow_sync,
                                    max_telemetry_rows=a.backlog + 200_000)
            t = time.time()
            evs = [follow_up(i, t) if i % 100 == 0 else telemetry(i, t)
                   for i in range(10_000_001, 10_000_001 + a.backlog)]
            for k in range(0, len(evs), 5000):
                journal.apply(evs[k:k + 5000])
            journal.set_state(CURSOR_KEY, b"0")           # the centre feed replays the backlog too
            armed["on"] = True
            print(f"backlog {a.backlog} events ({a.backlog // 100} follow-ups for the centre) in the journal; "
                  f"journal commits now take +{a.fsync_ms} ms")
            r = asyncio.run(run(a, broker.host, broker.port, centre.port, journal, baseline))
            journal.close()
        base = baseline.result()
        print(f"baseline bare sender MESSAGE -> 200 OK (snu 0), same time, own process, ms: {summary(base)}")
        lat = r["latencies"]
        lost = a.alarms - r["acked"]
        counts = collections.Counter(centre.refs())
        alarm_refs = {ref_for(i) for i in r["ids"]}
        duplicates = sum(n - 1 for ref, n in counts.items() if ref in alarm_refs and n > 1)
        st, feed = r["route"], r["feed"]
        print(f"gateway alarm ingress -> centre snu 0 at the socket ms: {summary(lat)}")
        print(f"  ... -> snu 0 handled on the event loop ms: {summary(r['handled'])}")
        print(f"during the alarms: MQTT backlog {r['backlog_start']} -> {r['backlog_end']} ({r['replayed']} replayed "
              f"at the forwarder's cap, {r['live']} live), {r['telemetry_fed']} telemetry events fed at "
              f"{a.telemetry_rate:.0f}/s; centre feed {feed}; "
              f"escalations {r['escalations']}; route counters {st['counters']}; SIP {st['sip']}")
        det = dead_gateway_detection(ScaipSection().heartbeat_interval_s, CENTRE_GRACE_S)
        print(f"dead gateway: heartbeats every {det['interval_s']:g} s (default); assuming the centre raises "
              f"'unit silent' when no heartbeat arrived for one interval + {det['grace_s']:g} s grace, it notices "
              f"a gateway that died at a random moment after {det['best_s']:g}-{det['worst_s']:g} s "
              f"(mean {det['mean_s']:g} s); with hbi 1 (60 s) after {CENTRE_GRACE_S:g}-{60 + CENTRE_GRACE_S:g} s")
        ratio = percentile(lat, 99) / percentile(base, 99) if base and lat else float("nan")
        print(f"p99 / baseline p99 = {ratio:.2f} (target <= 3)")
        print(json.dumps({"p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3),
                          "baseline_p99_ms": round(percentile(base, 99), 3), "lost": lost,
                          "duplicates_at_centre": duplicates}))
        return 0 if lost == 0 else 1
    finally:
        events_rx.stop()
        broker.stop()
        centre.stop()


def _baseline_main(port: str, n: str, gap_s: str) -> None:
    sys.stdin.readline()                       # wait for "go"
    print(json.dumps(baseline_latency_ms(int(port), int(n), float(gap_s))), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--baseline-only":
        _baseline_main(*sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
