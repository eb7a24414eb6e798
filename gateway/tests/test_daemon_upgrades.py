"""``ota`` / ``update`` (wt.cmd/1, docs/upgrades.md): release verification, the OTA session
with a fake device (lost ACKs, resume, timeouts), and the daemon end to end on a real
Mosquitto — commands encoded and signed by the code the fleet uses (contracts.release, contracts.payloads)."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time

import pytest

from contracts.payloads import encode_cmd
from contracts.release import Target, generate_key, install_command, load_public, sign
from contracts.topics import Kind, gateway_topic
from gateway.codec.enums import ErrorCode, OtaState
from gateway.codec.payloads import Ack, Error, OtaBegin, OtaChunk, OtaEnd, OtaStatus
from gateway.codec import AckStatus
from gateway.config import load_config
from gateway.testing.console import make_console_link
from gateway.daemon import bootstrap
from gateway.adapters.upgrade import OtaSession, OtaStep, SignedRelease, UpgradeError, key_id, load_trusted_key, verify
from gateway.adapters.upgrade._manifest import Manifest
from gateway.testing.platform import FakeClock


@pytest.fixture(scope="module")
def release_key(tmp_path_factory):
    priv, pub = generate_key()
    d = tmp_path_factory.mktemp("keys")
    (d / "ci.pub").write_bytes(pub)
    return priv, d / "ci.pub"


def _signed(priv, blob: bytes, target=Target.FW_BUTTON, version="0.2.0"):
    return sign(blob, "button-0.2.0.wtb", target, version, priv)


def _release(sm) -> SignedRelease:
    return SignedRelease.from_obj(json.loads(sm.to_json()))


def encode_update(deployment: str, gateway_id: str, signed, artifact_url: str, *, device: str | None = None,
                  artifact: bytes | None = None) -> tuple[str, bytes]:
    """The ``update``/``ota`` command exactly as the fleet sends it, built from the contract."""
    command = install_command(signed, deployment=deployment, gateway_id=gateway_id, device=device,
                              artifact_url=artifact_url, artifact=artifact)
    return gateway_topic(gateway_id, Kind.CMD), encode_cmd(*command)


# ---------------------------------------------------------------- verification

def test_verify_accepts_the_fleet_signature_and_refuses_tampering(release_key):
    priv, pub_path = release_key
    blob = bytes(range(256)) * 40
    rel = _release(_signed(priv, blob))
    key = load_trusted_key(str(pub_path))
    assert key_id(key) == rel.key_id
    assert verify(blob, rel, [key]).sha256 == hashlib.sha256(blob).hexdigest()
    reasons = {}
    for name, art, r, keys in [
        ("tampered", blob[:-1] + b"\x00", rel, [key]),
        ("truncated", blob[:-10], rel, [key]),
        ("bad_sig", blob, SignedRelease(Manifest(rel.manifest.target, "9.9.9", rel.manifest.artifact,
                                                  rel.manifest.size, rel.manifest.sha256), rel.key_id, rel.signature),
         [key]),
        ("no_keys", blob, rel, []),
        ("other_key", blob, rel, [load_public(generate_key()[1])]),
    ]:
        with pytest.raises(UpgradeError) as ei:
            verify(art, r, keys)
        reasons[name] = ei.value.reason
    assert reasons == {"tampered": "hash_mismatch", "truncated": "size_mismatch", "bad_sig": "bad_signature",
                       "no_keys": "no_trusted_key", "other_key": "unknown_key"}
    raw_b64 = base64.b64encode(load_public(pub_path.read_bytes()).public_bytes_raw()).decode()
    assert key_id(load_trusted_key(raw_b64)) == rel.key_id
    with pytest.raises(UpgradeError, match="unreadable"):
        load_trusted_key("not-a-key")


# ---------------------------------------------------------------- OTA session with a fake device

class FakeDevice:
    """Just enough of firmware/lib/ota.py: ACK each frame, write chunks in order, ERROR 8 on a gap."""

    def __init__(self, drop_acks: set[int] = frozenset(), skip_to: int | None = None) -> None:
        self.seq = 100
        self.got = bytearray()
        self.size = 0
        self.sha = b""
        self.drop = set(drop_acks)
        self.frames = 0
        self.out: list = []
        self.skip_to = skip_to

    def send(self, p) -> int:
        self.seq += 1
        self.frames += 1
        seq = self.seq
        if isinstance(p, OtaBegin):
            self.size, self.sha = p.total_size, p.sha256
            self.out += [Ack(seq, AckStatus.STORED), OtaStatus(OtaState.RECEIVING, p.version)]
        elif isinstance(p, OtaChunk):
            if self.skip_to is not None and p.offset == 0:          # a device that already has the start
                self.got = bytearray(b"?" * self.skip_to)
                self.skip_to = None
            if p.offset + len(p.data) <= len(self.got):
                self.out.append(Ack(seq, AckStatus.STORED))
            elif p.offset != len(self.got):
                self.out.append(Error(ErrorCode.OTA_OUT_OF_ORDER, f"expected offset {len(self.got)}, got {p.offset}"))
            else:
                self.got += p.data
                self.out.append(Ack(seq, AckStatus.STORED))
        elif isinstance(p, OtaEnd):
            self.out += [OtaStatus(OtaState.VERIFIED, "0.2.0"), Ack(seq, AckStatus.STORED),
                         OtaStatus(OtaState.PENDING_REBOOT, "0.2.0")]
        if self.frames in self.drop:
            self.out = [m for m in self.out if not isinstance(m, Ack)]
        return seq


def _session(dev, blob, clock, reports, **kw):
    return OtaSession("a4c1380a1b2c", blob, "0.2.0", hashlib.sha256(blob).digest(), b"\x01" * 64, dev.send,
                      lambda s, ph, x: reports.append((s, ph, x)), clock, **kw)


def _pump(s, dev):
    while dev.out:
        s.on_payload(dev.out.pop(0))


def test_ota_session_streams_resends_on_lost_ack_and_reports_phases():
    blob = bytes(range(256)) * 9                       # 2304 bytes: 12 chunks
    clock, reports = FakeClock(), []
    dev = FakeDevice(drop_acks={3, 7})                  # ACKs of two chunks lost
    s = _session(dev, blob, clock, reports, ack_timeout_s=2.0, retries=2)
    s.start()
    for _ in range(40):
        _pump(s, dev)
        clock.advance(2.5)
        s.tick()
    _pump(s, dev)
    assert bytes(dev.got) == blob and s.resends == 2
    assert reports == [("progress", "installed", {})]
    s.on_hello("0.1.0")                                  # an old-version boot is not "rebooted"
    s.on_hello("0.2.0")
    s.on_payload(OtaStatus(OtaState.COMMITTED, "0.2.0"))
    assert [r[:2] for r in reports] == [("progress", "installed"), ("progress", "rebooted"), ("ok", "committed")]
    assert s.step is OtaStep.DONE


def test_ota_session_resumes_where_the_device_says():
    blob = b"x" * 1000
    clock, reports = FakeClock(), []
    dev = FakeDevice(skip_to=400)
    s = _session(dev, blob, clock, reports)
    s.start()
    for _ in range(20):
        _pump(s, dev)
    assert len(dev.got) == 1000 and reports[-1][:2] == ("progress", "installed")


def test_ota_session_gives_up_on_a_silent_device_and_on_a_rollback():
    clock, reports = FakeClock(), []
    dev = FakeDevice(drop_acks=set(range(1, 100)))
    s = _session(dev, b"y" * 300, clock, reports, ack_timeout_s=1.0, retries=3)
    s.start()
    for _ in range(10):
        clock.advance(1.1)
        s.tick()
    assert dev.frames == 4 and reports[-1][0] == "error" and "OTA_BEGIN after 4 tries" in reports[-1][2]["error"]
    reports.clear()
    s2 = _session(FakeDevice(), b"z" * 10, clock, reports)
    s2.start()
    s2.on_payload(OtaStatus(OtaState.ROLLED_BACK, "0.1.0"))
    assert reports[-1][0] == "error" and reports[-1][1] == "commit" and reports[-1][2]["rolled_back"] is True


# ---------------------------------------------------------------- daemon + real Mosquitto: update (A/B)

class Results:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.items.append(json.loads(payload))

    def of(self, cmd_id: str) -> list[tuple[str, str]]:
        return [(r["status"], r["detail"].get("phase")) for r in self.items if r["cmd_id"] == cmd_id]


async def until(pred, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_update_stages_switches_health_checks_commits_and_is_idempotent(tmp_path, mosquitto, release_key):
    priv, pub_path = release_key
    gw = "gw-upd"
    wheel = b"PK\x03\x04 pretend wheel " * 500
    good = sign(wheel, "gateway-0.2.0.whl", Target.GATEWAY, "0.2.0", priv)
    bad_blob = wheel[:-1] + b"!"

    async def run():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": gw, "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port}, "status": {"port": 0}, "discovery": {"enabled": False},
            "upgrades": {"trusted_keys": [str(pub_path)], "health_deadline_s": 10}})
        rt = bootstrap(cfg, loop=loop, serial=False)
        fleet = make_console_link("127.0.0.1", mosquitto.port, client_id="t-fleet", dispatch=loop.call_soon_threadsafe)
        results = Results()
        fleet.subscribe(f"wt/v1/gw/{gw}/cmd/result", results)
        fleet.start()
        await rt.async_start()
        try:
            await until(lambda: rt.uplink_connected() and fleet.connected)
            await asyncio.sleep(0.3)                    # the gateway's SUBSCRIBE is in place
            slots = tmp_path / "gw" / "slots"
            # a tampered artifact: refused before a byte reaches a slot
            topic, cmd = encode_update("r0", gw, good, "fleet://release/gateway@0.2.0", artifact=bad_blob)
            fleet.publish(topic, cmd, qos=1)
            await until(lambda: results.of("r0:gw-upd:u"))
            [err] = [r for r in results.items if r["cmd_id"] == "r0:gw-upd:u"]
            assert err["status"] == "error" and err["detail"]["phase"] == "download"
            assert err["detail"]["rolled_back"] is False and "tampered" in err["detail"]["error"]
            assert not (slots / "b").exists()
            # the real one: downloaded, installed, rebooted, committed
            topic, cmd = encode_update("r1", gw, good, "fleet://release/gateway@0.2.0", artifact=wheel)
            fleet.publish(topic, cmd, qos=1)
            await until(lambda: ("ok", "committed") in results.of("r1:gw-upd:u"))
            assert results.of("r1:gw-upd:u") == [("progress", "downloaded"), ("progress", "installed"),
                                                   ("progress", "rebooted"), ("ok", "committed")]
            assert (slots / "current").resolve() == (slots / "b").resolve()
            assert (slots / "b" / "gateway-0.2.0.whl").read_bytes() == wheel
            assert json.loads((slots / "state.json").read_text())["version"] == "0.2.0"
            # the same deployment again (QoS 1 redelivery / runner restart): its result, nothing re-installed
            mtime = (slots / "b" / "gateway-0.2.0.whl").stat().st_mtime_ns
            fleet.publish(topic, cmd, qos=1)
            await until(lambda: len(results.of("r1:gw-upd:u")) == 5)
            assert results.of("r1:gw-upd:u")[-1] == ("ok", "committed")
            # another deployment of the version already running: ok/committed, already
            topic2, cmd2 = encode_update("r2", gw, good, "fleet://release/gateway@0.2.0", artifact=wheel)
            fleet.publish(topic2, cmd2, qos=1)
            await until(lambda: results.of("r2:gw-upd:u"))
            last = [r for r in results.items if r["cmd_id"] == "r2:gw-upd:u"][-1]
            assert last["status"] == "ok" and last["detail"]["already"] is True
            assert (slots / "b" / "gateway-0.2.0.whl").stat().st_mtime_ns == mtime
            # a release whose health check fails (uplink gone) is rolled back to the old slot
            v3 = sign(wheel + b"3", "gateway-0.3.0.whl", Target.GATEWAY, "0.3.0", priv)
            rt.upgrades.settings = dataclasses.replace(cfg.upgrades, health_deadline_s=1)
            real = rt.upgrades.health.uplink_connected
            rt.upgrades.health.uplink_connected = lambda: False   # noqa: E731 - health check: uplink down
            topic3, cmd3 = encode_update("r3", gw, v3, "fleet://x", artifact=wheel + b"3")
            rt.commands.on_cmd_message(topic3, cmd3)
            await until(lambda: any(s == "error" for s, _ in results.of("r3:gw-upd:u")))
            rt.upgrades.health.uplink_connected = real
            err = [r for r in results.items if r["cmd_id"] == "r3:gw-upd:u"][-1]
            assert err["detail"]["phase"] == "commit" and err["detail"]["rolled_back"] is True
            assert "uplink not connected" in err["detail"]["error"]
            assert (slots / "current").resolve() == (slots / "b").resolve()   # still the committed 0.2.0
            assert json.loads((slots / "state.json").read_text())["version"] == "0.2.0"
        finally:
            await rt.async_stop()
            fleet.stop()
    asyncio.run(asyncio.wait_for(run(), 90))


def test_pending_switch_is_rolled_back_at_start(tmp_path):
    from gateway.adapters.upgrade import SlotStore

    slots = SlotStore(tmp_path / "slots", "0.1.0")
    rel = SignedRelease(Manifest("gateway", "0.2.0", "g.whl", 3, hashlib.sha256(b"abc").hexdigest()), "k", b"s")
    slots.stage(rel, b"abc")
    slots.switch("0.2.0")
    assert slots.current == "b"
    again = SlotStore(tmp_path / "slots", "0.1.0")       # power cut before the health check passed
    assert again.recover() is True and again.current == "a" and again.version == "0.1.0"
