"""Shared bench helpers: a private broker, the platform side (the test kit's platform
simulator, in its own process), bare-paho baselines.

Benches may import paho directly (they are measurement tools, not domain code).
"""
from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from gateway.testing.broker import MosquittoProcess  # noqa: E402
from gateway.testing.platform import PlatformSim  # noqa: E402


def start_broker() -> MosquittoProcess:
    return MosquittoProcess().start()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} p50={percentile(values, 50):.3f} p90={percentile(values, 90):.3f} "
            f"p99={percentile(values, 99):.3f} max={max(values) if values else float('nan'):.3f} "
            f"mean={statistics.fmean(values) if values else float('nan'):.3f}")


def start_receiver(host: str, port: int, topic: str, *, ack: bool = False, client_id: str = "bench-rx") -> PlatformSim:
    """The platform side of a bench: the test kit's platform simulator on its own bare paho
    connection, subscribed to ``topic``; de-duplicates on event_id, acks alarms if ``ack``.
    Counts and the order of first arrivals only (no history: it may see 10^5 messages)."""
    return PlatformSim.on_broker(host, port, client_id=client_id, by="bench", auto_ack=ack,
                                 history=False).start(filters=(topic,), timeout_s=30)


class ReceiverProcess:
    """:func:`start_receiver` in its own process (so its JSON parsing does not compete for
    the measured process's GIL). ``report()`` returns its counts."""

    def __init__(self, host: str, port: int, topic: str, *, ack: bool = False) -> None:
        import subprocess

        self.p = subprocess.Popen([sys.executable, __file__, "receive", host, str(port), topic, "1" if ack else "0",
                                   f"bench-rx-{id(self):x}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None and self.p.stdout.readline().strip() == "READY"

    def report(self, expect: int = 0, timeout_s: float = 30.0) -> dict:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(f"report {expect} {timeout_s}\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def stop(self) -> None:
        try:
            if self.p.stdin is not None:
                self.p.stdin.close()
            self.p.wait(5)
        except Exception:  # noqa: BLE001 - teardown
            self.p.kill()


def _receive_main(host: str, port: str, topic: str, ack: str, client_id: str) -> None:
    rx = start_receiver(host, int(port), topic, ack=ack == "1", client_id=client_id)
    print("READY", flush=True)
    for line in sys.stdin:
        _, expect, timeout_s = line.split()
        if int(expect):
            rx.wait(lambda sim: len(sim.order) >= int(expect), float(timeout_s))
        out = {"unique": len(set(rx.order)), "raw": rx.deliveries,
               "duplicates_after_dedup": rx.duplicates_after_dedup(), "order": list(rx.order)}
        print(json.dumps(out), flush=True)
    rx.stop()


def bare_client(host: str, port: int, client_id: str, max_inflight: int = 20) -> tuple[mqtt.Client, dict]:
    state: dict = {"acked": {}, "cv": threading.Condition()}

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, props: object) -> None:
        with state["cv"]:
            state["acked"][mid] = time.perf_counter()
            state["cv"].notify_all()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_publish = on_publish
    c.max_inflight_messages_set(max_inflight)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    return c, state


def baseline_latency_ms(host: str, port: int, n: int, payload: bytes, gap_s: float = 0.002) -> list[float]:
    """Bare paho (loop_start thread): publish one QoS 1 message, time to its PUBACK."""
    c, st = bare_client(host, port, "bench-baseline-lat")
    time.sleep(0.3)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        info = c.publish("bench/baseline", payload, qos=1)
        with st["cv"]:
            st["cv"].wait_for(lambda: info.mid in st["acked"], 5)
            out.append((st["acked"].pop(info.mid) - t0) * 1000.0)
        time.sleep(gap_s)
    c.loop_stop()
    c.disconnect()
    return out


def baseline_throughput(host: str, port: int, payloads: list[bytes], max_inflight: int) -> float:
    """Bare paho QoS 1 publisher (loop_start thread) with flow control: at most
    ``max_inflight`` messages un-PUBACKed (a semaphore released in on_publish), like the
    forwarder's replay window. Publishing everything at once instead would hit paho's
    O(n) scan of its queue per PUBACK and make the baseline look far worse than it is.
    Returns messages/s until the last PUBACK."""
    n = len(payloads)
    window = threading.Semaphore(max_inflight)
    done = threading.Event()
    count = [0]

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, props: object) -> None:
        count[0] += 1
        window.release()
        if count[0] >= n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline-tp", protocol=mqtt.MQTTv5)
    c.on_publish = on_publish
    c.max_inflight_messages_set(0)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    for payload in payloads:
        window.acquire()
        c.publish("bench/baseline", payload, qos=1)
    done.wait(600)
    dt = time.perf_counter() - t0
    c.loop_stop()
    c.disconnect()
    return n / dt


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "receive":
    _receive_main(*sys.argv[2:])
