"""F1 (critical), replayed against the real gateway as the service runs it (launcher, A/B slots,
daemon processes: gateway.testing.supervisor.ServiceRig) on a real Mosquitto.

The attack as reported: an unsigned ``wt.config/1`` push set ``upgrades.trusted_keys`` to the
attacker's key, then an ``update`` signed with that key installed and committed. Now:

1. the same unsigned push and the attacker's unsigned ``update`` are refused at the control
   gate (no signature of the fleet): no report, nothing applied, nothing installed, counted;
2. even a push the fleet itself signed (a compromised support account) cannot touch a trust
   anchor: rejected whole, the reason naming ``upgrades.trusted_keys``;
3. an ``update`` the fleet signed but whose release the attacker signed: ``unknown_key`` at
   download, nothing written to a slot — the gateway still runs 0.1.0 from slot a.
"""
from __future__ import annotations

import json
import time

import pytest

from contracts.payloads import encode_cmd, encode_config
from contracts.release import generate_key, install_command, sign
from contracts.topics import Kind, gateway_topic
from gateway.testing.supervisor import ServiceRig, build_release, wait_for

pytestmark = [pytest.mark.security, pytest.mark.timeout(240)]


def test_F1_unsigned_push_of_trusted_keys_and_the_attackers_update_fail_on_the_real_daemon(tmp_path, mosquitto):
    rig = ServiceRig(tmp_path, mosquitto.port)
    gw = rig.gateway_id
    attacker_priv, attacker_pub = generate_key()
    (tmp_path / "attacker.pub").write_bytes(attacker_pub)
    blob = build_release("0.2.0")
    evil = sign(blob, "gateway-0.2.0.tar.gz", "gateway", "0.2.0", attacker_priv)
    cfg_topic, cmd_topic = gateway_topic(gw, Kind.CONFIG), gateway_topic(gw, Kind.CMD)
    trust_push = {"upgrades": {"trusted_keys": [str(tmp_path / "attacker.pub")]}}
    try:
        rig.start()
        rig.wait_health("0.1.0")
        before = rig.state()
        # 1. the attack exactly as reported: unsigned push, then the attacker-signed update
        rig.observer.publish(cfg_topic, encode_config(version=99, config=trust_push, hash=None), qos=1, retain=True)
        cmd = install_command(evil, deployment="evil", gateway_id=gw, artifact_url="fleet://x", artifact=blob)
        time.sleep(1.0)
        rig.observer.publish(cmd_topic, encode_cmd(*cmd), qos=1)
        wait_for(lambda: rig.journal().count("refused (unsigned)") >= 2, 30, "both refused at the gate",
                 debug=rig.journal)
        time.sleep(1.0)
        assert rig.results(cmd.cmd_id) == []                                    # never handled
        assert not [d for _, k, d in rig.seen() if k == "config/applied" and d.get("version") == 99]
        assert rig.state()["active"] == before["active"] == "a" and rig.state()["version"] == "0.1.0"
        assert not (rig.slots / "b").exists() and not (tmp_path / "data" / "fleet-config.json").exists()

        # 2. the fleet itself signs the same push (a compromised support account): refused, naming the key
        rig.observer.publish(cfg_topic, rig.fleet.config(gw, 100, trust_push), qos=1, retain=True)
        wait_for(lambda: any(k == "config/applied" and d.get("version") == 100 for _, k, d in rig.seen()), 30,
                 "the signed push answered", debug=rig.journal)
        [rep] = [d for _, k, d in rig.seen() if k == "config/applied" and d.get("version") == 100]
        assert rep["status"] == "rejected" and rep["error"].startswith("upgrades.trusted_keys cannot be changed "
                                                                      "remotely: it is a trust anchor"), rep
        assert not (tmp_path / "data" / "fleet-config.json").exists()

        # 3. a fleet-signed command carrying the attacker's release: refused before any byte is written
        rig.observer.publish(cmd_topic, rig.fleet.wrap(gw, "wt.cmd/1", encode_cmd(*cmd)), qos=1)
        out = rig.outcome(cmd.cmd_id, 30)
        assert out["status"] == "error" and out["detail"]["reason"] == "unknown_key", out
        assert out["detail"]["phase"] == "download" and out["detail"]["rolled_back"] is False
        assert rig.state()["version"] == "0.1.0" and not (rig.slots / "b").exists()
        assert rig.sup is not None and rig.sup.exit_codes() == [None]            # never restarted
        health = [d for _, k, d in rig.seen() if k == "health"]
        assert all(d["version"] == "0.1.0" for d in health)
    finally:
        rig.observer.publish(cfg_topic, b"", qos=1, retain=True)
        rig.close()
    assert json.dumps(before)             # (kept for the failure message above)
