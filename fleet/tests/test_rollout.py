"""Staged rollouts against in-process emulated gateways (same wire bytes as over MQTT)."""
from __future__ import annotations

import random

import pytest

from fleet.upgrades import (EmulatedGateway, InProcessTransport, RolloutEngine, RolloutError, RolloutEvent,
                            RolloutPlan, RolloutState, Target, Unit, UnitEvent, UnitState, assign_waves, generate_key,
                            load_public, run_rollout, sign)


@pytest.fixture(scope="module")
def release():
    priv, pub = generate_key()
    art = b"gateway-0.2.0" * 64
    return sign(art, "gw-0.2.0.whl", Target.GATEWAY, "0.2.0", priv), sign(
        b"gateway-0.1.0", "gw-0.1.0.whl", Target.GATEWAY, "0.1.0", priv), load_public(pub), art


def fleet_of(n, pub, art, *, fail=(), fail_phase="install", offline=()):
    arts = {"fleet://a/new": art, "fleet://a/old": b"gateway-0.1.0"}
    gws = {}
    for i in range(n):
        gid = f"gw-{i:04d}"
        if gid in offline:
            continue
        gws[gid] = EmulatedGateway(gid, [pub], arts.__getitem__, fail_phase=fail_phase if gid in fail else None)
    return gws


def test_assign_waves_cumulative_canary_and_validation():
    units = [Unit(f"gw-{i}") for i in range(1000)]
    waves = assign_waves(units, RolloutPlan(waves=(0.01, 0.1, 1.0)))
    assert [len(w) for w in waves] == [10, 90, 900]
    assert sorted(u for w in waves for u in w) == sorted(units)
    assert assign_waves(units, RolloutPlan(), seed=1) == assign_waves(units, RolloutPlan(), seed=1)
    with pytest.raises(RolloutError, match="increasing fractions"):
        RolloutPlan(waves=(0.5, 0.1, 1.0))


def test_rollout_completes_all_waves(release, make_clock):
    signed, _, pub, art = release
    gws = fleet_of(300, pub, art)
    eng = RolloutEngine.create("ro-1", RolloutPlan(waves=(0.02, 0.2, 1.0), max_in_flight=50),
                               [Unit(g) for g in gws], make_clock(1000.0))
    eng.control(RolloutEvent.START)
    order = []

    class Recording(InProcessTransport):
        def send(self, topic, payload):
            order.append(eng.units[Unit(topic.split("/")[3])].wave)
            super().send(topic, payload)

    run_rollout(eng, Recording(gws), release=signed, artifact_url="fleet://a/new")
    assert eng.state is RolloutState.COMPLETED and eng.progress()["wave"] == 3
    assert all(g.version == "0.2.0" for g in gws.values())
    assert order == sorted(order) and order[0] == 0 and len(order) == 300   # wave by wave


def test_planted_5_percent_failures_halt_in_canary_and_later_waves_untouched(release, make_clock):
    signed, _, pub, art = release
    ids = [f"gw-{i:04d}" for i in range(2000)]
    bad = set(random.Random(7).sample(ids, 100))
    gws = fleet_of(2000, pub, art, fail=bad)
    eng = RolloutEngine.create("ro-2", RolloutPlan(waves=(0.05, 0.25, 1.0), error_threshold=0.02),
                               [Unit(g) for g in ids], make_clock(1000.0))
    eng.control(RolloutEvent.START)
    run_rollout(eng, InProcessTransport(gws), release=signed, artifact_url="fleet://a/new")
    assert eng.state is RolloutState.HALTED and eng.wave == 0
    assert "wave 1" in eng.halt_reason and "error threshold" in eng.halt_reason
    assert eng.touched() <= len(eng.wave_units(0))
    later = [r for r in eng.units.values() if r.wave > 0]
    assert all(r.state is UnitState.QUEUED for r in later)
    assert sum(g.installs for g in gws.values()) <= len(eng.wave_units(0))
    failed = [r for r in eng.units.values() if r.state is UnitState.FAILED]
    assert failed and all(r.unit.gateway_id in bad for r in failed)
    assert all(gws[r.unit.gateway_id].version == "0.1.0" for r in failed)   # rolled back on the gateway


def test_tampered_artifact_fails_at_download_and_nothing_installed(release, make_clock):
    signed, _, pub, art = release
    gws = fleet_of(10, pub, art)
    for g in gws.values():
        g.fetch = lambda url: art[:-1] + b"!"
    eng = RolloutEngine.create("ro-3", RolloutPlan(waves=(1.0,)), [Unit(g) for g in gws], make_clock(1000.0))
    eng.control(RolloutEvent.START)
    run_rollout(eng, InProcessTransport(gws), release=signed, artifact_url="fleet://a/new")
    assert eng.state is RolloutState.HALTED
    assert all("SHA-256" in (r.error or "") for r in eng.units.values())
    assert sum(g.installs for g in gws.values()) == 0


def test_reapplying_same_deployment_is_noop_and_current_units_skip(release, make_clock):
    signed, _, pub, art = release
    gws = fleet_of(20, pub, art)
    gws["gw-0003"].version = "0.2.0"
    units = [Unit(g) for g in gws]
    eng = RolloutEngine.create("ro-4", RolloutPlan(waves=(1.0,)), units, make_clock(1000.0), current=[Unit("gw-0003")])
    eng.control(RolloutEvent.START)
    t = InProcessTransport(gws)
    run_rollout(eng, t, release=signed, artifact_url="fleet://a/new")
    assert eng.units[Unit("gw-0003")].state is UnitState.CURRENT and t.sent == 19
    installs = sum(g.installs for g in gws.values())
    # the same deployment again (e.g. a restarted runner re-sending): gateways de-duplicate cmd_id
    eng2 = RolloutEngine.create("ro-4", RolloutPlan(waves=(1.0,)), units, make_clock(1000.0))
    eng2.control(RolloutEvent.START)
    run_rollout(eng2, InProcessTransport(gws), release=signed, artifact_url="fleet://a/new")
    assert eng2.state is RolloutState.COMPLETED
    assert sum(g.installs for g in gws.values()) == installs
    assert eng.control(RolloutEvent.FINISH) is RolloutState.COMPLETED     # re-finish: no-op


def test_pause_resume_abort_and_timeouts(release, make_clock):
    signed, _, pub, art = release
    gws = fleet_of(100, pub, art, offline={"gw-0050"})
    clock = make_clock(1000.0)
    eng = RolloutEngine.create("ro-5", RolloutPlan(waves=(0.1, 1.0), max_in_flight=5, unit_timeout_s=60,
                                                   error_threshold=0.05), [Unit(f"gw-{i:04d}") for i in range(100)],
                               clock)
    eng.control(RolloutEvent.START)
    script = iter([None, RolloutEvent.PAUSE])
    t = InProcessTransport(gws)
    run_rollout(eng, t, release=signed, artifact_url="fleet://a/new", control=lambda: next(script, None),
                stop_when_paused=True)
    assert eng.state is RolloutState.PAUSED
    sent = t.sent
    assert eng.due() == [] and t.sent == sent                   # paused: nothing more is sent
    eng.control(RolloutEvent.RESUME)

    def ctl():
        clock.t += 30                                           # offline gateway times out after 60 s
        return None
    run_rollout(eng, t, release=signed, artifact_url="fleet://a/new", control=ctl)
    assert eng.state is RolloutState.COMPLETED                  # 1 timeout in 90 is under 5 %
    assert "no result within" in eng.units[Unit("gw-0050")].error
    eng2 = RolloutEngine.create("ro-6", RolloutPlan(waves=(0.1, 1.0)), [Unit(f"gw-{i:04d}") for i in range(100)],
                                clock)
    eng2.control(RolloutEvent.START)
    eng2.control(RolloutEvent.ABORT)
    assert eng2.counts()[UnitState.CANCELLED] == 100 and eng2.due() == []


def test_rollback_reinstalls_previous_release(release, make_clock):
    signed, old, pub, art = release
    gws = fleet_of(30, pub, art)
    eng = RolloutEngine.create("ro-7", RolloutPlan(waves=(1.0,)), [Unit(g) for g in gws], make_clock(1000.0))
    eng.control(RolloutEvent.START)
    t = InProcessTransport(gws)
    run_rollout(eng, t, release=signed, artifact_url="fleet://a/new")
    assert {g.version for g in gws.values()} == {"0.2.0"}
    eng.control(RolloutEvent.ROLLBACK)
    run_rollout(eng, t, release=signed, artifact_url="fleet://a/new", revert_release=old, revert_url="fleet://a/old")
    assert eng.state is RolloutState.ROLLED_BACK
    assert {g.version for g in gws.values()} == {"0.1.0"}
    assert eng.counts()[UnitState.REVERTED] == 30


# ---------------------------------------------------------------- success means: the unit reports the new version

def test_a_gateway_that_commits_but_keeps_the_old_version_fails_not_succeeds(release, make_clock):
    """The field report: 'committed, slot b' in 80 ms while health still said 0.1.0. Such a
    unit never becomes succeeded; it fails when its time is up, naming what it reported."""
    signed, _, pub, art = release
    gws = fleet_of(10, pub, art)
    gws["gw-0004"].reports_version = False
    clock = make_clock(1000.0)
    eng = RolloutEngine.create("ro-v1", RolloutPlan(waves=(1.0,), unit_timeout_s=60, error_threshold=0.2),
                               [Unit(g) for g in gws], clock)
    eng.control(RolloutEvent.START)
    t = InProcessTransport(gws)

    def ctl():
        if eng.units[Unit("gw-0004")].state is UnitState.CONFIRMING:
            clock.t += 30
        return None
    stats = run_rollout(eng, t, release=signed, artifact_url="fleet://a/new", control=ctl)
    bad = eng.units[Unit("gw-0004")]
    assert bad.state is UnitState.FAILED and bad.reported == "0.1.0"
    assert "did not report version 0.2.0" in bad.error and "last reported: 0.1.0" in bad.error
    assert eng.counts()[UnitState.SUCCEEDED] == 9 and stats.version_reports >= 10
    assert all(eng.units[Unit(g)].reported == "0.2.0" for g in gws if g != "gw-0004")


def test_version_reports_count_only_after_the_command_and_may_precede_committed(make_clock):
    clock = make_clock(1000.0)
    gw, other = Unit("gw-a"), Unit("gw-b")
    eng = RolloutEngine.create("ro-v2", RolloutPlan(waves=(1.0,)), [gw, other], clock)
    eng.target_version = "0.2.0"
    eng.control(RolloutEvent.START)
    eng.observe_version("gw-a", "0.2.0")          # nothing sent yet (e.g. a retained state): ignored
    assert eng.units[gw].reported is None
    assert {u for u, _ in eng.due()} == {gw, other}
    eng.observe_version("gw-a", "0.2.0")          # the new gateway publishes health, then commits
    eng.report(gw, UnitEvent.COMMITTED)
    assert eng.units[gw].state is UnitState.SUCCEEDED
    eng.report(other, UnitEvent.COMMITTED)
    assert eng.units[other].state is UnitState.CONFIRMING
    eng.observe_version("gw-b", "0.1.0")
    assert eng.units[other].state is UnitState.CONFIRMING
    eng.observe_version("gw-b", "0.2.0")
    assert eng.units[other].state is UnitState.SUCCEEDED and eng.state is RolloutState.COMPLETED


def test_version_reports_decoded_from_health_and_online_state_only():
    from contracts.payloads import encode_state
    from fleet.upgrades._protocol import decode_result, decode_version_report, encode_result

    on = encode_state(gateway_id="gw-a", online=True, version="0.2.0", since=1.7e9)
    off = encode_state(gateway_id="gw-a", online=False, version="0.1.0", since=1.7e9)
    assert decode_version_report("wt/v1/gw/gw-a/state", on, 0.0).version == "0.2.0"
    assert decode_version_report("wt/v1/gw/gw-a/state", off, 0.0) is None     # a last will: old connection
    health = (b'{"schema":"wt.health/1","gateway":"gw-a","at":"2026-01-01T00:00:00Z","version":"0.2.0",'
              b'"devices":[{"device":"a4c1380a1b2c","fw":"1.3.0"}]}')
    vr = decode_version_report("wt/v1/gw/gw-a/health", health, 0.0)
    assert vr.version == "0.2.0" and vr.devices == (("a4c1380a1b2c", "1.3.0"),)
    assert decode_version_report("wt/v1/gw/gw-a/health", b"\xff garbage", 0.0) is None
    # a sensor's ok/committed comes from its gateway after the device's HELLO with the version
    dev = decode_result("wt/v1/gw/gw-a/cmd/result", encode_result(
        "r:gw-a/d:u", "ok", {"deployment": "r", "device": "d", "phase": "committed", "version": "1.3.0"}))
    assert dev.events == (UnitEvent.COMMITTED, UnitEvent.VERSION_REPORTED)
    gwr = decode_result("wt/v1/gw/gw-a/cmd/result", encode_result(
        "r:gw-a:u", "ok", {"deployment": "r", "device": None, "phase": "committed", "version": "0.2.0"}))
    assert gwr.events == (UnitEvent.COMMITTED,)
    rb = decode_result("wt/v1/gw/gw-a/cmd/result", encode_result(
        "r:gw-a:u", "error", {"deployment": "r", "device": None, "phase": "reboot", "rolled_back": True,
                              "error": "crash_at_start: gateway 0.2.0 (slot b) exited before it was running"}))
    assert rb.events == (UnitEvent.ERROR, UnitEvent.ROLLED_BACK) and rb.error.startswith("crash_at_start")
