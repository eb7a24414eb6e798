"""A device key from the fleet to the sensor and to the gateway, end to end (issue 10 F8):

`fleet device provision` (the real CLI, the fleet service in process) generates the key and
writes it into a host-HAL flash image standing in for the board on USB; the real firmware
(MicroPython unix port, hil_tests/fw_runner.py) boots from that image — its role and key come
from the provisioned config.json only; the gateway gets the key sealed to its own enrolled
X25519 key in the rendered configuration, opens it with its identity key in load_config, and
its real ingress authenticates the device's frames: the alarm is stored and ACKed.

Then the device is re-flashed (image erased) and provisioned again: a new key, seqs from 1.
The gateway, restarted with the new sealed key, resets the device's replay windows (bound to
the key), answers the old seqs ERROR 3 and the device continues above them (its re-numbering
path): the next alarm arrives once."""
from __future__ import annotations

import json
import os
import select
import threading
import time
from pathlib import Path

import pytest

from gateway.codec import Ack, Error, ErrorCode, MsgType, Time, decode_wire
from gateway.codec.frame import Frame
from gateway.config import load_config
from gateway.domain.ingress import Ingress
from gateway.domain.ports import SystemClock

pytestmark = [pytest.mark.security, pytest.mark.slow]


class Store:
    def __init__(self) -> None:
        self.state: dict[str, bytes] = {}
        self.events: dict[str, int] = {}

    def contains(self, event_id: str) -> bool:
        return event_id in self.events

    def get_state(self, key: str) -> bytes | None:
        return self.state.get(key)

    def set_state(self, key: str, value: bytes) -> None:
        self.state[key] = bytes(value)


class Gateway:
    """A pty and the real Ingress as the daemon drives it (store, ACK after the store, TIME on HELLO)."""

    def __init__(self, gateway_id: str, keys: dict[str, bytes], store: Store) -> None:
        from hil_tests.faults import open_pty

        self.master, self._slave, self.path = open_pty()
        self.gateway_id, self.store = gateway_id, store
        self.stored: list[tuple[str, int]] = []
        self.acks: list[int] = []
        self.errors: list[str] = []
        self.rejects: list[str] = []
        self._lock = threading.Lock()
        self.restart(keys)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ingress")
        self._thread.start()

    def restart(self, keys: dict[str, bytes]) -> None:
        with self._lock:
            self.ingress = Ingress(self.gateway_id, keys, self.store, SystemClock())

    def _write(self, raw: bytes) -> None:
        f = decode_wire(raw)
        p = f.decode_payload() if isinstance(f, Frame) else f
        if isinstance(p, Error):
            self.errors.append(f"{int(p.code)} {p.msg}")
        elif isinstance(p, Ack):
            self.acks.append(p.acked_seq)
        os.write(self.master, raw)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            with self._lock:
                res = self.ingress.feed("pty", data)
                self.rejects += [x.reason.value for x in res.rejects]
                for _, raw in res.replies:
                    self._write(raw)
                for u in res.device_updates:
                    if u.fw_version is not None:
                        self._write(self.ingress.downlink(u.device_id, MsgType.TIME, Time(int(time.time()))))
                for ev in res.events:
                    new = ev.event_id not in self.store.events
                    if new:
                        self.store.events[ev.event_id] = int(ev.code)
                        self.stored.append((ev.event_id, int(ev.code)))
                    self._write(self.ingress.ack_frame(ev, duplicate=not new))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self.master, self._slave):
            os.close(fd)


def _wait(pred, timeout_s: float, what: str, fw=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s" + (f"\n{fw.log()}" if fw else ""))
        time.sleep(0.05)


def _boot(tmp_path: Path, gw: Gateway, dev: str, image: Path, press_ms: int):
    """The firmware from ``image`` as provisioned: --cfg adds no role and no key."""
    from hil_tests.emulated import DeviceSpec, FirmwareProcess

    class Provisioned(FirmwareProcess):
        def command(self) -> list[str]:
            args = super().command()
            args[args.index("--cfg") + 1] = json.dumps(self.spec.cfg)
            return args

    spec = DeviceSpec(name=image.stem, role="button", device_id=dev, key="", cfg={"heartbeat_s": 600},
                      pins={"button": [(press_ms, 1), (press_ms + 150, 0)]})
    fw = Provisioned(spec, gw.path, tmp_path)
    assert fw.flash == image
    return fw.start()


@pytest.mark.timeout(300)
def test_provisioned_key_authenticates_at_the_gateway_and_a_reflash_with_a_new_key_renumbers(
        tmp_path, micropython_bin, capsys):
    from fleet.cli import main as fleet_main
    from fleet.clock import SystemClock as FleetClock
    from fleet.config import ConfigService, Keyring
    from fleet.config._sql import SqlConfigStore
    from fleet.store import open_store
    from fleet.tests.conftest import FakeClock
    from fleet.tests.test_api_support import PASSWORD, app_for, auth, build_world, client
    from fleet.tests.test_enrolment_support import enrol_in_process, make_enrolment
    from cryptography.hazmat.primitives import serialization

    world = build_world(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path, FakeClock(time.time()))
    api = client(app_for(world, enrolment_file=str(make_enrolment(tmp_path / "enrol").settings)))
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    inst = api.get("/api/v1/installations/I-000001", headers=admin).json()
    gw_id, dev = inst["gateway_id"], next(d for d in inst["devices"] if d["role"] == "button")["hw_id"]
    assert api.put(f"/api/v1/config/templates/device/{dev}/keys/role", headers=admin,
                   json={"value": "button"}).status_code == 200
    identity = tmp_path / "gateway-x25519.key"
    identity.write_bytes(enrol_in_process(api, admin, gw_id).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    identity.chmod(0o600)
    env = {"FLEET_DB": world.url, "FLEET_USER": "tech.osl", "FLEET_KEK_FILE": str(world.kek_file)}
    image = tmp_path / "btn.img"

    def provision() -> dict:
        rc = fleet_main(["--json", "device", "provision", "--image", str(image), "--image-id", dev, "--role",
                         "button", dev], env=env)
        out = capsys.readouterr()
        assert rc == 0, out.err
        return json.loads(out.out)

    def gateway_keys() -> dict[str, bytes]:
        """What the gateway does with a push: its fleet layer, opened with its own identity key."""
        with open_store(world.url, migrate=False) as store, store.transaction(write=False) as tx:
            conf = ConfigService(SqlConfigStore(tx, secrets=Keyring.load(world.kek_file)), FleetClock()).render(gw_id)
        layer = {"devices": {dev: conf["devices"][dev]}}
        assert layer["devices"][dev]["key"].startswith("x25519:v1:")
        cfg = load_config(None, env={}, overrides={"gateway": {"id": gw_id, "identity_key": str(identity)}},
                          fleet=layer)
        return cfg.device_keys

    first = provision()
    assert first["version"] == 1 and first["gateway_id"] == gw_id
    keys1 = gateway_keys()
    assert keys1[dev].hex() not in json.dumps(first)
    store = Store()
    gw = Gateway(gw_id, keys1, store)
    try:
        fw = _boot(tmp_path, gw, dev, image, 2500)
        _wait(lambda: len(gw.stored) == 1 and gw.acks, 60, "the provisioned device's alarm stored and acked", fw)
        time.sleep(0.5)
        fw.stop()
        assert "bad_auth" not in gw.rejects and "unauthenticated" not in gw.rejects, gw.rejects
        (old_id, code), = gw.stored
        assert code == 0x01 and old_id.startswith(dev)

        # re-flashed (a blank image) and provisioned again: a new key; the gateway restarts with it
        image.unlink()
        second = provision()
        keys2 = gateway_keys()
        assert second["version"] == 2 and keys2[dev] != keys1[dev]
        gw.restart(keys2)
        fw = _boot(tmp_path, gw, dev, image, 4000)
        _wait(lambda: len(gw.stored) == 2, 60, "the re-keyed device's alarm stored", fw)
        time.sleep(1.0)
        fw.stop()
    finally:
        gw.stop()
    new_id, code = gw.stored[1]
    assert code == 0x01 and int(new_id.split("-")[1], 16) > int(old_id.split("-")[1], 16)
    assert any(e.startswith(f"{int(ErrorCode.REPLAY)} ") for e in gw.errors), gw.errors   # the ERROR 3 path ran
    keys = api.get(f"/api/v1/devices/{dev}/keys", headers=admin).json()["items"]
    assert [(k["version"], k["state"]) for k in keys] == [(1, "retired"), (2, "active")]
