"""Gateway soak: 200 emulated devices for a simulated month; memory, journal and fds stay flat.

What runs. The real gateway as ``gateway run`` wires it — ``bootstrap(cfg, clock=...)``:
ingress, SQLite journal + writer thread (with its retention pass), forwarder, paho routes
over real TCP sockets to a private Mosquitto, rules, registry, status HTTP endpoint —
in this process, driven by the test kit's :class:`FakeClock`. The platform simulator
(acks every alarm) runs in two separate processes on their own paho connections
(bench/_common.py ``ReceiverProcess``: alarms with acks, telemetry), so their
de-duplication sets, which grow with every event, are not counted in the gateway's RSS.

Why in-process and not ``gateway run`` as a child: a simulated month needs the injected
clock (30 real days cannot be waited for), and the daemon process has no clock seam; the
composition root does (``bootstrap(cfg, clock=...)``), and it is the same wiring. The
devices (gateway.testing.emulator) live in this process too, on the emulator's in-process
links and air, like the HIL demo; their per-device logs (``emitted``, ``acks``,
``feedback`` lists, test-kit records) are drained every step so the figure is the
gateway's, not the emulator's history. The gateway's own structures are not touched.

Clock ("accelerated where the rules allow"). Every step (``--step-s``, 60 s) the clock
jumps forward, devices tick (heartbeat every 10 min, retries), events are emitted and the
rules tick. The next jump waits until the step has settled: every device event ACKed
STORED, the journal backlog PUBACKed, every alarm (device or rule) acknowledged by the
platform. While it settles, simulated time runs at real speed. So no ack timeout,
PUBACK timeout, retry or supervision deadline lapses because simulated time outran the
real sockets; the accelerated part is the quiet time between events.

Load per device (simulated; seeded): telemetry ~1/h (button/fall cancels, bed in/out and
door adverts, doses taken, GPS positions), an alarm on frame devices ~1 per 2 days
(button press / tamper), heartbeat every 10 min; the rules add their own alarms (door at
night, bed not returned). Journal settings are the schema defaults unless given.

Output: one line per simulated day on stderr; the last line on stdout is JSON
``{"simulated_days", "rss_mb_start", "rss_mb_end", "journal_mb_end", "fds_start", "fds_end",
"lost", ...}``. ``rss_mb_start`` is taken after a warm-up of one simulated hour (imports,
connections, caches), both RSS figures after ``gc.collect()``.

    .venv/bin/python bench/gateway_soak.py [--days 30] [--devices 200] [--step-s 60] [--seed 7]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import io
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ReceiverProcess, start_broker  # noqa: E402

from contracts.topics import Kind, all_gateways  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.daemon import bootstrap, configure_logging  # noqa: E402
from gateway.domain.model import EventCode, Role  # noqa: E402
from gateway.testing.clock import FakeClock  # noqa: E402
from gateway.testing.emulator import EmulatedHome, home_devices  # noqa: E402
from gateway.testing.emulator._device import FrameDevice  # noqa: E402

DAY = 86400.0
HEARTBEAT_S = 600.0
SETTLE_TIMEOUT_S = 20.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def disk_write_bytes() -> int:
    """Bytes this process caused to be written to storage (/proc/self/io write_bytes): the
    journal's WAL, checkpoints and fsyncs; sockets do not count."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def measured_rss() -> float:
    gc.collect()
    return round(rss_mb(), 1)


class Load:
    """Seeded event schedule for the emulated devices (see module doc)."""

    def __init__(self, home: EmulatedHome, rng: random.Random, step_s: float) -> None:
        self.home = home
        self.rng = rng
        self.p_tele = step_s / 3600.0
        self.p_alarm = step_s / (2 * DAY)
        self.emitted: collections.Counter[str] = collections.Counter()   # per device
        self.alarms = 0

    def step(self) -> None:
        for dev in self.home:
            r = self.rng.random()
            if r < self.p_tele:
                self._telemetry(dev)
            elif r < self.p_tele + self.p_alarm and isinstance(dev, FrameDevice):
                dev.emit(EventCode.BUTTON_PRESS) if dev.role is Role.BUTTON else dev.emit(EventCode.TAMPER)
                self.alarms += 1
            else:
                continue
            self.emitted[dev.device_id] += 1

    def _telemetry(self, dev: object) -> None:
        role = dev.role  # type: ignore[attr-defined]
        if role is Role.BUTTON:
            dev.emit(EventCode.BUTTON_CANCEL)  # type: ignore[attr-defined]
        elif role is Role.FALL:
            dev.emit(EventCode.FALL_CANCELLED, {"peak_cg": 200, "placement": 0})  # type: ignore[attr-defined]
        elif role is Role.BED:
            (dev.in_bed if self.rng.random() < 0.5 else dev.out_of_bed)()  # type: ignore[attr-defined]
        elif role is Role.DOOR:
            (dev.open if self.rng.random() < 0.5 else dev.close)()  # type: ignore[attr-defined]
        elif role is Role.DISPENSER:
            dev.dose_taken(1, 480)  # type: ignore[attr-defined]
        else:
            dev.position()  # type: ignore[attr-defined]

    def drain_device_logs(self) -> None:
        """The emulator's per-device history lists (test-kit records, not the gateway's)."""
        for dev in self.home:
            dev.emitted.clear()
            if isinstance(dev, FrameDevice):
                dev.acks.clear()
                dev.feedback.clear()


def settled(rt: object, home: EmulatedHome) -> bool:
    st = rt.forwarder.status()  # type: ignore[attr-defined]
    return st.backlog == 0 and st.inflight == 0 and st.alarms_unacknowledged == 0 and home.unacked() == 0


async def settle(rt: object, home: EmulatedHome, clock: FakeClock) -> bool:
    """Wait (simulated time running at real speed) until the step's work is done."""
    t0 = last = time.monotonic()
    await asyncio.sleep(0)
    while not settled(rt, home):
        if time.monotonic() - t0 > SETTLE_TIMEOUT_S:
            return False
        rt.forwarder.flush()      # PUBACKed marks now, not at the forwarder's next 0.2 s poll  # type: ignore[attr-defined]
        await asyncio.sleep(0.002)
        now = time.monotonic()
        clock.advance(now - last)
        last = now
        home.tick()
    return True


class LogSink(io.TextIOBase):
    """Stands in for the daemon's stdout: counts the lines and bytes it would write to the
    system journal (what passed the log limiter); keeps none. ``--log`` shows them instead."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0

    def write(self, s: str) -> int:
        self.lines += s.count("\n")
        self.bytes += len(s.encode())
        return len(s)


async def run(args: argparse.Namespace) -> dict:
    configure_logging("info")          # the daemon's set-up (default level info) and its log limiter
    sink = LogSink()
    if not args.log:
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler):
                h.setStream(sink)
    rng = random.Random(args.seed)
    broker = start_broker()
    alarms_rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.ALARM), ack=True)
    events_rx = ReceiverProcess(broker.host, broker.port, all_gateways(Kind.EVENT))
    loop = asyncio.get_running_loop()
    clock = FakeClock(t=time.time())
    devices = home_devices(args.devices)
    journal_cfg = {k: v for k, v in (("telemetry_retention_h", args.telemetry_retention_h),
                                     ("alarm_retention_days", args.alarm_retention_days),
                                     ("max_mb", args.journal_max_mb)) if v is not None}
    data_dir = tempfile.mkdtemp(prefix="wt-soak-gw-")
    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": "gw-soak", "data_dir": data_dir},
        "uplink": {"port": broker.port, "health_interval_s": 60},
        "status": {"port": 0}, "discovery": {"enabled": False},
        "supervision": {"silent_after_s": 6 * HEARTBEAT_S, "tick_s": 1},
        "journal": journal_cfg,
        "devices": {d: {"role": r.name.lower(), "key": k.hex()} for d, r, k in devices}})
    rt = bootstrap(cfg, clock=clock, loop=loop, advertise=False)
    home = EmulatedHome(loop, clock, devices, heartbeat_s=HEARTBEAT_S, retry_s=30.0, advert_repeats=1)
    rt.attach_emulated(home)
    load = Load(home, rng, args.step_s)
    await rt.async_start()
    t_wait = time.monotonic()
    while not rt.uplink_connected() and time.monotonic() - t_wait < 15:
        await asyncio.sleep(0.05)
    home.boot()
    await settle(rt, home, clock)

    steps_per_day = int(DAY // args.step_s)
    total_steps = int(args.days * DAY // args.step_s)
    warmup_steps = min(total_steps, int(3600 // args.step_s))
    rss_start = fds_start = None
    written_start = 0
    stalls = 0
    t0 = time.monotonic()
    samples: list[dict] = []
    for step in range(1, total_steps + 1):
        clock.advance(args.step_s)
        home.tick()
        load.step()
        rt.engine.tick()
        if not await settle(rt, home, clock):
            stalls += 1
        load.drain_device_logs()
        if step == warmup_steps:
            rss_start, fds_start = measured_rss(), open_fds()
            written_start = disk_write_bytes()
        if step % steps_per_day == 0 or step == total_steps:
            depth = rt.writer.depth()
            sample = {"day": round(step * args.step_s / DAY, 2), "rss_mb": round(rss_mb(), 1),
                      "journal_mb": round(depth.bytes_used / 1e6, 2), "rows": depth.total, "fds": open_fds(),
                      "emitted": sum(load.emitted.values()), "wall_s": round(time.monotonic() - t0, 1)}
            samples.append(sample)
            print("  day {day:6.2f}  rss {rss_mb:6.1f} MB  journal {journal_mb:6.2f} MB  rows {rows:6d}  "
                  "fds {fds:3d}  events {emitted:7d}  wall {wall_s:7.1f} s".format(**sample),
                  file=sys.stderr, flush=True)
    wall = time.monotonic() - t0
    written = disk_write_bytes() - written_start
    rss_end, fds_end = measured_rss(), open_fds()
    depth = rt.writer.depth()
    maint = rt.journal.maintenance_stats()

    alarms = alarms_rx.report()
    events = events_rx.report()
    received: collections.Counter[str] = collections.Counter()
    gateway_events = 0
    for eid in set(alarms["order"]) | set(events["order"]):
        dev, _, _ = eid.rpartition("-")
        if dev in load.emitted:
            received[dev] += 1
        else:
            gateway_events += 1
    lost = sum(max(0, n - received[d]) for d, n in load.emitted.items()) + home.unacked()
    result = {
        "simulated_days": round(total_steps * args.step_s / DAY, 2),
        "rss_mb_start": rss_start, "rss_mb_end": rss_end,
        "journal_mb_end": round(depth.bytes_used / 1e6, 2), "fds_start": fds_start, "fds_end": fds_end,
        "lost": lost,
        "devices": args.devices, "device_events": sum(load.emitted.values()), "device_alarms": load.alarms,
        "gateway_events": gateway_events, "duplicates_after_dedup": alarms["duplicates_after_dedup"]
        + events["duplicates_after_dedup"], "journal_rows_end": depth.total,
        "journal_budget_mb": round(cfg.journal.max_mb * (1 << 20) / 1e6, 2),
        "journal_mb_max": max(s["journal_mb"] for s in samples) if samples else None,
        "prune_passes": maint["passes"], "telemetry_pruned": maint["telemetry_pruned"],
        "alarms_pruned": maint["alarms_pruned"], "pruned_for_size": maint["pruned_for_size"],
        "shed_for_size": maint["shed_for_size"], "longest_prune_step_ms": maint["longest_step_ms"],
        "longest_prune_step_phase": maint["longest_step_phase"], "mean_prune_step_ms": maint["mean_step_ms"],
        "checkpoints": maint["checkpoints"], "longest_checkpoint_ms": maint["longest_checkpoint_ms"],
        "log_lines": sink.lines, "log_kb": round(sink.bytes / 1024, 1),
        "disk_write_mb_per_day": round(written / 1e6 / max(args.days - args.step_s * warmup_steps / DAY, 1e-9), 1),
        "stalls": stalls, "wall_s": round(wall, 1),
    }
    await home.stop()
    await rt.async_stop()
    alarms_rx.stop()
    events_rx.stop()
    broker.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--step-s", type=float, default=60.0, help="simulated seconds per step (default 60)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--telemetry-retention-h", type=float, default=None, help="default: the schema's")
    ap.add_argument("--alarm-retention-days", type=float, default=None, help="default: the schema's")
    ap.add_argument("--journal-max-mb", type=float, default=None, help="default: the schema's")
    ap.add_argument("--log", action="store_true", help="show the gateway's log on stderr instead of counting it")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    growth = (res["rss_mb_end"] - res["rss_mb_start"]) / res["rss_mb_start"] * 100 if res["rss_mb_start"] else 0.0
    print(f"RSS {res['rss_mb_start']} -> {res['rss_mb_end']} MB ({growth:+.1f} %), journal {res['journal_mb_end']} MB "
          f"(budget {res['journal_budget_mb']} MB), fds {res['fds_start']} -> {res['fds_end']}, "
          f"{res['device_events']} device events, lost {res['lost']}, wall {res['wall_s']} s", file=sys.stderr)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
