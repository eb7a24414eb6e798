"""Staged rollout against N emulated gateways; last line is JSON.

    python bench/rollout.py --gateways 10000                 # healthy fleet: all waves complete
    python bench/rollout.py --gateways 10000 --fail-rate 0.05  # planted failures: halts in wave 1
    python bench/rollout.py --gateways 500 --mqtt             # through a real Mosquitto

Emulated gateways are in-process by default (fleet.upgrades.EmulatedGateway called via
InProcessTransport: the same wt.cmd/1 / wt.cmd-result/1 bytes, signature and hash
checks as over MQTT, no broker hop). ``--mqtt`` starts a private Mosquitto
(gateway/testing/broker.py) and runs the rollout over it with one MQTT client hosting all
emulated gateways. Progress goes to stderr; the last stdout line is
``{"duration_s": ..., "halted_on_error": ..., ...}``.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.upgrades import (EmulatedGateway, InProcessTransport, RolloutEngine, RolloutEvent, RolloutPlan,  # noqa: E402
                            RolloutState, Target, Unit, UnitState, generate_key, load_public, run_rollout, sign)


class WallClock:
    def time(self) -> float:
        return time.time()


def bar(p: dict, width: int = 30) -> str:
    frac = p["done"] / max(p["total"], 1)
    fill = int(frac * width)
    return (f"\r[{'#' * fill}{'.' * (width - fill)}] {p['done']}/{p['total']} wave {p['wave']}/{p['waves']} "
            f"{p['state']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", type=int, default=10000)
    ap.add_argument("--fail-rate", type=float, default=0.0, help="fraction of gateways whose install fails")
    ap.add_argument("--waves", default="0.01,0.1,0.5,1.0", help="cumulative wave fractions (first = canary)")
    ap.add_argument("--error-threshold", type=float, default=0.02)
    ap.add_argument("--success-threshold", type=float, default=0.95)
    ap.add_argument("--max-in-flight", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mqtt", action="store_true", help="run over a private Mosquitto")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)

    priv, pub_pem = generate_key()
    pub = load_public(pub_pem)
    artifact = bytes(random.Random(a.seed).getrandbits(8) for _ in range(64 * 1024))
    signed = sign(artifact, "gateway-0.2.0.whl", Target.GATEWAY, "0.2.0", priv)
    url = "https://fleet.example/artifacts/gateway-0.2.0.whl"
    ids = [f"gw-{i:012x}" for i in range(a.gateways)]
    bad = set(random.Random(a.seed + 1).sample(ids, int(round(a.fail_rate * len(ids)))))
    from contracts.control import generate_key as control_keypair, load_private as control_private
    from contracts.control import load_public as control_public
    from fleet.control import ControlSigner

    c_priv, c_pub = control_keypair()            # the fleet's control key: every command is signed and verified
    signer = ControlSigner(control_private(c_priv))
    gws = {g: EmulatedGateway(g, [pub], {url: artifact}.__getitem__, fail_phase="install" if g in bad else None,
                              fleet_key=control_public(c_pub))
           for g in ids}
    plan = RolloutPlan(waves=tuple(float(x) for x in a.waves.split(",")), error_threshold=a.error_threshold,
                       success_threshold=a.success_threshold, max_in_flight=a.max_in_flight)
    engine = RolloutEngine.create("bench-ro", plan, [Unit(g) for g in ids], WallClock(), seed=a.seed)
    last = [0.0]

    def progress(p: dict) -> None:
        now = time.monotonic()
        if not a.quiet and (now - last[0] > 0.2 or p["state"] != "running"):
            last[0] = now
            print(bar(p), end="", file=sys.stderr, flush=True)

    broker = emu = fleet = None
    t0 = time.perf_counter()
    try:
        if a.mqtt:
            from fleet.mqtt import MqttClient
            from fleet.upgrades import MqttTransport, serve_mqtt
            from gateway.testing.broker import MosquittoProcess

            broker = MosquittoProcess().start()
            emu = MqttClient(broker.host, broker.port, client_id="bench-emulated-gateways").connect()
            serve_mqtt(emu, gws)
            fleet = MqttClient(broker.host, broker.port, client_id="bench-fleet").connect()
            transport = MqttTransport(fleet)
        else:
            transport = InProcessTransport(gws)
        t0 = time.perf_counter()
        engine.control(RolloutEvent.START)
        stats = run_rollout(engine, transport, release=signed, artifact_url=url, on_progress=progress, signer=signer)
        duration = time.perf_counter() - t0
    finally:
        for c in (fleet, emu):
            if c is not None:
                c.close()
        if broker is not None:
            broker.stop()
    if not a.quiet:
        print(file=sys.stderr)
    halted = engine.state is RolloutState.HALTED
    counts = engine.counts()
    out = {"duration_s": round(duration, 3), "halted_on_error": halted,
           "state": engine.state.value, "gateways": a.gateways, "planted_failures": len(bad),
           "halted_wave": engine.wave + 1 if halted else None, "waves": engine.wave_count,
           "wave_sizes": [len(engine.wave_units(i)) for i in range(engine.wave_count)],
           "touched": engine.touched(), "succeeded": counts[UnitState.SUCCEEDED],
           "failed": counts[UnitState.FAILED], "never_sent": counts[UnitState.QUEUED] + counts[UnitState.CANCELLED],
           "halt_reason": engine.halt_reason, "commands_sent": stats.sent, "transport": "mqtt" if a.mqtt else "in-process"}
    if halted and not a.quiet:
        print(f"halted at wave {out['halted_wave']} of {out['waves']}: {engine.halt_reason}; "
              f"{out['touched']} of {a.gateways} gateways touched", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
