"""Daemon end to end on real adapters: pty serial device → gateway → real Mosquitto → console,
ACK back to the device, platform ack → FEEDBACK, status endpoint, SIGTERM shutdown."""
from __future__ import annotations

import asyncio
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from gateway.codec import Ack, AckStatus, Feedback, FeedbackState, Frame, MsgType, StreamDecoder, encode_frame
from gateway.codec.events import EventPayload
from gateway.codec.payloads import Heartbeat, Hello, PowerFlag, Time, decode_payload
from gateway.codec.enums import ResetCause
from gateway.domain.model import Role
from gateway.codec import encode_payload_frame
from gateway.config import load_config
from gateway.testing.console import ResponseConsole, make_console_link
from gateway.daemon import DaemonError, bootstrap
from gateway.domain.model import EventCode
from gateway.adapters.status import fetch_status

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = str(Path(sys.executable).with_name("gateway"))
DEV = "a4c1380a1b2c"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def open_pty() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


class PtyDevice:
    """The device end of the serial link: writes frames, decodes downlinks."""

    def __init__(self, master: int) -> None:
        self.fd = master
        self.dec = StreamDecoder()
        self.downlinks: list[tuple[Frame, object]] = []

    def send(self, wire: bytes) -> None:
        os.write(self.fd, wire)

    def pump(self) -> None:
        while True:
            r, _, _ = select.select([self.fd], [], [], 0)
            if not r:
                return
            for f in self.dec.feed(os.read(self.fd, 4096)):
                if isinstance(f, Frame):
                    self.downlinks.append((f, decode_payload(f.type, f.payload)))


def button(seq: int) -> bytes:
    return encode_frame(MsgType.EVENT, DEV, seq, EventPayload(EventCode.BUTTON_PRESS, 250, {}), key=KEY, urgent=True)


async def until(pred, timeout_s: float = 30.0, step=None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if step:
            step()
        if pred():
            return
        if time.monotonic() > deadline:
            import inspect
            raise AssertionError(f"condition not met within {timeout_s} s: {inspect.getsource(pred).strip()}")
        await asyncio.sleep(0.02)


def config(tmp_path: Path, port: int, pty_path: str, **extra):
    return load_config(None, env={}, overrides={
        "gateway": {"id": "gw-e2e", "data_dir": str(tmp_path / "gw")},
        "uplink": {"port": port, "health_interval_s": 1, "ack_timeout_s": 5},   # a missed first delivery is re-sent
        "serial": {"ports": [pty_path], "reconnect_s": 0.2},
        "status": {"port": 0}, "discovery": {"enabled": False},
        "supervision": {"tick_s": 0.1},
        "devices": {DEV: {"role": "button", "key": KEY.hex()}}, **extra})


def test_button_press_over_serial_reaches_broker_and_device_gets_ack(tmp_path, mosquitto):
    async def run():
        loop = asyncio.get_running_loop()
        master, path = open_pty()
        dev = PtyDevice(master)
        cfg = config(tmp_path, mosquitto.port, path)
        rt = bootstrap(cfg, loop=loop)
        clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-console", dispatch=loop.call_soon_threadsafe)
        console = ResponseConsole(clink, out=io.StringIO(), accept=True).start()
        health: list[dict] = []
        clink.subscribe("wt/v1/gw/gw-e2e/health", lambda t, p: health.append(json.loads(p)))
        clink.start()
        await rt.async_start()
        try:
            await until(lambda: rt.uplink_connected() and clink.connected
                        and all(ln.status()["state"] == "up" for ln in rt.links.values()))
            dev.send(encode_payload_frame(Heartbeat(battery_pct=77, battery_mv=3900, power_flags=PowerFlag(0),
                                                    uptime_s=5, queue_depth=0, rejects=0, rssi=-48),
                                          DEV, 1, key=KEY))
            t_press = time.time()
            dev.send(button(2))
            eid = f"{DEV}-00000002"
            await until(lambda: eid in console.stats.alarms)
            alarm = console.stats.alarms[eid]
            assert alarm.type == "button_press" and alarm.klass == "care" and alarm.gateway == "gw-e2e"
            assert alarm.received_at - t_press < 10.0       # generous: CI machines are loaded
            # the device receives ACK STORED for seq 2 (only after the journal has it)
            await until(lambda: any(isinstance(p, Ack) and p.acked_seq == 2 for _, p in dev.downlinks), step=dev.pump)
            f, ack = next((f, p) for f, p in dev.downlinks if isinstance(p, Ack))
            assert ack.status is AckStatus.STORED and f.downlink and f.verify(KEY)
            assert rt.journal.contains(eid)
            # platform ack 'accepted' → FEEDBACK state 2 for the alarm's seq
            await until(lambda: any(isinstance(p, Feedback) and p.state is FeedbackState.ACCEPTED
                                    for _, p in dev.downlinks), step=dev.pump)
            # the device lost our ACK and retransmits: ACK DUPLICATE, not stored or published twice
            dev.send(button(2))
            await until(lambda: any(isinstance(p, Ack) and p.status is AckStatus.DUPLICATE for _, p in dev.downlinks),
                        step=dev.pump)
            # a neighbour's device that is not in the configuration is rejected, not forwarded
            dev.send(encode_frame(MsgType.EVENT, "ffffffffffff", 1, EventPayload(EventCode.BUTTON_PRESS, 0, {}),
                                  key=KEY, urgent=True))
            await until(lambda: rt.ingress.counters.snapshot().get("unknown_device", 0) >= 1)
            # a HELLO (device booted) is answered with an authenticated TIME: wall time, and
            # "the gateway has heard me" (a device on a new OTA image confirms it only then)
            t_hello = time.time()
            dev.send(encode_payload_frame(Hello(Role.BUTTON, ResetCause.POWER_ON, 0, "1.2.3"), DEV, 3, key=KEY))
            await until(lambda: any(isinstance(p, Time) for _, p in dev.downlinks), step=dev.pump)
            f, tm = next((f, p) for f, p in dev.downlinks if isinstance(p, Time))
            assert f.downlink and f.verify(KEY) and abs(tm.epoch_s - t_hello) < 10
            assert rt.stats["time_sent"] == 1
            await asyncio.sleep(0.3)
            assert len(console.stats.alarms) == 1 and rt.writer.depth().total == 1
            # status endpoint and health publishing
            snap = await asyncio.to_thread(fetch_status, f"http://127.0.0.1:{rt.status_server.port}/status")
            d = next(x for x in snap["devices"] if x["device"] == DEV)
            assert d["battery_pct"] == 77 and d["rssi"] == -48 and d["silent"] is False
            assert snap["uplink"]["connected"] is True and snap["journal"]["total"] == 1
            assert snap["last_alarms"][0]["event_id"] == eid
            assert snap["links"][0]["state"] == "up"
            await until(lambda: any(h["devices"] and h["devices"][0]["battery_pct"] == 77 for h in health))
            assert health[-1]["schema"] == "wt.health/1" and health[-1]["gateway"] == "gw-e2e"
        finally:
            await rt.async_stop()
            clink.stop()
            os.close(master)
    asyncio.run(run())


def test_device_silent_alarm_reaches_broker(tmp_path, mosquitto):
    """Supervision end to end: a configured device that never speaks → device_silent on the broker."""
    async def run():
        loop = asyncio.get_running_loop()
        master, path = open_pty()
        cfg = config(tmp_path, mosquitto.port, path, supervision={"silent_after_s": 10, "tick_s": 0.2})
        rt = bootstrap(cfg, loop=loop)
        clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-console2", dispatch=loop.call_soon_threadsafe)
        console = ResponseConsole(clink, out=io.StringIO()).start()
        clink.start()
        await rt.async_start()
        try:
            await until(lambda: any(a.type == "device_silent" for a in console.stats.alarms.values()), 25)
            a = next(a for a in console.stats.alarms.values() if a.type == "device_silent")
            assert a.device == DEV and a.event_id.startswith("gw-e2e-g") and a.klass == "technical"
        finally:
            await rt.async_stop()
            clink.stop()
            os.close(master)
    asyncio.run(run())


def test_preflight_refuses_before_opening_anything(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = load_config(None, env={}, overrides={"gateway": {"data_dir": str(blocker / "sub")},
                                                "discovery": {"enabled": False}})

    async def run():
        with pytest.raises(DaemonError) as ei:
            bootstrap(cfg)
        assert "gateway.data_dir" in str(ei.value)
    asyncio.run(run())
    assert not (blocker.parent / "sub").exists()


def test_gateway_run_invalid_config_exits_2(tmp_path):
    bad = tmp_path / "gw.toml"
    bad.write_text("[uplink]\nport = 0\n")
    p = subprocess.run([GATEWAY, "run", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "uplink.port = 0: must be ≥ 1" in p.stderr


def test_gateway_run_process_shuts_down_cleanly_on_sigterm(tmp_path, mosquitto):
    master, path = open_pty()
    cfgf = tmp_path / "gw.toml"
    cfgf.write_text(f"""
[gateway]
id = "gw-proc"
data_dir = "{tmp_path / 'd'}"
[uplink]
port = {mosquitto.port}
[serial]
ports = ["{path}"]
[status]
port = 0
[discovery]
enabled = false
[devices.{DEV}]
role = "button"
key = "{KEY.hex()}"
""")
    proc = subprocess.Popen([GATEWAY, "run", "--config", str(cfgf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60          # generous: CI machines are loaded
        while not any("uplink route primary connected" in ln for ln in lines) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert any("uplink route primary connected" in ln for ln in lines), "".join(lines)
        os.write(master, button(5))
        dev = PtyDevice(master)
        t = time.monotonic()
        while not any(isinstance(p, Ack) for _, p in dev.downlinks) and time.monotonic() - t < 10:
            dev.pump()
            time.sleep(0.02)
        assert any(isinstance(p, Ack) and p.acked_seq == 5 for _, p in dev.downlinks)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)
        reader.join(5)
        assert any("gateway gw-proc stopped" in ln for ln in lines), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
