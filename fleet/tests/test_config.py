"""Config domain: merge precedence, hash, validation messages, versions, drift, diff (fakes)."""
from __future__ import annotations

import json

import pytest

from fleet.clock import FixedClock
from fleet.config import (AppliedReport, AppliedStatus, Change, ConfigService, ConfigValidationError, Drift,
                          Layer, MemoryConfigStore, Rejected, Scope, content_hash, decode_applied, deep_merge,
                          diff, effective_config, encode_config, validate)

DEV = "a4c1380a1b2c"
T0 = 1_800_000_000.0


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, int, bool]] = []

    def publish(self, topic, payload, *, qos=1, retain=False):
        env = json.loads(payload)                   # the fleet's signed envelope (contracts/control.py)
        assert env["schema"] == "wt.signed/1" and env["kind"] == "wt.config/1", env
        self.sent.append((topic, json.loads(env["body"]), qos, retain))


def test_precedence_municipality_group_gateway_device_and_null_removes():
    layers = [
        Layer(Scope.DEVICE, DEV, {"battery_low_pct": 15}),
        Layer(Scope.GATEWAY, "gw-1", {"rules": {"bed": {"max_out_min": 20}}, "uplink": {"tls": None}}),
        Layer(Scope.MUNICIPALITY, "oslo", {"rules": {"bed": {"max_out_min": 30, "window_start": "20:30",
                                                           "window_end": "06:00"}},
                                           "uplink": {"host": "arc.oslo", "tls": True}}),
        Layer(Scope.GROUP, "night", {"rules": {"bed": {"max_out_min": 25}}, "devices": {DEV: {"role": "bed"}}}),
    ]
    eff = effective_config(layers)
    assert eff["rules"]["bed"] == {"max_out_min": 20, "window_start": "20:30", "window_end": "06:00"}
    assert eff["uplink"] == {"host": "arc.oslo"}            # gateway's null removed tls
    assert eff["devices"][DEV] == {"role": "bed", "battery_low_pct": 15}


def test_deep_merge_lists_replace_and_inputs_untouched():
    base = {"a": {"l": [1, 2], "x": 1}}
    out = deep_merge(base, {"a": {"l": [3]}})
    assert out == {"a": {"l": [3], "x": 1}}
    assert base == {"a": {"l": [1, 2], "x": 1}}


def test_hash_ignores_key_order_but_not_values():
    assert content_hash({"a": 1, "b": {"c": 2}}) == content_hash({"b": {"c": 2}, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert content_hash({"a": 1}).startswith("sha256:")


CASES = [
    ({"rules": {"bed": {"max_out_min": -5}}}, "rules.bed.max_out_min", ("-5", "1")),
    ({"rules": {"bed": {"max_out_min": "30"}}}, "rules.bed.max_out_min", ("number",)),
    ({"rules": {"bed": {"window_start": "8pm"}}}, "rules.bed.window_start", ("HH:MM",)),
    ({"uplink": {"tls": {"enabled": 1}}}, "uplink.tls.enabled", ("true", "0/1")),
    ({"uplink": {"ack_timout_s": 5}}, "uplink.ack_timout_s", ("did you mean", "ack_timeout_s")),
    ({"devices": {DEV: {"role": "sofa"}}}, f"devices.{DEV}.role", ("button",)),
    ({"devices": {"XYZ": {"role": "bed"}}}, "devices.XYZ", ("12 lower-case hex",)),
]


@pytest.mark.parametrize("cfg, key, words", CASES)
def test_gateway_schema_validation_names_key_value_and_fix(cfg, key, words):
    problems = validate(cfg)                       # the gateway's schema: contracts.gateway_config
    assert [p.key for p in problems] == [key]
    assert all(w in str(problems[0]) for w in words), str(problems[0])
    assert str(problems[0]).startswith(key)


def test_gateway_rules_the_subset_does_not_know_are_enforced():
    problems = validate({"devices": {DEV: {"role": "bed", "name": "Kari"}}})
    assert [p.key for p in problems] == [f"devices.{DEV}.name"] and "pseudonymous" in problems[0].reason
    problems = validate({"gateway": {"id": "gw-other"}, "journal": {"path": "/tmp/j.sqlite"}})
    assert {p.key for p in problems} == {"gateway.id", "journal.path"}
    assert all("cannot be changed remotely" in p.reason for p in problems)


def make_service(clock=None):
    store = MemoryConfigStore(membership={"gw-1": ("oslo", "night")}, devices={"gw-1": [DEV]})
    svc = ConfigService(store, clock or FixedClock(T0))
    svc.set_key(Scope.MUNICIPALITY, "oslo", "uplink.host", "arc.oslo", by="t")
    svc.set_key(Scope.GROUP, "night", "rules.bed.max_out_min", 30, by="t")
    svc.set_key(Scope.DEVICE, DEV, "role", "bed", by="t")
    return store, svc


def test_set_rejects_invalid_value_and_stores_nothing():
    store, svc = make_service()
    before = store.get_template(Scope.GROUP, "night")
    with pytest.raises(ConfigValidationError) as exc:
        svc.set_key(Scope.GROUP, "night", "rules.bed.max_out_min", 0, by="t")
    assert exc.value.key == "rules.bed.max_out_min" and "≥ 1" in str(exc.value)
    assert store.get_template(Scope.GROUP, "night") == before


def test_versions_increase_only_when_content_changes():
    store, svc = make_service()
    v1 = svc.commit("gw-1")
    assert (v1.version, svc.commit("gw-1").version) == (1, 1)
    svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 20, by="t")
    v2 = svc.commit("gw-1")
    assert v2.version == 2 and v2.hash != v1.hash
    assert v2.config["rules"]["bed"]["max_out_min"] == 20


def test_push_publishes_retained_versioned_and_drift_states(make_clock):
    clock = make_clock(T0)
    store, svc = make_service(clock)
    assert svc.status("gw-1").drift is Drift.NOT_PUSHED
    pub = FakePublisher()
    v = svc.push("gw-1", pub)
    topic, doc, qos, retain = pub.sent[-1]
    assert (topic, qos, retain) == ("wt/v1/gw/gw-1/config", 1, True)
    assert doc["schema"] == "wt.config/1" and doc["version"] == v.version and doc["hash"] == v.hash
    assert svc.status("gw-1").drift is Drift.PENDING
    clock.t += 3600
    assert svc.status("gw-1").drift is Drift.LAGGING
    svc.record_applied(AppliedReport("gw-1", v.version, AppliedStatus.APPLIED, None, clock.t))
    assert svc.status("gw-1").drift is Drift.IN_SYNC
    svc.set_key(Scope.GATEWAY, "gw-1", "uplink.health_interval_s", 120, by="t")
    assert svc.status("gw-1").drift is Drift.STALE            # templates changed, not pushed yet
    v2 = svc.push("gw-1", pub)
    svc.record_applied(AppliedReport("gw-1", v2.version, AppliedStatus.REJECTED, "uplink.health_interval_s: bad", clock.t))
    st = svc.status("gw-1")
    assert st.drift is Drift.REJECTED and st.error == "uplink.health_interval_s: bad"
    svc.record_applied(AppliedReport("gw-1", 99, AppliedStatus.APPLIED, None, clock.t))
    assert svc.status("gw-1").drift is Drift.FOREIGN
    svc.record_applied(AppliedReport("gw-1", v2.version, AppliedStatus.APPLIED, None, clock.t, hash="sha256:00"))
    assert svc.status("gw-1").drift is Drift.FOREIGN          # same number, different content
    svc.record_applied(AppliedReport("gw-1", v2.version, AppliedStatus.APPLIED, None, clock.t, hash=v2.hash))
    assert svc.status("gw-1").drift is Drift.IN_SYNC
    store.running["gw-1"] = 0                                 # health: no fleet layer yet -> not foreign
    assert svc.status("gw-1").drift is Drift.IN_SYNC
    store.running["gw-1"] = 41                                # health: running a config nobody issued
    st = svc.status("gw-1")
    assert st.drift is Drift.FOREIGN and st.running_version == 41


def test_diff_applied_vs_desired_and_between_versions():
    store, svc = make_service()
    pub = FakePublisher()
    v1 = svc.push("gw-1", pub)
    svc.record_applied(AppliedReport("gw-1", v1.version, AppliedStatus.APPLIED, None, 0.0))
    svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 20, by="t")
    svc.set_key(Scope.GATEWAY, "gw-1", "uplink.health_interval_s", 60, by="t")
    _, _, entries = svc.diff("gw-1")
    got = {(e.key, e.change) for e in entries}
    assert got == {("rules.bed.max_out_min", Change.CHANGED), ("uplink.health_interval_s", Change.ADDED)}
    svc.push("gw-1", pub)
    a, b, entries = svc.diff("gw-1", 1, 2)
    assert (a, b) == ("v1", "v2") and len(entries) == 2
    assert [e.render() for e in diff({"x": 1}, {})] == ["- x = 1"]


def test_decode_applied_never_raises_on_garbage():
    now = 5.0
    ok = decode_applied("wt/v1/gw/gw-1/config/applied",
                        b'{"schema":"wt.config-applied/1","version":3,"status":"rejected","error":"x: bad"}', now=now)
    assert isinstance(ok, AppliedReport) and ok.version == 3 and ok.status is AppliedStatus.REJECTED
    for topic, payload in [("wt/v1/gw/gw-1/config/applied", b"\xff\x00"),
                           ("wt/v1/gw/gw-1/config/applied", b"[]"),
                           ("wt/v1/gw/gw-1/config/applied", b'{"schema":"wt.config-applied/2","version":1,"status":"applied"}'),
                           ("wt/v1/gw/gw-1/config/applied", b'{"schema":"wt.config-applied/1","version":true,"status":"applied"}'),
                           ("wt/v1/gw/gw-1/config", b"{}")]:
        assert isinstance(decode_applied(topic, payload, now=now), Rejected)


def test_encode_config_is_canonical():
    store, svc = make_service()
    v = svc.commit("gw-1")
    assert json.loads(encode_config(v))["config"] == v.config


def test_push_honours_the_contract_the_gateway_applies():
    """fleet encode_config -> wt.config/1 as contracts decodes it -> the gateway's schema builds the
    layer (contracts.gateway_config, as gateway.config does) -> a wt.config-applied/1 encoded by
    the contract -> fleet decode_applied and drift. The gateway half (decode_push/decide/
    applied_payload) is gateway/tests/test_config.py::test_contract_push_is_applied_and_reported."""
    from contracts.gateway_config import validate as gateway_schema
    from contracts.payloads import ConfigDoc, decode_config, encode_applied

    store, svc = make_service()
    svc.set_key(Scope.GROUP, "night", "rules.bed.window_start", "21:00", by="t")
    pub = FakePublisher()
    v = svc.push("gw-1", pub)
    doc = decode_config(json.dumps(pub.sent[-1][1]).encode())
    assert isinstance(doc, ConfigDoc) and (doc.version, doc.hash, doc.config) == (v.version, v.hash, v.config)
    cfg = gateway_schema(doc.config)
    assert str(cfg.rules.bed.window_start) == "21:00:00" and cfg.rules.bed.max_out_min == 30
    assert cfg.uplink.host == "arc.oslo" and cfg.device(DEV).role.name == "BED"
    rep = decode_applied("wt/v1/gw/gw-1/config/applied",
                         encode_applied(version=doc.version, status="applied", error=None, hash=doc.hash), now=1.0)
    svc.record_applied(rep)
    assert rep.hash == v.hash and svc.status("gw-1").drift is Drift.IN_SYNC


def test_validate_uses_the_one_schema_without_probing_the_gateway():
    """No fallback schema: every key of the shared schema is known to the fleet (the boundary test
    in contracts/tests checks that the fleet never imports the gateway)."""
    from contracts.gateway_config import GatewayConfig, to_plain

    defaults = to_plain(GatewayConfig(), redact=False)
    defaults.pop("gateway"), defaults.pop("journal"), defaults.pop("trust")   # IMMUTABLE keys live there
    defaults["upgrades"].pop("trusted_keys")
    assert validate(defaults) == []
    problems = validate({"ble": {"pair": True, "scan_mode": "passive"}, "upgrades": {"ota_retries": -1}})
    assert [p.key for p in problems] == ["upgrades.ota_retries"] and "≥ 0" in problems[0].reason
