"""Secure by default (F18): the broker connection is MQTT over TLS on 8883 unless the broker is
this machine, and a password is never sent over plain MQTT to another host.

It used to be: ``port = 1883``, ``tls.enabled = false`` by default, and a password to a remote
broker in clear was accepted without a word."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts.gateway_config import ConfigError, validate
from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.security


def test_F18_default_config_is_tls_on_8883():
    cfg = load_config(None, env={})
    assert cfg.uplink.port == 8883 and cfg.uplink.tls.enabled is True
    assert cfg.uplink.fallback.port == 8883 and cfg.uplink.fallback.tls.enabled is True


def test_a_remote_broker_is_tls_even_on_another_port_when_enabled_is_left_unset():
    cfg = load_config(None, env={}, overrides={"uplink": {"host": "broker.example.net", "port": 1883}})
    assert cfg.uplink.tls.enabled is True


@pytest.mark.parametrize("host", ["broker.example.net", "10.0.0.7", "2001:db8::1"])
def test_F18_a_password_without_tls_to_another_host_is_refused_naming_the_keys_and_the_fix(host):
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"uplink": {"host": host, "port": 1883, "tls": {
            "enabled": False, "username": "gw-0001", "password": "s3cret-pw"}}})
    [issue] = ei.value.issues
    text = str(issue)
    assert issue.key == "uplink.tls.enabled"
    assert "uplink.tls.password is set but TLS is off" in text and host in text
    assert "set enabled = true in [uplink.tls] (and port = 8883)" in text and "remove password" in text
    assert "s3cret-pw" not in str(ei.value)


def test_the_fallback_broker_follows_the_same_rule():
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"uplink": {"fallback": {
            "enabled": True, "host": "fallback.example.net", "port": 1883,
            "tls": {"enabled": False, "username": "gw-0001", "password": "pw"}}}})
    assert [i.key for i in ei.value.issues] == ["uplink.fallback.tls.enabled"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.1.1"])
def test_plain_mqtt_to_a_loopback_broker_stays_possible_with_a_password_too(host):
    cfg = load_config(None, env={}, overrides={"uplink": {"host": host, "port": 1883, "tls": {
        "enabled": False, "username": "gw-0001", "password": "pw"}}})
    assert cfg.uplink.tls.enabled is False


def test_a_private_loopback_broker_on_its_own_port_needs_no_tls_setting():
    """The demo and the tests: ``port = N`` on the default host 127.0.0.1 connects plain."""
    cfg = load_config(None, env={}, overrides={"uplink": {"port": 41883}})
    assert cfg.uplink.host == "127.0.0.1" and cfg.uplink.tls.enabled is False
    # ... unless TLS is asked for: the TLS port, a CA, or enabled = true
    assert load_config(None, env={}, overrides={"uplink": {"port": 8883}}).uplink.tls.enabled is True
    assert load_config(None, env={}, overrides={"uplink": {"port": 41883, "tls": {"enabled": True}}}).uplink.tls.enabled


def test_the_fleet_refuses_such_a_push_with_the_same_schema():
    with pytest.raises(ConfigError) as ei:
        validate({"uplink": {"host": "broker.example.net", "tls": {"enabled": False, "username": "u",
                                                                    "password": "p"}}})
    assert ei.value.issues[0].key == "uplink.tls.enabled"


def test_gateway_config_check_exits_2_with_the_message(tmp_path):
    f = tmp_path / "gw.toml"
    f.write_text('[uplink]\nhost = "broker.example.net"\nport = 1883\n[uplink.tls]\nenabled = false\n'
                 'username = "gw-0001"\npassword = "pw-in-clear"\n')
    p = subprocess.run([sys.executable, "-m", "gateway", "config", "check", str(f)], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "uplink.tls.enabled = false: uplink.tls.password is set but TLS is off" in p.stderr
    assert "pw-in-clear" not in p.stderr + p.stdout
