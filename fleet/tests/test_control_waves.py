"""A group push in waves with a halt threshold (fleet/config/_waves.py, the rollout engine):
each gateway's outcome — applied, rejected, rolled back, silent — feeds the engine; over the
threshold the push halts and no later wave is pushed (F3: one bad push must not strand a
whole municipality)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from fleet.config import ConfigService, MemoryConfigStore, Scope
from fleet.config._waves import push_in_waves, wave_plan
from fleet.upgrades import RolloutState, UnitState

pytestmark = pytest.mark.security


class Fleet:
    """Gateways that answer a push at once: applied, or rejected with their reason."""

    def __init__(self, verdicts: dict[str, str | None]) -> None:
        self.verdicts = verdicts            # gw -> None (applies) | error (rejects)
        self.pushed: list[str] = []
        self._v: dict[str, int] = {}
        self._reports: dict[str, tuple[int, str, str | None]] = {}

    def push(self, gw: str) -> int:
        self.pushed.append(gw)
        v = self._v[gw] = self._v.get(gw, 0) + 1
        err = self.verdicts.get(gw)
        if err != "silent":
            self._reports[gw] = (v, "applied" if err is None else "rejected", err)
        return v

    def reports(self):
        return dict(self._reports)


def test_wave_plan_cuts_groups_of_the_wave_size():
    p = wave_plan(10, 3, 0.0, 60)
    assert p.waves == (0.3, 0.6, 0.9, 1.0) and p.max_in_flight == 3 and p.success_threshold == 1.0


def test_a_rolled_back_gateway_halts_the_push_before_the_next_wave(clock):
    gws = [f"gw-{i:02d}" for i in range(10)]
    f = Fleet({})
    first = push_in_waves(gws, push=f.push, reports=f.reports, clock=clock, wave_size=3, error_threshold=0.0,
                          sleep=clock.advance, seed=7)
    assert first.engine.state is RolloutState.COMPLETED and sorted(f.pushed) == gws
    # the same group again; one gateway of the second wave cannot reach the broker and rolls back
    order = [r["gateway"] for r in first.rows()]
    victim = order[4]
    f2 = Fleet({victim: "configuration version 2 rolled back: no connection to the broker (connection refused)"})
    out = push_in_waves(gws, push=f2.push, reports=f2.reports, clock=clock, wave_size=3, error_threshold=0.0,
                        sleep=clock.advance, seed=7)
    assert out.halted and out.engine.state is RolloutState.HALTED and "wave 2" in out.engine.halt_reason
    assert len(f2.pushed) == 6 and set(f2.pushed) == set(order[:6])       # waves 3 and 4 never pushed
    rows = {r["gateway"]: r for r in out.rows()}
    assert rows[victim]["state"] == "failed" and "rolled back" in rows[victim]["error"]
    assert all(rows[g]["state"] == "queued" for g in order[6:])


def test_threshold_tolerates_failures_up_to_it_and_silence_is_a_failure(clock):
    gws = [f"gw-{i:02d}" for i in range(8)]
    f = Fleet({"gw-03": "rules.bed.max_out_min: not supported by this gateway", "gw-06": "silent"})
    out = push_in_waves(gws, push=f.push, reports=f.reports, clock=clock, wave_size=4, error_threshold=0.5,
                        timeout_s=30, sleep=clock.advance, poll_s=5)
    states = {r["gateway"]: r["state"] for r in out.rows()}
    assert states["gw-03"] == "failed" and states["gw-06"] == "failed"
    assert out.engine.state is RolloutState.COMPLETED                    # at most 2 of 4 per wave: not above 50 %
    assert [r["error"] for r in out.rows() if r["gateway"] == "gw-06"][0].startswith("no result within")


def test_group_push_over_mosquitto_signed_with_the_fleet_key(mosquitto, clock):
    """ConfigService pushes (signed, retained) through a real broker to gateways that answer with
    wt.config-applied/1; the second wave is never pushed after a rejection."""
    from contracts.control import Opened, open_envelope
    from fleet.control import ControlSigner
    from fleet.mqtt import MqttClient

    gws = [f"gw-w{i}" for i in range(6)]
    store = MemoryConfigStore(membership={g: ("0301", "night") for g in gws})
    svc = ConfigService(store, clock)
    svc.set_key(Scope.GROUP, "night", "rules.bed.max_out_min", 20, by="t")
    pub_key = ControlSigner.from_env().public_pem
    from contracts.control import load_public

    key = load_public(pub_key)
    reports: dict[str, tuple[int, str, str | None]] = {}
    lock = threading.Lock()
    gw_client = MqttClient(mosquitto.host, mosquitto.port, client_id="fake-gateways").connect()
    bad = set()

    def on_config(topic: str, payload: bytes) -> None:
        gw = topic.split("/")[3]
        o = open_envelope(payload, gateway_id=gw, keys=[key], now=clock.time())     # the fleet's (fake) time
        if not isinstance(o, Opened):
            return
        v = json.loads(o.body)["version"]
        ok = gw not in bad
        gw_client.publish_nowait(f"wt/v1/gw/{gw}/config/applied", json.dumps({
            "schema": "wt.config-applied/1", "version": v, "status": "applied" if ok else "rejected",
            "error": None if ok else f"configuration version {v} rolled back: no connection to the broker"}).encode(),
            qos=1)
    gw_client.subscribe("wt/v1/gw/+/config", on_config)
    fleet = MqttClient(mosquitto.host, mosquitto.port, client_id="fleet-push").connect()

    def on_applied(topic: str, payload: bytes) -> None:
        d = json.loads(payload)
        with lock:
            reports[topic.split("/")[3]] = (d["version"], d["status"], d["error"])
    fleet.subscribe("wt/v1/gw/+/config/applied", on_applied)
    try:
        order = [r["gateway"] for r in push_in_waves(gws, push=lambda g: 0, reports=lambda: {g: (0, "applied", None)
                                                                                        for g in gws},
                                                     clock=clock, wave_size=2, error_threshold=0.0,
                                                     sleep=clock.advance, seed=3).rows()]
        bad.add(order[2])                                              # wave 2's first gateway rolls back

        def snapshot():
            with lock:
                return dict(reports)
        out = push_in_waves(gws, push=lambda g: svc.push(g, fleet).version, reports=snapshot,
                            clock=clock, wave_size=2, error_threshold=0.0, timeout_s=20, poll_s=0.05,
                            sleep=lambda s: (time.sleep(s), clock.advance(s)), seed=3)
        states = {r["gateway"]: r["state"] for r in out.rows()}
        assert out.halted and states[order[2]] == "failed", out.rows()
        assert [states[g] for g in order[:2]] == ["succeeded", "succeeded"]
        assert all(states[g] == "queued" for g in order[4:]) and all(store.latest_version(g) is None
                                                                       for g in order[4:])
        assert UnitState.FAILED.value == "failed"
    finally:
        for g in gws:
            fleet.publish(f"wt/v1/gw/{g}/config", b"", qos=1, retain=True)
        fleet.close()
        gw_client.close()
