"""A fleet rollout of the gateway software to the REAL gateway daemon (docs/upgrades.md).

The whole chain of issue 11 item 2: the fleet's rollout engine and runner
(``fleet.upgrades.run_rollout`` over ``MqttTransport``, what ``fleet rollout run`` drives)
→ a private Mosquitto → the gateway installed as the service runs it
(:class:`gateway.testing.supervisor.ServiceRig`: the launcher under a ``Restart=always``
supervisor, A/B slots, a factory release 0.1.0) → the new slot's daemon → its health and
state back to the fleet. Here, and not in gateway/tests or fleet/tests, because it needs
both sides (those packages never import each other).

- a good release: the unit is ``succeeded`` with the new version reported by the gateway
  (``UnitRecord.reported``; without it a ``committed`` unit stays ``confirming`` and fails:
  fleet/tests/test_rollout.py);
- the field report (a signed 20 kB random file as "gateway 0.2.0"): ``failed``, nothing switched;
- a release that crashes at start: ``failed`` with ``crash_at_start``, 0.1.0 runs again.
"""
from __future__ import annotations

import time

import pytest

from fleet.clock import SystemClock
from fleet.control import ControlSigner
from fleet.mqtt import MqttClient
from fleet.upgrades import (MqttTransport, RolloutEngine, RolloutEvent, RolloutPlan, RolloutState, Unit, UnitState,
                            run_rollout)
from gateway.testing.supervisor import ServiceRig, build_release

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
GW = "gw-ab"


def rollout(rig: ServiceRig, broker_port: int, rollout_id: str, version: str, blob: bytes, *,
            timeout_s: float = 120.0):
    """One unit (the rig's gateway), run by the fleet's engine and runner over the broker."""
    client = MqttClient("127.0.0.1", broker_port, client_id=f"t-fleet-{rollout_id}").connect()
    try:
        eng = RolloutEngine.create(rollout_id, RolloutPlan(waves=(1.0,), unit_timeout_s=timeout_s),
                                   [Unit(GW)], SystemClock())
        eng.control(RolloutEvent.START)
        t0 = time.monotonic()

        stats = run_rollout(eng, MqttTransport(client), release=rig.signed(version, blob),
                            artifact_url="fleet://release", inline_artifact=blob,
                            signer=ControlSigner.from_file(rig.fleet.private_path),   # the key the rig's gateway trusts
                            control=lambda: None if time.monotonic() - t0 < timeout_s + 30 else RolloutEvent.ABORT)
    finally:
        client.close()
    return eng, eng.units[Unit(GW)], stats


def test_fleet_rollout_succeeds_only_on_the_reported_version_and_fails_a_crashing_release(tmp_path, mosquitto):
    rig = ServiceRig(tmp_path, mosquitto.port, gateway_id=GW)
    try:
        sup = rig.start()
        rig.wait_health("0.1.0")
        # the field report: 20 kB of random bytes, properly signed as "gateway 0.2.0"
        _, unit, _ = rollout(rig, mosquitto.port, "r-junk", "0.2.0", bytes(range(256)) * 80, timeout_s=30)
        assert unit.state is UnitState.FAILED and "not a complete .tar.gz" in unit.error, unit
        assert rig.state()["active"] == "a" and sup.exit_codes() == [None]

        # a release that crashes at start: failed, with the reason; 0.1.0 reports health again
        t_crash = time.time()
        broken = build_release("0.2.0", broken='raise RuntimeError("release 0.2.0 is broken at start")\n')
        _, unit, _ = rollout(rig, mosquitto.port, "r-crash", "0.2.0", broken)
        assert unit.state is UnitState.FAILED, (unit, rig.journal()[-4000:])
        assert unit.error.startswith("crash_at_start: gateway 0.2.0 (slot b) exited before it was running")
        assert "rolled back to gateway 0.1.0 (slot a)" in unit.error
        rig.wait_health("0.1.0", since=t_crash)
        assert sup.exit_codes()[:2] == [75, 1]

        # a good release: committed, then succeeded because its health says 0.2.0
        t_good = time.time()
        eng, unit, stats = rollout(rig, mosquitto.port, "r-good", "0.2.0", build_release("0.2.0"))
        assert unit.state is UnitState.SUCCEEDED and unit.reported == "0.2.0", (unit, rig.journal()[-4000:])
        assert stats.version_reports >= 1 and eng.state is RolloutState.COMPLETED
        assert rig.wait_health("0.2.0", since=t_good)
        assert rig.state()["active"] == "b" and rig.state()["version"] == "0.2.0"
        assert sup.exit_codes()[:3] == [75, 1, 75]
    finally:
        rig.close()
