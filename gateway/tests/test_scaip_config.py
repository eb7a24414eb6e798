"""``[scaip]`` in the gateway configuration (contracts/gateway_config): loaded, checked as a
whole, the password never shown; MQTT only, SCAIP only or both."""
from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError, load_config, to_toml

SECRET = "pa55-do-not-print"
GOOD = {"enabled": True, "centre": "sip:arc@alarm.example.no:5060", "cid": "4700112233",
        "username": "4700112233", "password": SECRET, "heartbeat_interval_s": 120, "heartbeat_adjustable": True}


def _load(**sections):
    return load_config(None, env={}, overrides=sections)


def test_default_is_mqtt_only():
    cfg = _load()
    assert cfg.uplink.enabled and not cfg.scaip.enabled
    assert cfg.scaip.role.value == "primary" and cfg.scaip.heartbeat_interval_s == 300.0
    assert cfg.scaip.hbi_intervals_s == (60.0, 300.0, 900.0, 3600.0)


def test_a_full_section_loads_and_the_password_is_never_printed():
    cfg = _load(scaip={**GOOD, "transport": "tcp", "role": "fallback", "hbi_intervals_s": [30, 60, 120, 240]})
    s = cfg.scaip
    assert (s.centre, s.cid, s.transport.value, s.role.value, s.password) == (
        GOOD["centre"], "4700112233", "tcp", "fallback", SECRET)
    assert s.hbi_intervals_s == (30.0, 60.0, 120.0, 240.0)
    text, js = to_toml(cfg), cfg.to_json()
    assert SECRET not in text and SECRET not in js
    assert json.loads(js)["scaip"]["password"] == "<redacted>"
    assert 'password = "<redacted>"' in text


def test_password_from_the_environment_is_redacted_too():
    no_password = {k: v for k, v in GOOD.items() if k != "password"}
    cfg = load_config(None, env={"WT_GW__SCAIP__PASSWORD": SECRET}, overrides={"scaip": no_password})
    assert cfg.scaip.password == SECRET and SECRET not in to_toml(cfg)


def test_every_problem_at_once_each_naming_key_value_and_fix():
    with pytest.raises(ConfigError) as ei:
        _load(scaip={"enabled": True, "centre": "arc.example.no", "cid": "47-00", "password": SECRET,
                     "transport": "udp", "tls": {"ca": "/nonexistent/ca.pem"}, "hbi_intervals_s": [60, 300],
                     "heartbeat_interval_s": 5})
    text = str(ei.value)
    for key in ("scaip.centre", "scaip.cid", "scaip.username", "scaip.transport", "scaip.tls.ca",
                "scaip.hbi_intervals_s", "scaip.heartbeat_interval_s"):
        assert key in text, key
    assert 'scaip.centre = "arc.example.no": is not a SIP URI; set e.g. centre = "sip:' in text
    assert "must be 1-16 digits" in text
    assert SECRET not in text


def test_sips_needs_tls_and_tls_files_must_exist(tmp_path):
    with pytest.raises(ConfigError) as ei:
        _load(scaip={**GOOD, "centre": "sips:arc@alarm.example.no"})
    assert 'scaip.transport = "udp": a sips: centre needs TLS' in str(ei.value)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = _load(scaip={**GOOD, "centre": "sips:arc@alarm.example.no", "transport": "tls",
                       "tls": {"ca": str(ca), "server_name": "arc.example.no"}})
    assert cfg.scaip.tls.ca == str(ca)
    with pytest.raises(ConfigError) as ei:
        _load(scaip={**GOOD, "transport": "tls", "tls": {"cert": str(ca)}})
    assert "scaip.tls.cert" in str(ei.value) and "together" in str(ei.value)


def test_scaip_only_is_allowed_mqtt_off_alone_is_not():
    cfg = _load(uplink={"enabled": False}, scaip=GOOD)
    assert not cfg.uplink.enabled and cfg.scaip.enabled
    with pytest.raises(ConfigError) as ei:
        _load(uplink={"enabled": False})
    assert "uplink.enabled = false: no route for alarms" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        _load(uplink={"enabled": False, "fallback": {"enabled": True, "host": "fb.example.net"}},
              scaip={**GOOD, "role": "fallback"})
    text = str(ei.value)
    assert "uplink.fallback.enabled" in text and 'scaip.role = "fallback"' in text


def test_misspelt_key_gets_a_did_you_mean():
    with pytest.raises(ConfigError) as ei:
        _load(scaip={**GOOD, "heartbeat_intervall_s": 60})
    assert "did you mean heartbeat_interval_s?" in str(ei.value)
