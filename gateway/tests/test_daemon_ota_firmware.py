"""``ota`` end to end: the signed ``ota`` command as the fleet sends it (contracts.release)
on a real Mosquitto → the gateway daemon verifies the release and relays it over a pty → the real firmware (firmware/lib/ota.py
on the MicroPython unix port, hil_tests' runner) installs it, reboots, says HELLO with the
new version, hears our TIME, and commits. A tampered bundle never reaches the device."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.payloads import encode_cmd
from contracts.release import Target, generate_key, install_command, sign
from contracts.topics import Kind, gateway_topic
from gateway.config import load_config
from gateway.testing.console import make_console_link
from gateway.daemon import bootstrap

ROOT = Path(__file__).resolve().parents[2]
DEV = "b0e1c4000077"
KEY = "00112233445566778899aabbccddeeff"
GW = "gw-ota"


def _build(version: str, out: Path) -> tuple[bytes, str]:
    r = subprocess.run([sys.executable, str(ROOT / "firmware" / "build.py"), "--version", version, "--role", "button",
                        "--out", str(out), "--json"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(r.stdout)
    return (out / m["bundle"]).read_bytes(), m["bundle"]


async def until(pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
def test_ota_command_installs_and_commits_on_real_firmware(tmp_path, mosquitto, micropython_bin):
    from hil_tests.emulated import DeviceSpec, FirmwareProcess
    from hil_tests.faults import SerialFaultProxy

    from gateway.testing.control import FleetKey

    fleet_key = FleetKey.create(tmp_path / "keys")      # the fleet signs every command
    priv, pub = generate_key()
    (tmp_path / "ci.pub").write_bytes(pub)
    bundle, name = _build("0.2.0", tmp_path / "build")
    signed = sign(bundle, name, Target.FW_BUTTON, "0.2.0", priv)

    spec = DeviceSpec(name="button-ota", role="button", device_id=DEV, key=KEY, cfg={"confirm_s": 5})
    proxy = SerialFaultProxy().start()
    fw = FirmwareProcess(spec, proxy.device_path, tmp_path)
    results: list[dict] = []

    async def run():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": GW, "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port}, "status": {"port": 0}, "discovery": {"enabled": False},
            "serial": {"ports": [proxy.gateway_path], "reconnect_s": 0.2}, "supervision": {"tick_s": 0.1},
            "devices": {DEV: {"role": "button", "key": KEY}},
            "upgrades": {"trusted_keys": [str(tmp_path / "ci.pub")], "ota_ack_timeout_s": 2.0},
            "trust": {"fleet_key": str(fleet_key.public_path)}})
        rt = bootstrap(cfg, loop=loop)
        fleet = make_console_link("127.0.0.1", mosquitto.port, client_id="t-ota-fleet",
                                  dispatch=loop.call_soon_threadsafe)
        fleet.subscribe(f"wt/v1/gw/{GW}/cmd/result", lambda t, p: results.append(json.loads(p)))
        fleet.start()
        await rt.async_start()
        try:
            fw.start()
            await until(lambda: rt.uplink_connected() and fleet.connected, 30, "uplink")
            await until(lambda: (st := rt.registry.get(DEV)) is not None and st.fw_version, 30, "first HELLO")
            base_fw = rt.registry.get(DEV).fw_version
            assert base_fw != "0.2.0"
            await asyncio.sleep(0.3)
            sent_before = rt.stats["time_sent"]
            assert sent_before >= 1                       # the HELLO was answered with TIME

            def of(cid):
                return [(r["status"], r["detail"].get("phase")) for r in results if r["cmd_id"] == cid]

            # tampered: refused at download, no OTA frame goes to the device
            topic, cmd = gateway_topic(GW, Kind.CMD), encode_cmd(*install_command(
                signed, deployment="t1", gateway_id=GW, device=DEV, artifact_url="fleet://x", artifact=bundle[:-1] + b"\x00"))
            fleet.publish(topic, fleet_key.wrap(GW, "wt.cmd/1", cmd), qos=1)
            await until(lambda: of(f"t1:{GW}/{DEV}:u"), 20, "tampered result")
            [(status, phase)] = of(f"t1:{GW}/{DEV}:u")
            assert (status, phase) == ("error", "download") and not rt.upgrades.ota_sessions
            # the signed bundle: relayed, installed, rebooted (HELLO 0.2.0), committed
            t0 = time.monotonic()
            topic, cmd = gateway_topic(GW, Kind.CMD), encode_cmd(*install_command(
                signed, deployment="r1", gateway_id=GW, device=DEV, artifact_url="fleet://x", artifact=bundle))
            fleet.publish(topic, fleet_key.wrap(GW, "wt.cmd/1", cmd), qos=1)
            cid = f"r1:{GW}/{DEV}:u"
            await until(lambda: any(s != "progress" for s, _ in of(cid)), 150, f"ota result ({of(cid)})\n{fw.log()}")
            took = time.monotonic() - t0
            assert of(cid) == [("progress", "downloaded"), ("progress", "installed"), ("progress", "rebooted"),
                               ("ok", "committed")], (of(cid), fw.log())
            assert rt.registry.get(DEV).fw_version == "0.2.0"
            assert rt.stats["time_sent"] > sent_before    # the new image's HELLO got TIME: that let it commit
            print(f"ota of {len(bundle)} bytes committed in {took:.1f} s")
            # the same deployment again: its result, no transfer
            fleet.publish(topic, fleet_key.wrap(GW, "wt.cmd/1", cmd), qos=1)
            await until(lambda: len(of(cid)) == 5, 20, "repeat")
            assert of(cid)[-1] == ("ok", "committed") and not rt.upgrades.ota_sessions
        finally:
            await rt.async_stop()
            fleet.stop()

    try:
        asyncio.run(run())
    finally:
        fw.stop()
        proxy.close()
