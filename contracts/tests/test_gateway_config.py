"""contracts.gateway_config: the one gateway configuration schema the gateway loads and the fleet
validates pushes against (no file, environment or CLI here: that is gateway.config)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib

import pytest

from contracts.discovery import SERVICE_TYPE
from contracts.gateway_config import (IMMUTABLE, NO_VALUE, BleScanMode, ConfigError, ConfigIssue, GatewayConfig,
                                      Role, build, to_plain, to_toml, validate)

DEV = "a4c1380a1b2c"


def test_empty_tables_are_the_schema_defaults():
    cfg = validate({})
    assert cfg == GatewayConfig()
    assert cfg.discovery.service_type == SERVICE_TYPE
    assert (cfg.ble.scan_mode, cfg.ble.pair) == (BleScanMode.ACTIVE, False)


def test_every_problem_is_collected_with_key_value_and_fix():
    data = {"uplink": {"prot": 1883, "port": 0}, "ble": {"scan_mode": "sideways"},
            "devices": {DEV: {"role": "toaster", "name": "Kari"}}, "rules": {"bed": {"window_start": "25:00"}}}
    issues: list[ConfigIssue] = []
    build(data, issues)
    got = {i.key: str(i) for i in issues}
    assert got["uplink.prot"] == "uplink.prot = 1883: unknown key; did you mean port?"
    assert got["uplink.port"] == "uplink.port = 0: must be ≥ 1; set e.g. port = 8883"
    assert got["ble.scan_mode"].endswith('must be one of active, passive; set e.g. scan_mode = "active"')
    assert "must be one of button, fall" in got[f"devices.{DEV}.role"]
    assert "pseudonymous" in got[f"devices.{DEV}.name"]
    assert "HH:MM" in got["rules.bed.window_start"]
    with pytest.raises(ConfigError) as exc:
        validate(data, source="push v7")
    assert exc.value.issues == issues and str(exc.value).startswith(f"{len(issues)} configuration error(s) in push v7:")


def test_a_missing_value_is_shown_as_the_key_alone():
    assert str(ConfigIssue("devices.x", NO_VALUE, "bad id", "rename it")) == "devices.x: bad id; rename it"


def test_roles_are_the_shared_role_names_and_gateway_is_reserved():
    cfg = validate({"devices": {DEV: {"role": "BED"}}})
    assert cfg.device(DEV).role is Role.BED and to_plain(cfg, redact=True)["devices"][DEV]["role"] == "bed"
    with pytest.raises(ConfigError, match="is reserved for the gateway itself"):
        validate({"devices": {DEV: {"role": "gateway"}}})


def test_immutable_keys_name_real_settings():
    for key in IMMUTABLE:
        node: object = GatewayConfig()
        for part in key.split("."):
            node = getattr(node, part)           # AttributeError if the schema lost the key
        assert isinstance(node, (str, tuple))


def test_rendered_toml_reads_back_to_the_same_config():
    data = {"gateway": {"id": "gw-0042", "timezone": "UTC"}, "ble": {"enabled": True, "pair": True,
                                                                       "scan_mode": "passive"},
            "devices": {DEV: {"role": "gps", "link": "ble-gatt", "silent_after_s": 900}},
            "rules": {"bed": {"window_start": "21:15"},
                      "geofence": {"zones": [{"id": "home", "lat": 59.9, "lon": 10.7, "radius_m": 250}]}}}
    cfg = validate(data)
    assert cfg.rules.bed.window_start == dt.time(21, 15)
    again = validate(tomllib.loads(to_toml(cfg)))
    assert again == cfg


def test_the_schema_is_frozen():
    cfg = validate({})
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'pair'"):
        cfg.ble.pair = True   # type: ignore[misc]
