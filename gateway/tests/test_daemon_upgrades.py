"""``ota`` / ``update`` (wt.cmd/1, docs/upgrades.md): release verification, the OTA session
with a fake device (lost ACKs, resume, timeouts), OTA results that survive a gateway
restart, and ``update`` refused by a gateway that does not run from an A/B slot — commands
encoded and signed by the code the fleet uses (contracts.release, contracts.payloads).
The A/B switch itself runs with real processes in test_upgrade_process.py."""
from __future__ import annotations

import asyncio
import base64
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
from gateway.codec.frame import Frame
from gateway.codec.stream import StreamDecoder
from gateway.config import load_config
from gateway.testing.console import make_console_link
from gateway.daemon import bootstrap
from gateway.adapters.upgrade import OtaSession, OtaStep, SignedRelease, UpgradeError, key_id, load_trusted_key, verify
from gateway.adapters.upgrade._manifest import Manifest
from gateway.testing.control import FleetKey
from gateway.testing.platform import FakeClock

FLEET = FleetKey(*generate_key())       # the fleet's control key: commands are signed (docs/mqtt.md)


def fleet_trust(tmp_path) -> dict:
    (tmp_path / "fleet-control.pub").write_bytes(FLEET.public_pem)
    return {"fleet_key": str(tmp_path / "fleet-control.pub")}


def signed_cmd(gateway_id: str, body: bytes) -> bytes:
    """The fleet's envelope around a wt.cmd/1 (a fresh seq every time, as the fleet re-sends)."""
    return FLEET.wrap(gateway_id, "wt.cmd/1", body)


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


# ---------------------------------------------------------------- daemon: update outside the slots, OTA results kept

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


def test_update_is_verified_first_and_refused_outside_the_slots(tmp_path, mosquitto, release_key):
    """A gateway started from a source checkout (no launcher) verifies the release, then says
    it cannot take updates; a tampered artifact is refused before that; nothing is written."""
    priv, pub_path = release_key
    gw = "gw-upd"
    blob = b"PK\x03\x04 pretend artifact " * 500
    good = sign(blob, "gateway-0.2.0.tar.gz", Target.GATEWAY, "0.2.0", priv)

    async def run():
        loop = asyncio.get_running_loop()
        cfg = load_config(None, env={}, overrides={
            "gateway": {"id": gw, "data_dir": str(tmp_path / "gw")},
            "uplink": {"port": mosquitto.port}, "status": {"port": 0}, "discovery": {"enabled": False},
            "upgrades": {"trusted_keys": [str(pub_path)]}, "trust": fleet_trust(tmp_path)})
        rt = bootstrap(cfg, loop=loop, serial=False)
        fleet = make_console_link("127.0.0.1", mosquitto.port, client_id="t-fleet", dispatch=loop.call_soon_threadsafe)
        results = Results()
        fleet.subscribe(f"wt/v1/gw/{gw}/cmd/result", results)
        fleet.start()
        await rt.async_start()
        try:
            await until(lambda: rt.uplink_connected() and fleet.connected)
            await asyncio.sleep(0.3)                    # the gateway's SUBSCRIBE is in place
            assert rt.upgrades.running_slot is None
            topic, cmd = encode_update("r0", gw, good, "fleet://release/gateway@0.2.0", artifact=blob[:-1] + b"!")
            fleet.publish(topic, signed_cmd(gw, cmd), qos=1)
            await until(lambda: results.of("r0:gw-upd:u"))
            [err] = [r for r in results.items if r["cmd_id"] == "r0:gw-upd:u"]
            assert err["status"] == "error" and err["detail"]["phase"] == "download"
            assert err["detail"]["rolled_back"] is False and "tampered" in err["detail"]["error"]
            topic, cmd = encode_update("r1", gw, good, "fleet://release/gateway@0.2.0", artifact=blob)
            fleet.publish(topic, signed_cmd(gw, cmd), qos=1)
            await until(lambda: results.of("r1:gw-upd:u"))
            [err] = [r for r in results.items if r["cmd_id"] == "r1:gw-upd:u"]
            assert err["detail"]["reason"] == "not_managed" and err["detail"]["rolled_back"] is False
            assert "launch.py" in err["detail"]["error"]
            # the version it already runs: ok / committed, already
            same = sign(blob, "gateway-0.1.0.tar.gz", Target.GATEWAY, rt.snapshot()["version"], priv)
            topic, cmd = encode_update("r2", gw, same, "fleet://x", artifact=blob)
            fleet.publish(topic, signed_cmd(gw, cmd), qos=1)
            await until(lambda: results.of("r2:gw-upd:u"))
            assert results.items[-1]["status"] == "ok" and results.items[-1]["detail"]["already"] is True
            assert not (tmp_path / "gw" / "slots").exists() or not any((tmp_path / "gw" / "slots").iterdir())
        finally:
            await rt.async_stop()
            fleet.stop()
    asyncio.run(asyncio.wait_for(run(), 90))


class CaptureLink:
    """A device link that records what the gateway sends (downlink frames)."""

    def __init__(self) -> None:
        self.name = "serial:ota-test"
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict:
        return {"name": self.name, "kind": "fake", "state": "up"}

    def frames(self) -> list:
        from gateway.codec.payloads import decode_payload

        out = []
        for chunk in self.sent:
            for f in StreamDecoder().feed(chunk):
                if isinstance(f, Frame):
                    out.append(decode_payload(f.type, f.payload))
        return out


def test_ota_result_survives_a_gateway_restart(tmp_path, release_key):
    """Item 3: an OTA that failed on the device is answered with that failure when the fleet
    re-sends the command after the gateway restarted — not with a new transfer, and not with
    the device's current version as if nothing had happened."""
    from gateway.codec import encode_payload_frame
    from gateway.codec.enums import ResetCause
    from gateway.codec.payloads import Hello
    from gateway.domain.model import Role
    from gateway.testing.platform import FakePublisher

    priv, pub_path = release_key
    dev, key = "a4c1380a1b2c", bytes(range(16))
    blob = b"firmware bundle " * 100
    signed = sign(blob, "button-0.2.0.wtb", Target.FW_BUTTON, "0.2.0", priv)
    topic, cmd = encode_update("d-ota", "gw-ota-r", signed, "fleet://x", device=dev, artifact=blob)
    cid = "d-ota:gw-ota-r/a4c1380a1b2c:u"
    cfg = load_config(None, env={}, overrides={
        "gateway": {"id": "gw-ota-r", "data_dir": str(tmp_path / "gw")},
        "status": {"enabled": False}, "discovery": {"enabled": False},
        "devices": {dev: {"role": "button", "key": key.hex()}},
        "upgrades": {"trusted_keys": [str(pub_path)]}, "trust": fleet_trust(tmp_path)})

    def results(pub) -> list[dict]:
        return [json.loads(p.payload) for p in pub.published if p.topic.endswith("/cmd/result")]

    async def boot(seq: int):
        pub, link = FakePublisher(), CaptureLink()
        rt = bootstrap(cfg, loop=asyncio.get_running_loop(), publisher=pub, serial=False, advertise=False)
        rt.add_link(link)
        await rt.async_start()
        rt.on_link_bytes(link.name, encode_payload_frame(Hello(Role.BUTTON, ResetCause.POWER_ON, 0, "0.1.0"),
                                                         dev, seq, key=key))     # the device boots (HELLO)
        await until(lambda: rt.ingress.link_for(dev) == link.name)
        return rt, pub, link

    async def run():
        rt, pub, link = await boot(3)
        try:
            rt.commands.on_cmd_message(topic, signed_cmd("gw-ota-r", cmd))
            await until(lambda: any(isinstance(p, OtaBegin) for p in link.frames()))
            # the device refuses the image: OTA_STATUS failed
            rt.on_link_bytes(link.name, encode_payload_frame(OtaStatus(OtaState.FAILED, "0.1.0"), dev, 4, key=key))
            await until(lambda: any(r["status"] == "error" for r in results(pub)))
        finally:
            await rt.async_stop()
        first = [r for r in results(pub) if r["status"] == "error"][-1]
        assert first["detail"]["phase"] == "install" and "rejected the image" in first["detail"]["error"]
        stored = json.loads((tmp_path / "gw" / "ota-results.json").read_text())
        assert stored[cid][0] == "error"
        # restart: a new process (new runtime, nothing in memory); the fleet re-sends the same command
        rt, pub, link = await boot(5)
        try:
            rt.commands.on_cmd_message(topic, signed_cmd("gw-ota-r", cmd))
            await until(lambda: results(pub))
            await asyncio.sleep(0.2)
            again = results(pub)
            assert [r["status"] for r in again] == ["error"] and again[0]["detail"] == first["detail"]
            assert not [p for p in link.frames() if isinstance(p, (OtaBegin, OtaChunk))], "the image was sent again"
        finally:
            await rt.async_stop()
    asyncio.run(asyncio.wait_for(run(), 60))
