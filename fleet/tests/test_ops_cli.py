"""`fleet release|rollout|config|monitor|stats` end to end on SQLite, a real Mosquitto,
emulated gateways (fleet.upgrades.EmulatedGateway) and an ingest worker."""
from __future__ import annotations

import json
import time

import pytest

from fleet.cli import main
from fleet.monitoring import IngestWorker, SqlMonitorSink
from fleet.mqtt import MqttClient
from fleet.store import open_store
from fleet.upgrades import EmulatedGateway, load_public, serve_mqtt

NOW = 1_800_000_000.0
GWS = ("gw-a", "gw-b", "gw-c")


class Clock:
    def time(self):
        return time.time()


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(url) as s, s.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
        for name, role, allm in (("admin", "admin", True), ("tech", "technician", False)):
            tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                       (name, role, allm, True, NOW))
        for g in GWS:
            tx.execute("INSERT INTO gateway_status (gateway_id, last_seen, online, version) VALUES (?, ?, ?, ?)",
                       (g, time.time() - 3600, True, "0.1.0"))
    return url


def run(capsys, env, *argv):
    rc = main(["--no-progress", *argv], env=env, clock=time.time)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_release_rollout_and_config_end_to_end(capsys, db, tmp_path, mosquitto):
    env = {"FLEET_DB": db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    broker = f"{mosquitto.host}:{mosquitto.port}"
    art = tmp_path / "gateway-0.2.0.whl"
    art.write_bytes(b"wheel" * 2000)
    key = str(tmp_path / "ci")
    assert run(capsys, env, "release", "keygen", key)[0] == 0
    assert run(capsys, env, "release", "sign", str(art), "--key", key + ".key", "--target", "gateway",
               "--version", "0.2.0")[0] == 0
    rc, _, err = run(capsys, env, "release", "add", str(art))
    assert rc == 2 and "no trusted release key" in err
    assert run(capsys, env, "release", "key-add", key + ".pub", "--name", "ci")[0] == 0
    bad = tmp_path / "bad.whl"
    bad.write_bytes(art.read_bytes()[:-1] + b"X")
    rc, _, err = run(capsys, env, "release", "add", str(bad), "--sig", str(art) + ".sig")
    assert rc == 2 and "SHA-256" in err and "tampered" in err
    assert json.loads(run(capsys, env, "release", "list", "--json")[1]) == []       # nothing stored
    rc, out, _ = run(capsys, env, "release", "add", str(art))
    assert rc == 0 and out.strip() == "gateway@0.2.0"
    rc, out, _ = run(capsys, env, "release", "verify", str(art), "--json")
    assert json.loads(out)["ok"] is True

    # emulated gateways behind the broker, trusting the same key
    pub = load_public((tmp_path / "ci.pub").read_bytes())
    gws = {g: EmulatedGateway(g, [pub], lambda url: b"") for g in GWS}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated").connect()
    serve_mqtt(emu, gws)
    try:
        rc, _, err = run(capsys, env, "rollout", "create", "gateway@0.2.0", "--id", "r1", "--waves", "0.34,1.0")
        assert rc == 0 and "3 units in 2 waves" in err
        rc, out, err = run(capsys, env, "rollout", "run", "r1", "--broker", broker, "--json")
        assert rc == 0, err
        assert json.loads(out)["state"] == "completed"
        assert {g.version for g in gws.values()} == {"0.2.0"}
        st = json.loads(run(capsys, env, "rollout", "status", "r1", "--json")[1])
        assert st["by_state"] == {"succeeded": 3} and [w["size"] for w in st["waves_detail"]] == [1, 2]
        rc, _, err = run(capsys, env, "rollout", "resume", "r1")
        assert rc == 2 and "allowed now: rollback" in err

        # a second release whose install fails on the canary: the run halts, exit 1
        art2 = tmp_path / "gateway-0.3.0.whl"
        art2.write_bytes(b"wheel3" * 100)
        run(capsys, env, "release", "sign", str(art2), "--key", key + ".key", "--target", "gateway", "--version", "0.3.0")
        run(capsys, env, "release", "add", str(art2))
        for g in gws.values():
            g.fail_phase = "reboot"
        run(capsys, env, "rollout", "create", "gateway@0.3.0", "--id", "r2", "--waves", "0.34,1.0")
        rc, out, err = run(capsys, env, "rollout", "run", "r2", "--broker", broker)
        assert rc == 1 and "rollout halted" in err and "1 of 3 units were touched" in err
        units = json.loads(run(capsys, env, "rollout", "units", "r2", "--state", "failed", "--json")[1])
        assert len(units) == 1 and "planted failure in reboot" in units[0]["error"]
        assert {g.version for g in gws.values()} == {"0.2.0"}               # A/B rollback on the gateway
    finally:
        emu.close()

    # config: push to a fake gateway that applies it; the ingest worker stores the report
    fake = MqttClient(mosquitto.host, mosquitto.port, client_id="fake-gw-a").connect()
    fake.subscribe("wt/v1/gw/gw-a/config", lambda t, p: fake.publish_nowait(
        "wt/v1/gw/gw-a/config/applied", json.dumps({"schema": "wt.config-applied/1", "version": json.loads(p)["version"],
                                                    "status": "applied", "error": None}).encode(), qos=1, retain=True))
    worker = IngestWorker(MqttClient(mosquitto.host, mosquitto.port, client_id="ingest", manual_ack=True),
                          lambda: SqlMonitorSink(open_store(db, migrate=False), close_store=True),
                          clock=Clock(), flush_s=0.05).start()
    try:
        assert run(capsys, env, "config", "assign", "gw-a", "--municipality", "0301", "--group", "night")[0] == 0
        rc, _, err = run(capsys, env, "config", "set", "--group", "night", "rules.bed.max_out_min", "-5")
        assert rc == 2 and "rules.bed.max_out_min = -5: must be ≥ 1 minute" in err
        assert run(capsys, env, "config", "set", "--group", "night", "rules.bed.max_out_min", "25")[0] == 0
        rc, out, _ = run(capsys, env, "config", "push", "gw-a", "--broker", broker, "--json")
        assert rc == 0 and json.loads(out)[0]["version"] == 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            st = json.loads(run(capsys, env, "config", "status", "gw-a", "--json")[1])[0]
            if st["drift"] == "in_sync":
                break
            time.sleep(0.1)
        assert st["drift"] == "in_sync" and st["applied_version"] == 1
        run(capsys, env, "config", "set", "--gateway", "gw-a", "rules.bed.max_out_min", "20")
        diff = json.loads(run(capsys, env, "config", "diff", "gw-a", "--json")[1])
        assert diff["changes"] == [{"key": "rules.bed.max_out_min", "change": "changed", "old": 25, "new": 20}]
        # a technician without CONFIG_WRITE is refused
        tech = {**env, "FLEET_USER": "tech"}
        rc, _, err = run(capsys, tech, "config", "set", "--gateway", "gw-a", "uplink.health_interval_s", "60")
        assert rc == 5 and "may not config.write" in err
    finally:
        worker.stop()
        fake.close()
    for argv in (["monitor", "devices"], ["monitor", "battery"], ["monitor", "updates"], ["monitor", "offline"],
                 ["config", "templates"], ["release", "keys"], ["rollout", "list"],
                 ["stats", "benefits", "--from", "2026-11-01", "--to", "2026-12-01"]):
        rc, out, err = run(capsys, env, *argv, "--json")
        assert rc == 0, (argv, err)
        json.loads(out)
    rc, out, _ = run(capsys, env, "stats", "benefits", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "week",
                     "--csv", "-", "--svg", str(tmp_path / "svg"))
    assert out.startswith("municipality,period_start,period_end,metric,key,value")
    assert (tmp_path / "svg" / "uptime.svg").read_text().startswith("<svg")


def test_monitor_ingest_command_runs_until_sigterm(db, tmp_path, mosquitto):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "FLEET_DB": db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "monitor", "ingest", "--broker",
                             f"{mosquitto.host}:{mosquitto.port}", "--id", "ingest-cli", "--flush-s", "0.05"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert "ingesting from" in proc.stderr.readline()
        pub = MqttClient(mosquitto.host, mosquitto.port, client_id="cli-load").connect()
        pub.publish("wt/v1/gw/gw-a/health", json.dumps({
            "schema": "wt.health/1", "gateway": "gw-a", "at": "2026-11-23T07:00:00.000Z", "config_version": 4,
            "devices": [{"device": "00000000000a", "role": "button", "battery_pct": 12}]}).encode())
        pub.publish("wt/v1/gw/gw-a/health", b"not json")
        pub.close()
        deadline = time.monotonic() + 20
        with open_store(db, migrate=False) as s:
            while time.monotonic() < deadline:
                with s.transaction(write=False) as tx:
                    if tx.scalar("SELECT battery_pct FROM device_status WHERE device_id = ?", ("00000000000a",)):
                        break
                time.sleep(0.1)
            with s.transaction(write=False) as tx:
                assert tx.scalar("SELECT config_version FROM gateway_status WHERE gateway_id = ?", ("gw-a",)) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "received 2, written 2" in err and "rejected 1" in err


def test_pause_and_resume_reach_a_running_rollout(capsys, db, tmp_path, mosquitto):
    import threading

    env = {"FLEET_DB": db, "FLEET_USER": "admin", "FLEET_CONFIG_DIR": str(tmp_path / "cfg")}
    key = str(tmp_path / "k")
    art = tmp_path / "gw.whl"
    art.write_bytes(b"w" * 300)
    for argv in (["release", "keygen", key], ["release", "key-add", key + ".pub", "--name", "k"],
                 ["release", "sign", str(art), "--key", key + ".key", "--target", "gateway", "--version", "0.2.0"],
                 ["release", "add", str(art)],
                 ["rollout", "create", "gateway@0.2.0", "--id", "rp", "--waves", "0.34,1.0"]):
        assert run(capsys, env, *argv)[0] == 0, argv
    gate = threading.Event()

    class Slow(EmulatedGateway):
        def handle(self, payload):
            gate.wait(20)                       # hold the canary in flight until the test says so
            return super().handle(payload)

    pub = load_public((tmp_path / "k.pub").read_bytes())
    gws = {g: Slow(g, [pub], lambda url: b"") for g in GWS}
    emu = MqttClient(mosquitto.host, mosquitto.port, client_id="emulated-slow").connect()
    serve_mqtt(emu, gws)
    rc_box: list = []
    runner = threading.Thread(target=lambda: rc_box.append(main(
        ["--no-progress", "rollout", "run", "rp", "--broker", f"{mosquitto.host}:{mosquitto.port}"],
        env=env, clock=time.time)), daemon=True)
    runner.start()

    def state():
        with open_store(db, migrate=False) as s, s.transaction(write=False) as tx:
            return tx.one("SELECT state, runner_seen_at FROM rollout WHERE rollout_id = ?", ("rp",))

    def wait_for(pred, what):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pred(state()):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {state()}")

    try:
        wait_for(lambda r: r["state"] == "running" and r["runner_seen_at"], "the runner")
        rc, _, err = run(capsys, env, "rollout", "pause", "rp")
        assert rc == 0 and "pause requested" in err
        wait_for(lambda r: r["state"] == "paused", "pause")
        gate.set()                                   # the canary finishes while paused; nothing new is sent
        time.sleep(0.5)
        assert sum(g.installs for g in gws.values()) == 1
        rc, _, err = run(capsys, env, "rollout", "resume", "rp")
        assert rc == 0 and "resume requested" in err
        runner.join(30)
        assert rc_box == [0]
        assert state()["state"] == "completed" and {g.version for g in gws.values()} == {"0.2.0"}
    finally:
        gate.set()
        emu.close()
