"""A staged rollout talking to emulated gateways through a real Mosquitto."""
from __future__ import annotations

import time

from fleet.clock import SystemClock
from fleet.mqtt import MqttClient
from fleet.upgrades import (EmulatedGateway, MqttTransport, RolloutEngine, RolloutEvent, RolloutPlan, RolloutState,
                            Target, Unit, UnitState, generate_key, load_public, run_rollout, serve_mqtt, sign)



def test_rollout_over_mosquitto_completes_and_halts_on_errors(mosquitto):
    priv, pub_pem = generate_key()
    pub = load_public(pub_pem)
    art = b"fw-bed-1.3.0" * 300
    signed = sign(art, "bed.tar", Target.FW_BED, "1.3.0", priv)
    units = [Unit(f"gw-{i:03d}", f"{i:012x}") for i in range(60)]
    gws = {u.gateway_id: EmulatedGateway(u.gateway_id, [pub], {"https://fleet/a/bed": art}.__getitem__,
                                         device_fw={u.device_id: "1.2.0"}) for u in units}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated-gateways").connect()
    serve_mqtt(emu, gws)
    fleet = MqttClient(mosquitto.host, mosquitto.port, client_id="fleet-rollout").connect()
    try:
        eng = RolloutEngine.create("ro-mqtt-1", RolloutPlan(waves=(0.1, 0.5, 1.0), max_in_flight=20),
                                   units, SystemClock())
        eng.control(RolloutEvent.START)
        t0 = time.monotonic()
        stats = run_rollout(eng, MqttTransport(fleet), release=signed, artifact_url="https://fleet/a/bed",
                            control=lambda: None if time.monotonic() - t0 < 30 else RolloutEvent.ABORT)
        assert eng.state is RolloutState.COMPLETED, eng.progress()
        assert stats.sent == 60 and stats.rejected == 0
        assert all(g.device_fw[u.device_id] == "1.3.0" for u, g in zip(units, gws.values()))

        # second rollout (to 1.4.0) where the canary's ota fails in install: halts after wave 1
        signed2 = sign(art, "bed.tar", Target.FW_BED, "1.4.0", priv)
        for g in gws.values():
            g.fail_phase = "install"
        eng2 = RolloutEngine.create("ro-mqtt-2", RolloutPlan(waves=(0.1, 1.0), error_threshold=0.05), units, SystemClock())
        eng2.control(RolloutEvent.START)
        run_rollout(eng2, MqttTransport(fleet), release=signed2, artifact_url="https://fleet/a/bed")
        assert eng2.state is RolloutState.HALTED and eng2.wave == 0
        assert eng2.touched() == len(eng2.wave_units(0)) == 6
        assert eng2.counts()[UnitState.FAILED] == 6 and eng2.counts()[UnitState.QUEUED] == 54
    finally:
        fleet.close()
        emu.close()
