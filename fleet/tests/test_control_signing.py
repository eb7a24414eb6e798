"""The fleet signs every control message (fleet/control, contracts/control.py): the sequence is
strictly increasing per gateway across workers (SQLite and PostgreSQL), the config push and the
rollout commands go out signed for exactly one gateway, a push without the key versions and
sends nothing, and no user — a support user least of all — can make the fleet sign a push that
changes what a gateway trusts (F1)."""
from __future__ import annotations

import json
import threading

import pytest

from contracts.control import ControlRejected, Opened, load_public, open_envelope
from fleet.config import ConfigError, ConfigService, ConfigValidationError, MemoryConfigStore, Scope
from fleet.control import ControlSigner, MemorySeq, StoreSeq, generate_key_files

pytestmark = pytest.mark.security


class Pub:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic, payload, *, qos=1, retain=False):
        self.sent.append((topic, payload))


def test_store_sequence_is_strictly_increasing_per_gateway_across_workers(store_url, clock):
    """Four workers (own connections) take numbers for one gateway at once: all distinct, each
    worker's strictly increasing, and every later number above every earlier one."""
    from fleet.store import open_store

    open_store(store_url).close()                             # migrated once
    got: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def work(i: int) -> None:                                 # a worker: its own connection
        try:
            with open_store(store_url, migrate=False) as store:
                seq = StoreSeq(store)
                for _ in range(25):
                    got[i].append(seq.next_seq("gw-0001", 1.0))     # a clock far behind: the row decides
        except BaseException as exc:                          # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(got))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    every = [n for g in got for n in g]
    assert len(set(every)) == 100 and all(a < b for g in got for a, b in zip(g, g[1:]))
    with open_store(store_url, migrate=False) as store:
        assert StoreSeq(store).next_seq("gw-0001", 1.0) > max(every)
        assert StoreSeq(store).next_seq("gw-other", 1.0) == 1_000_000


def test_config_push_is_signed_for_one_gateway_with_increasing_seq(tmp_path, clock):
    priv, pub = generate_key_files(tmp_path / "control.key")
    signer = ControlSigner.from_file(priv, MemorySeq(), clock=clock.time)
    store = MemoryConfigStore(membership={"gw-1": ("0301", None)})
    svc = ConfigService(store, clock, signer=signer)
    svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 20, by="t")
    p = Pub()
    svc.push("gw-1", p)
    svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 25, by="t")
    svc.push("gw-1", p)
    key = load_public(pub.read_bytes())
    opened = [open_envelope(b, gateway_id="gw-1", keys=[key], now=clock.time()) for _, b in p.sent]
    assert all(isinstance(o, Opened) for o in opened) and opened[0].seq < opened[1].seq
    assert json.loads(opened[1].body)["config"]["rules"]["bed"]["max_out_min"] == 25
    other = open_envelope(p.sent[0][1], gateway_id="gw-2", keys=[key], now=clock.time())
    assert isinstance(other, ControlRejected) and other.reason == "other_gateway"


def test_push_without_a_control_key_versions_and_sends_nothing(monkeypatch, clock):
    monkeypatch.delenv("FLEET_CONTROL_KEY_FILE", raising=False)
    store = MemoryConfigStore(membership={"gw-1": ("0301", None)})
    svc = ConfigService(store, clock)
    p = Pub()
    with pytest.raises(ConfigError, match="FLEET_CONTROL_KEY_FILE"):
        svc.push("gw-1", p)
    assert p.sent == [] and store.latest_version("gw-1") is None


@pytest.mark.parametrize("key, value", [("upgrades.trusted_keys", ["/tmp/attacker.pub"]),
                                        ("trust.release_keys", ["/tmp/attacker.pub"]),
                                        ("trust.fleet_key", "/tmp/attacker.pub"),
                                        ("trust.broker_ca", "/tmp/evil-ca.pem")])
def test_F1_no_template_can_carry_a_trust_anchor(key, value, clock):
    svc = ConfigService(MemoryConfigStore(), clock)
    with pytest.raises(ConfigValidationError) as ei:
        svc.set_key(Scope.MUNICIPALITY, "0301", key, value, by="support.osl")
    assert any(p.key.startswith(key) and "cannot be changed remotely" in p.reason for p in ei.value.problems)


def test_F1_a_support_user_cannot_make_the_fleet_sign_a_release_trust_change(tmp_path, clock):
    """Over the fleet service API: a support user (config write, no release management) of the
    municipality sets the release trust for the municipality: refused, naming the key, nothing
    stored — so no push can ever carry it."""
    from fleet.tests.test_api_support import A, app_for, auth, build_world, client

    world = build_world(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path, clock)
    from fleet.access import AccessService, Actor, Role
    from fleet.access._sql import SqlAccessRepo
    from fleet.clock import FixedClock
    from fleet.store import open_store

    with open_store(world.url, migrate=False) as store, store.transaction() as tx:
        AccessService(SqlAccessRepo(tx), FixedClock(clock.time())).create_user(
            Actor("setup", Role.ADMIN), "support.osl", Role.SUPPORT, municipalities=[A], password="demo")
    c = client(app_for(world))
    tok = auth(world.token("support.osl"))
    for key in ("upgrades.trusted_keys", "trust.release_keys"):
        r = c.put(f"/api/v1/config/templates/municipality/{A}/keys/{key}", headers=tok,
                  json={"value": ["/tmp/attacker.pub"]})
        assert 400 <= r.status_code < 500 and "cannot be changed remotely" in r.text and key in r.text, r.text
    ok = c.put(f"/api/v1/config/templates/municipality/{A}/keys/rules.bed.max_out_min", headers=tok,
               json={"value": 25})
    assert ok.status_code == 200, ok.text                      # the same user may change ordinary keys
    got = c.get("/api/v1/config/templates", headers=tok).json()
    assert "trusted_keys" not in json.dumps(got) and "release_keys" not in json.dumps(got)
