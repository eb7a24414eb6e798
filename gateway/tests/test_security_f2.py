"""F2: a gateway's own credentials (from its SD card) could publish its platform acks, its
commands and its retained config; ``test_mode`` marked real alarms ``test: true`` for up to
24 h, renewable, undispatched.

- On a real Mosquitto with the reference configuration and ACL (docs/mosquitto.conf,
  docs/mosquitto.acl as they are): the gateway identity publishes on its own ``ack``,
  ``cmd`` and ``config`` (retained) and on another gateway's and a tracker's topics — none of
  it reaches anyone; the platform's ack and the fleet's command do; the gateway can still
  publish what it must (alarm, event, state, health, config/applied, cmd/result).
- On the real daemon: ``test_mode`` above 60 min is refused and nothing changes; within it,
  status and ``wt.health/1`` say active and until; the platform still receives the alarm,
  marked ``test: true`` with ``data.test_mode_until``; the same signed command delivered again
  does not renew it.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import pytest

from contracts.payloads import parse_time

pytestmark = pytest.mark.security
ROOT = Path(__file__).resolve().parents[2]
USERS = {"fleet": "fleet-pw", "platform": "platform-pw", "gw-aaa": "gw-a-pw", "gw-bbb": "gw-b-pw",
         "a4c1380a1b2c": "tracker-pw"}


@pytest.fixture
def reference_broker(tmp_path):
    """docs/mosquitto.conf with docs/mosquitto.acl as is; the plain local listener (same users and
    ACL: per_listener_settings false) on a free port, the TLS listener on another."""
    from testkit.refbroker import start_reference_broker

    b = start_reference_broker(tmp_path, USERS)
    yield b
    b.stop()


class Client:
    """A bare paho MQTT v5 client logged in as ``user``: what anyone holding those credentials can do."""

    def __init__(self, port: int, user: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt

        self.got: list[tuple[str, bytes, bool]] = []
        self.pubacks: dict[int, int] = {}
        self._cv = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, USERS[user])
        self.c.on_message = lambda c, u, m: self._got(m.topic, m.payload, m.retain)
        self.c.on_publish = self._puback
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        deadline = time.monotonic() + 10
        while not self.c.is_connected():
            assert time.monotonic() < deadline, f"{user} could not connect"
            time.sleep(0.02)

    def _got(self, topic: str, payload: bytes, retain: bool) -> None:
        with self._cv:
            self.got.append((topic, payload, retain))
            self._cv.notify_all()

    def _puback(self, c, u, mid, reason_code, props) -> None:
        with self._cv:
            self.pubacks[mid] = getattr(reason_code, "value", reason_code)
            self._cv.notify_all()

    def subscribe(self, *filters: str) -> None:
        for f in filters:
            self.c.subscribe(f, qos=1)
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """QoS 1; the broker's PUBACK reason code (0 = accepted, 0x87 = not authorised)."""
        mid = self.c.publish(topic, payload, qos=1, retain=retain).mid
        with self._cv:
            self._cv.wait_for(lambda: mid in self.pubacks, 10)
            return self.pubacks[mid]

    def topics(self) -> list[str]:
        with self._cv:
            return [t for t, _, _ in self.got]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_F2_a_gateway_identity_cannot_fake_acks_commands_or_config_on_the_reference_broker(reference_broker):
    port = reference_broker.plain_port
    own = Client(port, "gw-aaa", "gw-aaa-primary")            # the gateway itself, reading what is its to read
    own.subscribe("wt/v1/gw/gw-aaa/ack", "wt/v1/gw/gw-aaa/cmd", "wt/v1/gw/gw-aaa/config")
    fleet = Client(port, "fleet", "fleet-ingest")
    fleet.subscribe("wt/v1/gw/+/alarm", "wt/v1/gw/+/ack", "wt/v1/gw/+/health", "wt/v1/gw/+/config/applied",
                    "wt/v1/gw/+/cmd/result", "wt/v1/gw/+/state", "wt/v1/gw/+/event")
    platform = Client(port, "platform", "platform")
    platform.subscribe("wt/v1/gw/+/alarm", "wt/v1/dev/+/alarm")
    thief = Client(port, "gw-aaa", "gw-aaa-thief")            # the same credentials, taken from the SD card
    try:
        fake_ack = b'{"schema":"wt.ack/1","event_id":"gw-aaa-g0000000001","status":"received"}'
        denied = {
            "wt/v1/gw/gw-aaa/ack": thief.publish("wt/v1/gw/gw-aaa/ack", fake_ack),
            "wt/v1/gw/gw-aaa/cmd": thief.publish("wt/v1/gw/gw-aaa/cmd", b'{"schema":"wt.cmd/1","cmd_id":"x",'
                                                                       b'"cmd":"test_mode","args":{}}'),
            "wt/v1/gw/gw-aaa/config": thief.publish("wt/v1/gw/gw-aaa/config", b'{"schema":"wt.config/1"}',
                                                    retain=True),
            "wt/v1/gw/gw-bbb/alarm": thief.publish("wt/v1/gw/gw-bbb/alarm", b"{}"),
            "wt/v1/gw/gw-bbb/ack": thief.publish("wt/v1/gw/gw-bbb/ack", fake_ack),
            "wt/v1/dev/a4c1380a1b2c/alarm": thief.publish("wt/v1/dev/a4c1380a1b2c/alarm", b"{}"),
        }
        allowed = {t: thief.publish(f"wt/v1/gw/gw-aaa/{t}", b"{}")
                   for t in ("alarm", "event", "state", "health", "config/applied", "cmd/result")}
        # the real ones still work: the platform's ack, the fleet's command
        assert platform.c.publish("wt/v1/gw/gw-aaa/ack", fake_ack, qos=1).wait_for_publish(10) is None
        fleet.c.publish("wt/v1/gw/gw-aaa/cmd", b'{"schema":"wt.signed/1"}', qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 5
        while (own.topics().count("wt/v1/gw/gw-aaa/ack") < 1 or "wt/v1/gw/gw-aaa/cmd" not in own.topics()
               or len(set(fleet.topics()) & {f"wt/v1/gw/gw-aaa/{t}" for t in allowed}) < len(allowed)):
            assert time.monotonic() < deadline, (own.topics(), fleet.topics())
            time.sleep(0.05)
        time.sleep(0.5)
        assert own.topics().count("wt/v1/gw/gw-aaa/ack") == 1 and own.topics().count("wt/v1/gw/gw-aaa/cmd") == 1
        assert "wt/v1/gw/gw-aaa/config" not in own.topics()
        acks = [p for t, p, _ in own.got if t.endswith("/ack")]
        assert acks == [fake_ack]                                   # the platform's one, not the thief's
        assert "wt/v1/gw/gw-bbb/alarm" not in fleet.topics() and "wt/v1/gw/gw-bbb/ack" not in fleet.topics()
        assert fleet.topics().count("wt/v1/gw/gw-aaa/ack") == 1 and "wt/v1/dev/a4c1380a1b2c/alarm" not in \
            platform.topics()
        assert all(rc == 0 for rc in allowed.values()), allowed
        assert all(rc == 0x87 for rc in denied.values()), denied     # MQTT v5: refused, said, not silently dropped
        late = Client(port, "gw-aaa", "gw-aaa-restart")            # nothing retained was planted
        late.subscribe("wt/v1/gw/gw-aaa/config")
        time.sleep(0.5)
        assert late.topics() == []
        late.close()
    finally:
        for c in (own, fleet, platform, thief):
            c.close()


def test_F2_reference_acl_grants_a_gateway_writes_only_on_what_it_must_write():
    acl = (ROOT / "docs" / "mosquitto.acl").read_text()
    writes = sorted(m.group(1) for m in re.finditer(r"^pattern (?:write|readwrite) (wt/v1/gw/%u/\S+)$", acl, re.M))
    assert writes == sorted(f"wt/v1/gw/%u/{k}" for k in ("alarm", "event", "state", "health", "config/applied",
                                                          "cmd/result"))
    assert not re.search(r"^(pattern|topic) (readwrite|write) .*(/ack|/cmd|/config)$", acl.split("user fleet")[0],
                         re.M)
    platform = acl.split("user platform", 1)[1].split("\n# ---", 1)[0]
    fleet = acl.split("user fleet", 1)[1].split("\n# ---", 1)[0]
    assert "topic write wt/v1/gw/+/ack" in platform and "/ack" not in "".join(
        line for line in fleet.splitlines() if line.startswith("topic write"))


def test_F2_test_mode_is_bounded_signed_visible_and_the_alarm_still_reaches_the_platform(tmp_path, mosquitto):
    from gateway.config import load_config
    from gateway.daemon import bootstrap
    from gateway.domain.model import Role
    from gateway.domain.ports import SystemClock
    from gateway.testing.control import FleetKey
    from gateway.testing.emulator import EmulatedHome, key_for
    from gateway.testing.platform import PahoLink, PlatformSim

    fleet = FleetKey.create(tmp_path / "keys")
    gw, dev = "gw-tm", "e00000000001"
    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": gw, "data_dir": str(tmp_path / "gw")},
        "uplink": {"port": mosquitto.port, "ack_timeout_s": 5}, "status": {"port": 0}, "discovery": {"enabled": False},
        "devices": {dev: {"role": "button", "key": key_for(dev).hex()}},
        "trust": {"fleet_key": str(fleet.public_path)}})
    results: list[dict] = []
    health: list[dict] = []

    async def until(pred, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        while not pred():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    async def run():
        loop = asyncio.get_running_loop()
        clock = SystemClock()
        rt = bootstrap(cfg, loop=loop, clock=clock)
        home = EmulatedHome(loop, clock, [(dev, Role.BUTTON, key_for(dev))], heartbeat_s=30)
        rt.attach_emulated(home)
        sim = PlatformSim.on_broker("127.0.0.1", mosquitto.port, client_id="t-platform").start(gw)
        fl = PahoLink("127.0.0.1", mosquitto.port, client_id="t-fleet")
        fl.subscribe(f"wt/v1/gw/{gw}/cmd/result", lambda t, p: results.append(json.loads(p)))
        fl.subscribe(f"wt/v1/gw/{gw}/health", lambda t, p: health.append(json.loads(p)))
        fl.start()
        await rt.async_start()
        try:
            await until(lambda: rt.uplink_connected())
            await asyncio.sleep(0.3)

            async def command(cmd_id: str, payload: bytes) -> dict:
                fl.publish(f"wt/v1/gw/{gw}/cmd", payload, qos=1)
                await until(lambda: any(r["cmd_id"] == cmd_id for r in results))
                return [r for r in results if r["cmd_id"] == cmd_id][-1]

            too_long = await command("t0", fleet.cmd(gw, "t0", "test_mode",
                                                     {"devices": [dev], "enabled": True, "duration_s": 3601}))
            assert too_long["status"] == "error" and "at most 60 min" in too_long["detail"]["error"]
            assert rt.snapshot()["test_mode_status"]["active"] is False            # nothing half-applied
            on = fleet.cmd(gw, "t1", "test_mode", {"devices": [dev], "enabled": True, "duration_s": 3600})
            t_on = time.time()
            res = await command("t1", on)
            assert res["status"] == "ok" and abs(parse_time(res["detail"]["until"]) - (t_on + 3600)) < 5
            st = rt.snapshot()["test_mode_status"]
            assert st["active"] is True and abs(parse_time(st["until"]) - (t_on + 3600)) < 5
            assert rt.publish_health()
            await until(lambda: any((h.get("test_mode") or {}).get("active") for h in health))
            h = [h for h in health if (h.get("test_mode") or {}).get("active")][-1]
            assert h["test_mode"]["devices"] == [dev] and h["test_mode"]["until"] == st["until"]
            alarm = home.by_role(Role.BUTTON).press()
            [arr] = await asyncio.to_thread(sim.wait_for, lambda a: a.event_id == alarm.event_id, 15)
            assert arr.alarm and arr.payload["test"] is True                        # received, clearly marked
            assert arr.payload["data"]["test_mode_until"] == st["until"]
            await command("t2", fleet.cmd(gw, "t2", "test_mode", {"devices": [dev], "enabled": False}))
            assert rt.snapshot()["test_mode_status"]["active"] is False
            fl.publish(f"wt/v1/gw/{gw}/cmd", on, qos=1)                             # the old command again
            await asyncio.sleep(1.0)
            assert rt.snapshot()["test_mode_status"]["active"] is False            # not renewed
            assert rt.snapshot()["control"]["repeats"] >= 1
            live = home.by_role(Role.BUTTON).press()
            [arr] = await asyncio.to_thread(sim.wait_for, lambda a: a.event_id == live.event_id, 15)
            assert arr.payload["test"] is False and "test_mode_until" not in arr.payload["data"]
        finally:
            await rt.async_stop()
            fl.stop()
            sim.stop()
    asyncio.run(run())
