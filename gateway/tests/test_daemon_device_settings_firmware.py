"""Device settings end to end: the gateway configuration's ``devices.<id>.placement``
reaches the real fall sensor firmware (MicroPython unix port, hil_tests' runner, its UART on
a pty) through the real gateway daemon (bootstrap, serial link), and selects its detector.

The fall sensor starts as ``waist`` (the firmware default); the gateway's configuration says
``wrist``. At the device's HELLO (config_version 0) the gateway sends CONFIG; the device
saves and applies it and ACKs; a replayed fall then raises ``fall_detected`` with placement
byte 0 (wrist; a waist detector would say 2). After a restart the device's HELLO reports
the version it saved and nothing is sent again; its next fall is a wrist fall again (the
setting is in its flash). A second device, configured as a fall sensor in the gateway but
running the button firmware, refuses the setting with ERROR 6 naming the key: refused, with
the device's text, and not sent again."""
from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.domain.device_settings import settings_version
from gateway.testing.platform import FakePublisher
from gateway.testing.stimuli import write_replay
from gateway.testing.waiting import async_wait_until

FALL = "b0e1c4000021"
FALL_KEY = "2f1e2d3c4b5a69788796a5b4c3d2e1f0"
BUTTON = "b0e1c4000022"
BUTTON_KEY = "3f1e2d3c4b5a69788796a5b4c3d2e1f1"
RATE = 50
LEAD_S = 20.0        # standing still after boot: the settings arrive (~1-8 s, more on a loaded machine) before the fall


def fall_trace(path: Path) -> float:
    """A wrist fall as firmware/tests/test_fall.py builds it: standing, falling (0.4 s, low g),
    a 100 ms 4 g impact, lying still with the forearm flat. Returns the impact time (s)."""
    rng = random.Random(3)
    out: list[tuple[int, int, int]] = []

    def add(seconds: float, vec: tuple[float, float, float], noise: float = 0.02) -> None:
        for _ in range(int(seconds * RATE)):
            x, y, z = (round((v + rng.gauss(0, noise)) * 1000) for v in vec)
            out.append((x, y, z))

    add(LEAD_S, (0.0, -1.0, 0.05))
    n = int(0.4 * RATE)
    for k in range(n):
        a = (k + 1) / n * math.pi / 2
        out.append((0, int(-400 * math.cos(a)), int(400 * math.sin(a))))
    impact_s = len(out) / RATE
    g = 4.0
    for _ in range(100 * RATE // 1000):
        out.append((int(g * 300), int(-g * 400), int(g * 860)))
    out.append((200, -300, 1900))
    add(8, (0.05, 0.05, 1.0), 0.01)
    write_replay(path, out)
    return impact_s


def _falls(pub: FakePublisher) -> list[dict]:
    alarms = [json.loads(p.payload) for p in pub.published if p.topic.endswith("/alarm")]
    return [a for a in alarms if a.get("type") == "fall_detected"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_placement_from_the_gateway_config_reaches_the_real_firmware_and_selects_its_detector(
        tmp_path, micropython_bin):
    from hil_tests.emulated import DeviceSpec, FirmwareProcess
    from hil_tests.faults import SerialFaultProxy

    impact_s = fall_trace(tmp_path / "fall.mg")
    fall_spec = DeviceSpec(name="fall", role="fall", device_id=FALL, key=FALL_KEY, acc=tmp_path / "fall.mg",
                           cfg={"cancel_s": 1, "not_worn_min": 0, "heartbeat_s": 600})     # placement: default waist
    button_spec = DeviceSpec(name="button", role="button", device_id=BUTTON, key=BUTTON_KEY,
                             cfg={"heartbeat_s": 600})
    proxies = [SerialFaultProxy().start(), SerialFaultProxy().start()]
    fall = FirmwareProcess(fall_spec, proxies[0].device_path, tmp_path)
    button = FirmwareProcess(button_spec, proxies[1].device_path, tmp_path)
    pub = FakePublisher()
    version = settings_version({"placement": "wrist"})

    async def run() -> None:
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": "gw-settings", "data_dir": str(tmp_path / "gw")},
            "status": {"port": 0}, "discovery": {"enabled": False}, "supervision": {"tick_s": 0.2},
            "serial": {"ports": [p.gateway_path for p in proxies], "reconnect_s": 0.2},
            "devices": {FALL: {"role": "fall", "key": FALL_KEY, "placement": "wrist"},
                        # misconfigured: the gateway thinks it is a fall sensor, the firmware is a button
                        BUTTON: {"role": "fall", "key": BUTTON_KEY, "placement": "pendant"}}})
        rt = bootstrap(cfg, loop=loop, publisher=pub, advertise=False)
        await rt.async_start()

        def settings() -> dict:
            return rt.reporter.snapshot()["device_settings"]

        def state(dev: str) -> str:
            return settings()["devices"][dev]["state"]

        try:
            fall.start()
            button.start()
            await async_wait_until(lambda: state(FALL) == "synced", LEAD_S - 3,
                                   f"fall sensor settings synced before its replayed fall\n{settings()}\n{fall.log()}")
            d = settings()["devices"][FALL]
            # one CONFIG (a slow ACK on a loaded machine may make the gateway re-send it: same CONFIG, new seq)
            assert d["reported_version"] == version == d["version"] and d["sent"] == 1 and d["acked"] == 1
            snap = rt.reporter.snapshot()
            assert {x["device"]: x.get("settings") for x in snap["devices"]}[FALL] == "synced"

            # the device now runs the wrist detector: its fall says placement 0 (waist would be 2)
            await async_wait_until(lambda: _falls(pub), impact_s + 30, f"fall alarm\n{fall.log()}")
            (alarm,) = _falls(pub)
            assert alarm["device"] == FALL and alarm["data"]["placement"] == 0, alarm

            # the button firmware refuses the fall setting: ERROR 6 naming the key, kept, not re-sent
            await async_wait_until(lambda: state(BUTTON) == "refused", 30, f"refusal\n{button.log()}")
            b = settings()["devices"][BUTTON]
            assert b["reason"].startswith("placement='pendant': unknown key"), b
            assert b["refused"] == 1 and b["sent"] == 1
            assert settings()["counters"]["refused"] == 1

            # restart the fall sensor: HELLO reports the saved version, nothing is sent again,
            # and the next fall (the trace replays from the boot) is a wrist fall again
            fall.stop()
            await async_wait_until(lambda: fall.proc is not None and fall.proc.poll() is not None, 15, "stopped")
            hellos = rt.stats["time_sent"]
            resent_before = settings()["devices"][FALL]["resent"]
            fall.start()
            await async_wait_until(lambda: rt.stats["time_sent"] > hellos, 30, "the HELLO after the restart answered")
            await async_wait_until(lambda: len(_falls(pub)) == 2, impact_s + 30, f"second fall\n{fall.log()}")
            assert _falls(pub)[1]["data"]["placement"] == 0
            d = settings()["devices"][FALL]
            assert d["state"] == "synced" and d["sent"] == 1 and d["resent"] == resent_before, d
            assert settings()["devices"][BUTTON]["sent"] == 1                 # refused: never re-sent
        finally:
            await rt.async_stop()

    try:
        asyncio.run(run())
    finally:
        fall.stop()
        button.stop()
        for p in proxies:
            p.close()
