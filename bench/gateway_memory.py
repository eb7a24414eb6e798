"""Gateway resident memory with 200 emulated devices over a simulated hour.

The real gateway stack (ingress, SQLite journal + writer thread, forwarder, paho route to
a private Mosquitto, rules, registry, status endpoint) runs in this process with an
accelerated clock: each simulated second is one step of a few real milliseconds. The
emulated devices (heartbeat every 60 s, an event every ~10 min, an alarm per device per
hour, acknowledged by an in-process response console) live in the same process, so the
figure is an upper bound for the gateway alone.

Baseline: a bare interpreter with the same imports, measured in a subprocess in the same
run. Last line: JSON {"devices", "simulated_s", "rss_mb", "baseline_rss_mb", ...}.

    .venv/bin/python bench/gateway_memory.py [--devices 200] [--simulated-s 3600]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = ("import gateway.daemon, gateway.testing.emulator, gateway.testing.console, gateway.testing.broker, gateway.config, "
           "gateway.adapters.mqtt, gateway.testing.emulated_link")


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def baseline_rss_mb() -> float:
    code = (
        IMPORTS + "\nwith open('/proc/self/status') as f:\n"
        "    print([int(l.split()[1]) for l in f if l.startswith('VmRSS:')][0] / 1024.0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


class SimClock:
    def __init__(self) -> None:
        self.t = time.time()
        self.m = 1000.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, s: float) -> None:
        self.t += s
        self.m += s


async def run(n_devices: int, simulated_s: int, seed: int) -> dict:
    from gateway.testing.broker import MosquittoProcess
    from gateway.config import load_config
    from gateway.testing.console import ResponseConsole, make_console_link
    from gateway.daemon import bootstrap
    from gateway.testing.emulator import EmulatedHome, home_devices
    from gateway.testing.emulator._device import FrameDevice
    from gateway.domain.model import EventCode, Role

    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    broker = MosquittoProcess(workdir=Path(tempfile.mkdtemp(prefix="wt-bench-mosq-"))).start()
    clock = SimClock()
    devices = home_devices(n_devices)
    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": "gw-bench", "data_dir": tempfile.mkdtemp(prefix="wt-bench-gw-")},
        "uplink": {"port": broker.port, "ack_timeout_s": 3600, "health_interval_s": 60},
        "status": {"port": 0}, "discovery": {"enabled": False},
        "supervision": {"silent_after_s": 600, "tick_s": 1},
        "devices": {d: {"role": r.name.lower(), "key": k.hex()} for d, r, k in devices}})
    rt = bootstrap(cfg, clock=clock, loop=loop, advertise=False)
    # one advert per event: real-time repeat gaps would be minutes of simulated time
    home = EmulatedHome(loop, clock, devices, heartbeat_s=60.0, retry_s=30.0, advert_repeats=1)
    rt.attach_emulated(home)
    clink = make_console_link("127.0.0.1", broker.port, client_id="bench-console", dispatch=loop.call_soon_threadsafe)
    console = ResponseConsole(clink, clock=clock, out=io.StringIO()).start()
    clink.start()
    await rt.async_start()
    t_wait = time.monotonic()
    while not (clink.connected and rt.uplink_connected()) and time.monotonic() - t_wait < 15:
        await asyncio.sleep(0.05)
    home.boot()
    rss_start = rss_mb()
    t0 = time.monotonic()
    emitted = 0
    progress_every = max(1, simulated_s // 6)
    for s in range(simulated_s):
        clock.advance(1.0)
        home.tick()
        for dev in home:
            r = rng.random()
            if r < 1 / 600:                       # an event every ~10 minutes
                emitted += 1
                if dev.role is Role.BUTTON or dev.role is Role.FALL:
                    dev.emit(EventCode.BUTTON_CANCEL if dev.role is Role.BUTTON else EventCode.FALL_CANCELLED,
                             {} if dev.role is Role.BUTTON else {"peak_cg": 200, "placement": 0})
                elif dev.role is Role.BED:
                    (dev.in_bed if rng.random() < 0.5 else dev.out_of_bed)()
                elif dev.role is Role.DOOR:
                    dev.close()
                elif dev.role is Role.DISPENSER:
                    dev.dose_taken(1, 480)
                else:
                    dev.position()
            elif r < 1 / 600 + 1 / 3600 and isinstance(dev, FrameDevice):   # ~1 alarm per device-hour
                emitted += 1
                dev.emit(EventCode.BUTTON_PRESS) if dev.role is Role.BUTTON else dev.emit(
                    EventCode.TAMPER)
        rt.engine.tick()
        await asyncio.sleep(0.001)
        if (s + 1) % progress_every == 0:
            print(f"  simulated {s + 1:5d} s  rss {rss_mb():6.1f} MB  journal {rt.writer.depth().total:6d} events"
                  f"  console {len(console.stats.alarms)} alarms / {len(console.stats.events)} events",
                  file=sys.stderr, flush=True)
    # let the tail drain
    deadline = time.monotonic() + 20
    while (rt.forwarder.status().backlog or home.unacked()) and time.monotonic() < deadline:
        clock.advance(1.0)
        home.tick()
        await asyncio.sleep(0.02)
    wall = time.monotonic() - t0
    result = {
        "devices": n_devices, "simulated_s": simulated_s, "rss_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(rss_mb("VmHWM"), 1), "rss_at_start_mb": round(rss_start, 1),
        "events_emitted": emitted, "journal_events": rt.writer.depth().total,
        "delivered_unique": len(console.stats.alarms) + len(console.stats.events),
        "device_unacked": home.unacked(), "wall_s": round(wall, 1),
    }
    await home.stop()
    await rt.async_stop()
    clink.stop()
    broker.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--simulated-s", type=int, default=3600)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    base = baseline_rss_mb()
    print(f"baseline (bare interpreter + same imports): {base:.1f} MB", file=sys.stderr)
    res = asyncio.run(run(args.devices, args.simulated_s, args.seed))
    res["baseline_rss_mb"] = round(base, 1)
    res["gateway_over_baseline_mb"] = round(res["rss_mb"] - base, 1)
    res["target_rss_mb"] = 60
    print(f"RSS {res['rss_mb']} MB (peak {res['peak_rss_mb']} MB), baseline {base:.1f} MB, "
          f"{res['events_emitted']} events, {res['journal_events']} journaled, wall {res['wall_s']} s", file=sys.stderr)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
