"""Gateway A/B updates with the REAL daemon as processes (docs/upgrades.md "Gateway A/B").

The rig (:class:`gateway.testing.supervisor.ServiceRig`) is the installed layout in a
temporary directory: a factory release built like scripts/build-release.py builds one,
the launcher ``gateway/launch.py`` run by the test supervisor (systemd's
``Restart=always``), a private Mosquitto (optionally behind a TCP proxy that can cut the
uplink) and an observer that records what the fleet would see. Commands are the fleet's
``update`` (contracts.release.install_command), releases are built from this checkout
and signed with a key the gateway trusts. The fleet's rollout engine on the same rig:
hil_tests/test_gateway_ab.py.

Proved here:
- a good release: the daemon restarts into the new slot, its health says the new version
  before it commits; then a slot deleted by hand: the previous known good version starts;
- a signed 20 kB random file as "gateway 0.2.0" (the field report): refused, nothing switched;
- a release that crashes at start: rolled back by the launcher (``crash_at_start``);
- kill -9 between switch and commit: rolled back at the next start (``killed_before_commit``);
- no uplink for the new version: it rolls itself back at its deadline (``commit_deadline``).
"""
from __future__ import annotations

import shutil
import time

import pytest

from gateway.testing.supervisor import ServiceRig, build_release, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def rig(tmp_path, mosquitto):
    r = ServiceRig(tmp_path, mosquitto.port)
    yield r
    r.close()


@pytest.fixture
def proxied_rig(tmp_path, mosquitto):
    r = ServiceRig(tmp_path, mosquitto.port, proxy=True, deadline_s=8.0)
    yield r
    r.close()


def test_good_release_switches_reports_its_version_then_commits(rig):
    sup = rig.start()
    rig.wait_health("0.1.0")
    assert "installed the factory release 0.1.0 into slot a" in rig.journal()
    # the field report: a signed 20 kB random file as "gateway 0.2.0" is refused, nothing switches
    junk = bytes(range(256)) * 80
    out = rig.outcome(rig.send_update("r-junk", "0.2.0", junk))
    assert out["status"] == "error" and out["detail"]["reason"] == "bad_artifact", out
    assert "not a complete .tar.gz" in out["detail"]["error"] and out["detail"]["phase"] == "install"
    st = rig.state()
    assert (st["active"], st["pending"]) == ("a", None) and sup.exit_codes() == [None]
    assert not (rig.slots / "b").exists()

    t_sent = time.time()
    cid = rig.send_update("r-good", "0.2.0", build_release("0.2.0"))
    assert rig.outcome(cid)["status"] == "ok", rig.journal()[-4000:]
    assert rig.phases(cid) == [("progress", "downloaded"), ("progress", "installed"), ("progress", "rebooted"),
                               ("ok", "committed")]
    t_health = rig.wait_health("0.2.0", since=t_sent)
    t_committed = next(t for t, k, d in rig.seen() if k == "cmd/result" and d["status"] == "ok")
    assert t_health <= t_committed              # commit only after the new version's health was acknowledged
    assert sup.exit_codes() == [75, None]       # the old daemon exited "restart into the new slot"
    st = rig.state()
    assert (st["active"], st["version"], st["pending"]) == ("b", "0.2.0", None)
    assert st["previous"] == {"slot": "a", "version": "0.1.0"}
    assert (rig.slots / "current").resolve() == (rig.slots / "b").resolve()
    wait_for(lambda: rig.state()["unreported"] == [], 10, "stored result marked published")
    log = rig.journal()
    assert "starting gateway 0.2.0 from slot b: trial start 1 of 1" in log
    assert "update to gateway 0.2.0 committed in slot b" in log
    # the same deployment again (a re-run rollout): the stored result, nothing re-installed
    installed_at = (rig.slots / "b" / "release.json").stat().st_mtime_ns
    rig.send_update("r-good", "0.2.0", build_release("0.2.0"))
    wait_for(lambda: len(rig.results(cid)) == 5, 30, "repeated result")
    assert rig.results(cid)[-1]["status"] == "ok" and sup.exit_codes() == [75, None]
    assert (rig.slots / "b" / "release.json").stat().st_mtime_ns == installed_at

    # a slot deleted by hand: the previous known good version starts, and says so
    rig.stop()
    shutil.rmtree(rig.slots / "b")
    t_restart = time.time()
    rig.start()
    rig.wait_health("0.1.0", since=t_restart)
    assert "starting gateway 0.1.0 from slot a (the previous known good)" in rig.journal()
    assert rig.state()["active"] == "a"


def test_release_that_crashes_at_start_is_rolled_back_with_the_reason(rig):
    sup = rig.start()
    rig.wait_health("0.1.0")
    t_sent = time.time()
    cid = rig.send_update("r-crash", "0.2.0",
                          build_release("0.2.0", broken='raise RuntimeError("release 0.2.0 is broken at start")\n'))
    out = rig.outcome(cid)
    assert out["status"] == "error" and out["detail"]["rolled_back"] is True, out
    assert out["detail"]["reason"] == "crash_at_start" and out["detail"]["phase"] == "reboot"
    assert out["detail"]["error"].startswith("crash_at_start: gateway 0.2.0 (slot b) exited before it was running")
    assert "rolled back to gateway 0.1.0 (slot a)" in out["detail"]["error"]
    rig.wait_health("0.1.0", since=t_sent)
    assert "0.2.0" not in rig.health_versions(since=t_sent)
    assert sup.exit_codes()[:2] == [75, 1]       # 0.1.0 restarts into b; 0.2.0 dies at start
    st = rig.state()
    assert (st["active"], st["version"], st["pending"]) == ("a", "0.1.0", None)
    assert st["last_rollback"]["reason"] == "crash_at_start"
    assert (rig.slots / "current").resolve() == (rig.slots / "a").resolve()
    log = rig.journal()
    assert "RuntimeError: release 0.2.0 is broken at start" in log
    assert "wt-gateway launch: crash_at_start: gateway 0.2.0 (slot b)" in log


def test_kill9_between_switch_and_commit_rolls_back_at_the_next_start(proxied_rig):
    rig = proxied_rig
    sup = rig.start()
    rig.wait_health("0.1.0")
    cid = rig.send_update("r-kill", "0.2.0", build_release("0.2.0"))
    wait_for(lambda: ("progress", "rebooted") in rig.phases(cid), 60, "rebooted", debug=rig.journal)
    rig.proxy.blackhole()                        # the new version cannot reach the broker: it cannot commit
    sup.wait_runs(2)
    wait_for(lambda: (rig.state().get("pending") or {}).get("running_at"), 30, "trial process running",
             debug=rig.journal)
    assert rig.state()["pending"]["slot"] == "b"
    assert sup.kill9() is not None               # power cut before the commit
    sup.wait_runs(3)
    t_back = time.time()
    rig.proxy.heal()
    out = rig.outcome(cid)
    assert out["status"] == "error" and out["detail"]["reason"] == "killed_before_commit", out
    assert out["detail"]["rolled_back"] is True and out["detail"]["running"] == "0.1.0"
    rig.wait_health("0.1.0", since=t_back)
    assert sup.exit_codes()[:2] == [75, -9]
    st = rig.state()
    assert (st["active"], st["version"], st["pending"]) == ("a", "0.1.0", None)
    assert "wt-gateway launch: killed_before_commit: gateway 0.2.0 (slot b) was running" in rig.journal()


def test_new_version_without_uplink_rolls_itself_back_at_its_deadline(proxied_rig):
    rig = proxied_rig                            # commit_deadline_s = 8
    sup = rig.start()
    rig.wait_health("0.1.0")
    cid = rig.send_update("r-dead", "0.2.0", build_release("0.2.0"))
    wait_for(lambda: ("progress", "rebooted") in rig.phases(cid), 60, "rebooted", debug=rig.journal)
    rig.proxy.blackhole()
    sup.wait_runs(3, timeout_s=60)               # 0.1.0 → 0.2.0 (exits 75 at its deadline) → 0.1.0
    t_back = time.time()
    rig.proxy.heal()
    out = rig.outcome(cid)
    assert out["status"] == "error" and out["detail"]["reason"] == "commit_deadline", out
    assert "did not reconnect and publish health within 8 s (uplink not connected)" in out["detail"]["error"]
    rig.wait_health("0.1.0", since=t_back)
    assert sup.exit_codes()[:2] == [75, 75]
    assert rig.state()["last_rollback"]["reason"] == "commit_deadline"


def test_kill9_at_random_points_of_updates_always_comes_back_on_a_working_version(rig):
    """Power cuts at seeded random moments of four successive updates (download, install,
    switch, trial start, commit — wherever they fall): every time the service comes back on
    the version its slot state names, reports it in health, and the journal says which."""
    import random

    rng = random.Random(20261204)
    sup = rig.start()
    rig.wait_health("0.1.0")
    outcomes = []
    for i in range(4):
        before = rig.state()["version"]
        version = f"0.3.{i}"
        cid = rig.send_update(f"r-rand{i}", version, build_release(version))
        delay = rng.uniform(0.0, 2.5)
        time.sleep(delay)
        runs = len(sup.runs)
        assert sup.kill9() is not None
        t_kill = time.time()
        sup.wait_runs(runs + 1)

        def settled() -> bool:
            st = rig.state()
            return (st["pending"] is None and st["installing"] is None
                    and st["version"] in rig.health_versions(since=t_kill))
        wait_for(settled, 90, f"update {i} settled after kill -9 at {delay:.2f} s", debug=rig.journal)
        st = rig.state()
        assert st["version"] in (before, version)
        assert f"starting gateway {st['version']} from slot {st['active']}" in rig.journal()
        final = [d for d in rig.results(cid) if d["status"] != "progress"]
        if final:                                    # the fleet hears an outcome that matches what runs
            assert (final[-1]["status"] == "ok") == (st["version"] == version), final[-1]
        outcomes.append((round(delay, 2), before, st["version"], final[-1]["detail"].get("reason", "ok")
                         if final else "no result (killed before the install began)"))
    assert not list(rig.slots.glob(".*.new"))
    print("kill -9 outcomes (delay s, from, running, result):", outcomes)
