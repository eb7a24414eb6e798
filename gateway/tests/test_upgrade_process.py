"""Gateway A/B updates with the REAL daemon as processes (docs/upgrades.md).

The rig is the installed layout in a temporary directory: a factory release built by
``gateway.adapters.upgrade.pack`` (what scripts/build-release.py writes), the launcher
``gateway/launch.py`` run by :class:`gateway.testing.supervisor.Supervisor` (systemd's
``Restart=always``), a private Mosquitto (optionally behind a TCP proxy that can cut the
uplink), and the fleet's own rollout machinery (``run_rollout`` over ``MqttTransport``)
or the fleet's command encoding. Releases are built from this checkout with a version
and signed with a key the gateway trusts.

Proved here:
- a good release: the daemon restarts into the new slot, its health says the new version,
  it commits, and the fleet's unit is ``succeeded`` only with that version reported;
- a release that crashes at start: rolled back by the launcher, unit ``failed`` with
  ``crash_at_start``; the old version reports health again;
- kill -9 between switch and commit: rolled back at the next start (``killed_before_commit``);
- no uplink for the new version: it rolls itself back at its deadline (``commit_deadline``);
- a signed 20 kB random file as "gateway 0.2.0" (the field report) is refused at install,
  nothing switched; a slot deleted by hand: the previous known good version starts.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from contracts.payloads import encode_cmd
from contracts.release import generate_key, install_command, sign
from contracts.topics import Kind, gateway_topic
from gateway.adapters.upgrade import pack
from gateway.testing.supervisor import Supervisor, seed_factory, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "gateway" / "launch.py"
GW = "gw-ab"
_BUILDS: dict[tuple[str, str], bytes] = {}


def build(version: str, *, broken: str = "") -> bytes:
    """A release artifact of this checkout; ``broken``: code that replaces ``gateway/__main__.py``."""
    key = (version, broken)
    if key not in _BUILDS:
        replace = {"app/gateway/__main__.py": broken.encode()} if broken else None
        _BUILDS[key] = pack(ROOT, version, replace=replace)
    return _BUILDS[key]


class Rig:
    def __init__(self, tmp: Path, broker: Any, *, proxy: bool = False, deadline_s: float = 60.0) -> None:
        from fleet.mqtt import MqttClient
        from gateway.testing.tcp_proxy import TcpProxy

        self.tmp = tmp
        self.broker = broker
        self.proxy = TcpProxy("127.0.0.1", broker.port) if proxy else None
        port = self.proxy.port if self.proxy else broker.port
        self.priv, pub = generate_key()
        (tmp / "ci.pub").write_bytes(pub)
        seed_factory(build("0.1.0"), "0.1.0", tmp / "factory")
        self.slots = tmp / "slots"
        self.config = tmp / "gateway.toml"
        self.config.write_text(f"""
[gateway]
id = "{GW}"
data_dir = "{tmp / 'data'}"
[uplink]
host = "127.0.0.1"
port = {port}
health_interval_s = 30
[status]
port = 0
[discovery]
enabled = false
[upgrades]
trusted_keys = ["{tmp / 'ci.pub'}"]
commit_deadline_s = {deadline_s}
""")
        self.msgs: list[tuple[float, str, dict]] = []
        self.observer = MqttClient("127.0.0.1", broker.port, client_id="t-observer").connect()
        self.observer.subscribe(f"wt/v1/gw/{GW}/#", self._record)
        self.sup: Supervisor | None = None

    def _record(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        self.msgs.append((time.time(), topic.rsplit(f"{GW}/", 1)[-1], doc))

    # ---- the service ----------------------------------------------------------------------
    def start(self) -> Supervisor:
        self.sup = Supervisor([sys.executable, str(LAUNCH), "--slots", str(self.slots), "--config", str(self.config),
                               "--factory", str(self.tmp / "factory")], log_path=self.tmp / "journal.log").start()
        return self.sup

    def stop(self) -> None:
        if self.sup is not None:
            self.sup.stop()
            self.sup = None

    def journal(self) -> str:
        return (self.tmp / "journal.log").read_text(errors="replace") if (self.tmp / "journal.log").exists() else ""

    def close(self) -> None:
        self.stop()
        self.observer.close()
        if self.proxy is not None:
            self.proxy.close()

    # ---- what the fleet sees ---------------------------------------------------------------------
    def health_versions(self, since: float = 0.0) -> list[str]:
        return [d.get("version") for t, k, d in list(self.msgs) if k == "health" and t >= since]

    def wait_health(self, version: str, since: float = 0.0, timeout_s: float = 60.0) -> float:
        wait_for(lambda: version in self.health_versions(since), timeout_s, f"health with version {version}",
                 debug=self.journal)
        return next(t for t, k, d in list(self.msgs) if k == "health" and t >= since and d.get("version") == version)

    def results(self, cmd_id: str) -> list[dict]:
        return [d for _, k, d in list(self.msgs) if k == "cmd/result" and d.get("cmd_id") == cmd_id]

    def phases(self, cmd_id: str) -> list[tuple[str, str]]:
        return [(d["status"], d["detail"].get("phase")) for d in self.results(cmd_id)]

    def outcome(self, cmd_id: str, timeout_s: float = 90.0) -> dict:
        wait_for(lambda: any(d["status"] != "progress" for d in self.results(cmd_id)), timeout_s,
                 f"final result of {cmd_id}", debug=self.journal)
        return [d for d in self.results(cmd_id) if d["status"] != "progress"][-1]

    def state(self) -> dict:
        return json.loads((self.slots / "state.json").read_text())

    # ---- releases and commands -------------------------------------------------------------------
    def signed(self, version: str, blob: bytes):
        return sign(blob, f"gateway-{version}.tar.gz", "gateway", version, self.priv)

    def send_update(self, deployment: str, version: str, blob: bytes) -> str:
        cmd = install_command(self.signed(version, blob), deployment=deployment, gateway_id=GW,
                              artifact_url="fleet://release", artifact=blob)
        self.observer.publish(gateway_topic(GW, Kind.CMD), encode_cmd(*cmd), qos=1)
        return cmd.cmd_id

    def rollout(self, rollout_id: str, version: str, blob: bytes, *, timeout_s: float = 120.0):
        """One unit (this gateway), run by the fleet's engine and runner over the broker."""
        from fleet.clock import SystemClock
        from fleet.mqtt import MqttClient
        from fleet.upgrades import MqttTransport, RolloutEngine, RolloutEvent, RolloutPlan, Unit, run_rollout

        client = MqttClient("127.0.0.1", self.broker.port, client_id=f"t-fleet-{rollout_id}").connect()
        try:
            eng = RolloutEngine.create(rollout_id, RolloutPlan(waves=(1.0,), unit_timeout_s=timeout_s),
                                       [Unit(GW)], SystemClock())
            eng.control(RolloutEvent.START)
            t0 = time.monotonic()
            stats = run_rollout(eng, MqttTransport(client), release=self.signed(version, blob),
                                artifact_url="fleet://release", inline_artifact=blob,
                                control=lambda: None if time.monotonic() - t0 < timeout_s + 30 else RolloutEvent.ABORT)
        finally:
            client.close()
        return eng, eng.units[Unit(GW)], stats


@pytest.fixture
def rig(tmp_path, mosquitto):
    r = Rig(tmp_path, mosquitto)
    yield r
    r.close()


@pytest.fixture
def proxied_rig(tmp_path, mosquitto):
    r = Rig(tmp_path, mosquitto, proxy=True, deadline_s=8.0)
    yield r
    r.close()


def test_good_release_runs_reports_its_version_and_only_then_the_unit_succeeds(rig):
    from fleet.upgrades import UnitState

    sup = rig.start()
    rig.wait_health("0.1.0")
    assert "installed the factory release 0.1.0 into slot a" in rig.journal()
    # the field report: a signed 20 kB random file as "gateway 0.2.0" is refused, nothing switches
    junk = bytes(range(256)) * 80
    eng, unit, _ = rig.rollout("r-junk", "0.2.0", junk, timeout_s=30)
    assert unit.state is UnitState.FAILED and "not a complete .tar.gz" in unit.error, unit
    assert rig.state()["pending"] is None and rig.state()["active"] == "a" and sup.exit_codes() == [None]

    blob = build("0.2.0")
    t_sent = time.time()
    eng, unit, stats = rig.rollout("r-good", "0.2.0", blob)
    assert unit.state is UnitState.SUCCEEDED and unit.reported == "0.2.0", (unit, rig.journal()[-4000:])
    cid = "r-good:gw-ab:u"
    assert rig.phases(cid) == [("progress", "downloaded"), ("progress", "installed"), ("progress", "rebooted"),
                               ("ok", "committed")]
    t_health = rig.wait_health("0.2.0", since=t_sent)
    t_committed = next(t for t, k, d in rig.msgs if k == "cmd/result" and d["status"] == "ok")
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

    # a slot deleted by hand: the previous known good version starts, and says so
    rig.stop()
    shutil.rmtree(rig.slots / "b")
    t_restart = time.time()
    rig.start()
    rig.wait_health("0.1.0", since=t_restart)
    assert "starting gateway 0.1.0 from slot a (the previous known good)" in rig.journal()
    assert rig.state()["active"] == "a"


def test_release_that_crashes_at_start_is_rolled_back_and_the_unit_fails_with_the_reason(rig):
    from fleet.upgrades import UnitState

    sup = rig.start()
    rig.wait_health("0.1.0")
    blob = build("0.2.0", broken='raise RuntimeError("release 0.2.0 is broken at start")\n')
    t_sent = time.time()
    eng, unit, _ = rig.rollout("r-crash", "0.2.0", blob)
    assert unit.state is UnitState.FAILED, (unit, rig.journal()[-4000:])
    assert unit.error.startswith("crash_at_start: gateway 0.2.0 (slot b) exited before it was running")
    assert "rolled back to gateway 0.1.0 (slot a)" in unit.error
    out = rig.outcome("r-crash:gw-ab:u")
    assert out["detail"]["rolled_back"] is True and out["detail"]["reason"] == "crash_at_start"
    assert rig.wait_health("0.1.0", since=t_sent)
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
    cid = rig.send_update("r-kill", "0.2.0", build("0.2.0"))
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
    cid = rig.send_update("r-dead", "0.2.0", build("0.2.0"))
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
