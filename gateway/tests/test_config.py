"""Config schema: defaults, override order, validation messages, `gateway config check`."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from gateway.config import BleScanMode, ConfigError, GatewayConfig, load_config, to_toml
from gateway.domain.model import Role

ROOT = Path(__file__).resolve().parents[2]
KEY = "00112233445566778899aabbccddeeff"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return p


def issues_of(exc: ConfigError) -> dict[str, str]:
    return {i.key: str(i) for i in exc.issues}


def test_defaults_are_the_seed_examples():
    cfg = load_config(None, env={})
    assert cfg.rules.bed.max_out_min == 30
    assert cfg.rules.bed.window_start == dt.time(20, 30) and cfg.rules.bed.window_end == dt.time(6, 0)
    assert cfg.gateway.timezone == "Europe/Oslo"
    assert cfg.supervision.silent_after_s <= 180  # device silent detected within 3 minutes
    assert cfg.journal_path == Path(cfg.gateway.data_dir) / "journal.sqlite"
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'id'"):
        cfg.gateway.id = "x"  # frozen


def test_full_file_parses_into_typed_values(tmp_path):
    p = write(tmp_path, f"""
[gateway]
id = "gw-0001"
data_dir = "{tmp_path}"
[uplink]
host = "broker.example.net"
port = 8883
[uplink.fallback]
enabled = true
host = "fb.example.net"
[serial]
ports = ["/dev/ttyUSB0", "/dev/ttyACM0"]
[devices.a4c1380a1b2c]
role = "button"
key = "{KEY}"
[devices.a4c1380a1b2d]
role = "gps"
silent_after_s = 900
[rules.bed]
window_start = "21:00"
max_out_min = 20
[[rules.geofence.zones]]
id = "home"
lat = 59.91
lon = 10.75
radius_m = 250
[[rules.geofence.zones]]
id = "park"
shape = "polygon"
points = [[59.0, 10.0], [59.1, 10.0], [59.1, 10.1]]
""")
    cfg = load_config(p, env={})
    assert cfg.uplink.port == 8883 and cfg.uplink.fallback.host == "fb.example.net"
    assert cfg.serial.ports == ("/dev/ttyUSB0", "/dev/ttyACM0")
    dev = cfg.device("a4c1380a1b2c")
    assert dev is not None and dev.role is Role.BUTTON and dev.key == bytes.fromhex(KEY)
    assert cfg.device_keys == {"a4c1380a1b2c": bytes.fromhex(KEY)}
    assert cfg.device("a4c1380a1b2d").silent_after_s == 900
    assert cfg.rules.bed.window_start == dt.time(21, 0) and cfg.rules.bed.max_out_min == 20
    assert [z.id for z in cfg.rules.geofence.zones] == ["home", "park"]
    assert cfg.rules.geofence.zones[1].points[2] == (59.1, 10.1)
    # printed config round-trips and never shows the key
    text = to_toml(cfg)
    assert KEY not in text and "<redacted>" in text
    assert KEY not in cfg.to_json()


def test_override_order_cli_over_env_over_file(tmp_path):
    p = write(tmp_path, '[uplink]\nhost = "file-host"\nport = 1000\nkeepalive_s = 40\n')
    env = {"WT_GW__UPLINK__HOST": "env-host", "WT_GW__UPLINK__PORT": "2000", "OTHER": "x"}
    cfg = load_config(p, env=env, overrides=["uplink.port=3000"])
    assert cfg.uplink.host == "env-host"       # env beats file
    assert cfg.uplink.port == 3000             # CLI beats env
    assert cfg.uplink.keepalive_s == 40        # file beats default
    assert load_config(None, env={}).uplink.keepalive_s == 30


def test_error_names_key_value_and_fix(tmp_path):
    p = write(tmp_path, "[rules.bed]\nmax_out_min = -5\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p, env={})
    assert str(ei.value.issues[0]) == "rules.bed.max_out_min = -5: must be ≥ 1 minute; set e.g. max_out_min = 30"


def test_every_problem_is_reported_at_once(tmp_path):
    p = write(tmp_path, f"""
[gateway]
id = "GW 1"
timezone = "Mars/Olympus"
[uplink]
prot = 1883
keepalive_s = "30"
[ble]
enabled = 1
[devices.a4c1380a1b2c]
role = "toaster"
[devices.a4c1380a1b2d]
role = "button"
name = "Kari Nordmann"
[devices.XYZ]
role = "door"
[devices.a4c1380a1b2e]
role = "door"
key = "abcd"
[rules.door]
window_start = "24:10"
[rules.battery]
low_pct = 40
rearm_pct = 30
[[rules.geofence.zones]]
id = "home"
[uplink.tls]
ca = "{tmp_path}/missing.pem"
""")
    with pytest.raises(ConfigError) as ei:
        load_config(p, env={})
    got = issues_of(ei.value)
    assert "did you mean port" in got["uplink.prot"]
    assert "whole number" in got["uplink.keepalive_s"]
    assert "true or false" in got["ble.enabled"]
    assert "must be one of" in got["devices.a4c1380a1b2c.role"] and "button" in got["devices.a4c1380a1b2c.role"]
    assert "pseudonymous" in got["devices.a4c1380a1b2d.name"]
    assert "12 lower-case hex" in got["devices.XYZ"]
    assert "32 hex digits" in got["devices.a4c1380a1b2e.key"] and "abcd" not in got["devices.a4c1380a1b2e.key"]
    assert "HH:MM" in got["rules.door.window_start"]
    assert "above low_pct" in got["rules.battery.rearm_pct"]
    assert "radius_m" in got["rules.geofence.zones[0].radius_m"]
    assert "file not found" in got["uplink.tls.ca"]
    assert "gateway.id" in got and "gateway.timezone" in got


def test_unreadable_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.toml", env={})
    assert "cannot read" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, "[gateway\nid = 1"), env={})
    assert "TOML syntax" in str(ei.value)


def test_env_override_is_validated_too():
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={"WT_GW__RULES__BED__MAX_OUT_MIN": "0"})
    assert "rules.bed.max_out_min = 0" in str(ei.value)


def test_config_check_cli(tmp_path, capsys):
    good = write(tmp_path, f'[gateway]\nid = "gw-0042"\n[devices.a4c1380a1b2c]\nrole = "bed"\nkey = "{KEY}"\n')
    assert cli_main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert 'id = "gw-0042"' in out and "[devices.a4c1380a1b2c]" in out and KEY not in out
    assert cli_main(["config", "check", str(good), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gateway"]["id"] == "gw-0042" and data["devices"]["a4c1380a1b2c"]["role"] == "bed"
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules.bed]\nmax_out_min = -5\n")
    assert cli_main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rules.bed.max_out_min = -5: must be ≥ 1 minute; set e.g. max_out_min = 30" in err


def test_example_config_is_valid():
    cfg = load_config(ROOT / "gateway" / "example-gateway.toml", env={})
    assert isinstance(cfg, GatewayConfig) and cfg.devices


def test_config_module_imports_no_io_libraries():
    code = ("import sys, gateway.config, gateway.domain.rules, gateway.domain.devices, gateway.adapters.mains, gateway.domain.remote, "
            "gateway.domain.config_push, gateway.adapters.status, gateway.testing.emulator, gateway.adapters.transports, gateway.testing.emulated_link;"
            "bad = [m for m in ('paho', 'serial', 'bleak', 'zeroconf', 'sqlite3') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_schema_key_is_documented():
    import dataclasses
    import typing

    from gateway.config import DeviceSection, Zone

    doc = (ROOT / "docs" / "gateway-config.md").read_text()

    def keys(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                yield from keys(tp, prefix + f.name + ".")
            elif f.name not in ("devices", "zones", "id") or cls.__name__ == "GatewaySection":
                yield prefix + f.name

    missing = [k for k in [*keys(GatewayConfig, ""), *keys(DeviceSection, "devices.<id>."),
                           *keys(Zone, "rules.geofence.zones[].")] if f"`{k}`" not in doc]
    assert missing == []


def test_gatt_device_link_needs_ble():
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"devices": {"a4c1380a1b2c": {"role": "gps", "link": "ble-gatt"}}})
    assert 'devices.a4c1380a1b2c.link = "ble-gatt": needs BLE' in str(ei.value)
    cfg = load_config(None, env={}, overrides={"ble": {"enabled": True},
                                                "devices": {"a4c1380a1b2c": {"role": "gps", "link": "ble-gatt"}}})
    assert cfg.device("a4c1380a1b2c").link.value == "ble-gatt"


def test_nested_overrides_merge_tables_and_fleet_layer_sits_between_file_and_env(tmp_path):
    p = write(tmp_path, '[gateway]\nid = "gw-file"\ndata_dir = "/srv/gw"\n[rules.bed]\nmax_out_min = 40\n')
    cfg = load_config(p, env={"WT_GW__RULES__DOOR__REPEAT_AFTER_MIN": "9"},
                      fleet={"rules": {"bed": {"window_start": "21:00"}, "door": {"repeat_after_min": 2}},
                             "gateway": {"timezone": "UTC"}},
                      overrides={"gateway": {"log_level": "debug"}})
    assert cfg.gateway.id == "gw-file" and cfg.gateway.data_dir == "/srv/gw"       # tables merged, not replaced
    assert cfg.gateway.timezone == "UTC" and cfg.gateway.log_level.value == "debug"
    assert cfg.rules.bed.max_out_min == 40 and cfg.rules.bed.window_start.hour == 21  # fleet over file, per key
    assert cfg.rules.door.repeat_after_min == 9                                       # env over fleet
    with pytest.raises(ConfigError) as ei:
        load_config(p, env={}, fleet={"rules": {"bed": {"max_out_min": 0}}})
    assert "rules.bed.max_out_min = 0" in str(ei.value)


def test_ble_pair_and_scan_mode_are_settable_as_docs_ble_md_says(tmp_path):
    """docs/ble.md tells operators to set pairing and passive scanning: both are config keys."""
    cfg = load_config(None, env={})
    assert (cfg.ble.pair, cfg.ble.scan_mode) == (False, BleScanMode.ACTIVE)
    p = write(tmp_path, '[ble]\nenabled = true\npair = true\nscan_mode = "passive"\n')
    cfg = load_config(p, env={})
    assert (cfg.ble.pair, cfg.ble.scan_mode) == (True, BleScanMode.PASSIVE)
    assert 'scan_mode = "passive"' in to_toml(cfg) and "pair = true" in to_toml(cfg)
    cfg = load_config(p, env={"WT_GW__BLE__PAIR": "false"}, overrides=["ble.scan_mode=active"])
    assert (cfg.ble.pair, cfg.ble.scan_mode) == (False, BleScanMode.ACTIVE)
    with pytest.raises(ConfigError) as ei:
        load_config(None, env={}, overrides={"ble": {"scan_mode": "pasive", "pair": 1, "paired": True}})
    got = issues_of(ei.value)
    assert got["ble.scan_mode"] == 'ble.scan_mode = "pasive": must be one of active, passive; set e.g. scan_mode = "active"'
    assert "true or false" in got["ble.pair"]
    assert got["ble.paired"] == "ble.paired = true: unknown key; did you mean pair?"
    doc = (ROOT / "docs" / "ble.md").read_text()
    assert "scan_mode = \"passive\"" in doc and "pair = true" in doc


def test_contract_push_is_applied_and_reported():
    """A wt.config/1 encoded by the contract (as the fleet sends it) -> decode_push/decide ->
    applied_payload decoded by the contract. The fleet half is fleet/tests/test_config.py."""
    import gateway.domain.config_push as fc
    from contracts.gateway_config import IMMUTABLE
    from contracts.payloads import AppliedStatus, ConfigApplied, decode_applied, encode_config

    def load(layer):
        return load_config(None, env={}, fleet=layer)

    layer = {"rules": {"bed": {"window_start": "21:00", "max_out_min": 30}}, "uplink": {"host": "arc.oslo"},
             "devices": {"a4c1380a1b2c": {"role": "bed"}}}
    push = fc.decode_push(encode_config(version=3, config=layer, hash="sha256:ab"))
    current = load_config(None, env={})
    d = fc.decide(push, current, None, load)
    assert d.action == "apply", d.error
    assert d.config.rules.bed.window_start == dt.time(21, 0) and d.config.device("a4c1380a1b2c").role is Role.BED
    report = decode_applied(json.dumps(fc.applied_payload(push, "applied", None)).encode())
    assert report == ConfigApplied(3, AppliedStatus.APPLIED, None, "sha256:ab")
    assert fc.decide(push, d.config, push, load).action == "report"      # the retained push again
    assert fc.IMMUTABLE == IMMUTABLE
    assert {"gateway.id", "gateway.data_dir", "journal.path", "trust.fleet_key", "upgrades.trusted_keys"} <= set(IMMUTABLE)
    other = fc.decode_push(encode_config(version=4, config={"gateway": {"id": "gw-other"}}, hash=None))
    d = fc.decide(other, d.config, push, load)
    assert d.action == "reject" and d.error.startswith("gateway.id cannot be changed remotely")
