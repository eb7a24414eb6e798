"""Device registry: configured vs unknown devices, updates, bounds, snapshot."""
from __future__ import annotations

from gateway.config import load_config
from gateway.domain.devices import DeviceRegistry
from gateway.domain.ingress import DeviceUpdate
from gateway.domain.model import Role


def reg(**kw) -> DeviceRegistry:
    cfg = load_config(None, env={}, overrides={"devices": {
        "a4c1380a1b2c": {"role": "button", "silent_after_s": 60}, "a4c1380a1b2d": {"role": "bed"}}})
    return DeviceRegistry(cfg.devices, default_silent_after_s=180, **kw)


def test_configured_devices_known_before_first_frame():
    r = reg()
    st = r.get("a4c1380a1b2c")
    assert st.configured and st.supervised and st.role is Role.BUTTON and st.last_seen is None
    assert r.silent_after_s(st) == 60 and r.silent_after_s(r.get("a4c1380a1b2d")) == 180


def test_apply_ingress_update_keeps_latest_values():
    r = reg()
    r.apply(DeviceUpdate("a4c1380a1b2c", 100.0, "serial:/dev/ttyUSB0", battery_pct=80, rssi=-60, fw_version="1.0.0"),
            mono=10.0)
    r.apply(DeviceUpdate("a4c1380a1b2c", 90.0, "serial:/dev/ttyUSB0", rssi=-55), mono=11.0)   # older wall time
    r.apply(DeviceUpdate("a4c1380a1b2c", 120.0, "ble", battery_pct=None, rssi=0x7F), mono=12.0)  # unknown rssi
    st = r.get("a4c1380a1b2c")
    assert st.last_seen == 120.0 and st.last_seen_mono == 12.0
    assert st.battery_pct == 80 and st.rssi == -55 and st.fw_version == "1.0.0" and st.link == "ble"
    assert st.frames == 3


def test_unknown_devices_tracked_but_bounded_and_unsupervised():
    r = reg(max_unknown=3)
    for i in range(10):
        r.seen(f"ffffffff00{i:02x}", 1.0, role=Role.DOOR, battery_pct=150)
    unknown = [s for s in r if not s.configured]
    assert len(unknown) == 3 and not any(s.supervised for s in unknown)
    assert unknown[0].battery_pct is None and unknown[0].role is Role.DOOR   # 150 % ignored


def test_snapshot_lists_configured_first():
    r = reg()
    r.seen("0000000000aa", 5.0)
    snap = r.snapshot()
    assert [d["device"] for d in snap] == ["a4c1380a1b2c", "a4c1380a1b2d", "0000000000aa"]
    assert snap[0]["role"] == "button" and snap[2]["configured"] is False and snap[0]["silent"] is False
