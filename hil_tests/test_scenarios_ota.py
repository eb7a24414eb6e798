"""Sensor OTA from the fleet through the gateway: a signed release is committed, a bad image
rolls back, a tampered bundle is refused by the gateway before any frame reaches the device.

The path is the production one: the release is built by firmware/build.py and signed with
``fleet release keygen/sign`` (the CLI, in process); the ``ota`` command is the fleet's own
wt.cmd/1 message (``fleet.upgrades.encode_update``, what ``fleet rollout run`` publishes),
sent with the fleet's MQTT client (fleet/mqtt.py) to the bench's Mosquitto; the real
``gateway run`` daemon ([upgrades] trusts the release key) verifies it and relays OTA frames
to the real firmware on MicroPython over its pty. The scenario reads the gateway's
wt.cmd-result/1 reports the way the fleet does (``decode_result`` + the unit state machine
``unit_step``) and watches the device's serial link through the bench's tap.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.codec import Hello, OtaBegin, OtaChunk, OtaEnd, OtaStatus, ResetCause
from hil_tests.conftest import Transcript, device
from hil_tests.emulated import GATEWAY_ID
from hil_tests.ota import build_bundle, compile_mpy

pytestmark = pytest.mark.hil

ROOT = Path(__file__).resolve().parent.parent
OTA_FRAMES = (OtaBegin, OtaChunk, OtaEnd)


def _fleet(db: str, *args: str) -> str:
    """A fleet CLI command (in process); a non-zero exit raises AssertionError naming it."""
    from fleet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--db", db, "--no-progress", *args], env={})
    assert rc == 0, f"fleet {' '.join(args)} → exit {rc}: {err.getvalue()}"
    return out.getvalue()


def _build(role: str, version: str, out: Path) -> dict:
    """firmware/build.py: the role's release bundle and its manifest."""
    r = subprocess.run([sys.executable, str(ROOT / "firmware" / "build.py"), "--version", version, "--role", role,
                        "--out", str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(r.stdout)
    return m


class FleetSide:
    """The fleet's end of the command channel: publish ``ota``, collect the gateway's results."""

    def __init__(self, port: int) -> None:
        from fleet.mqtt import MqttClient
        from fleet.upgrades._protocol import result_topic

        self.results: list[tuple[float, dict[str, Any], Any]] = []   # (wall, raw result, UnitReport)
        self._cv = threading.Condition()
        from hil_tests.control import signer

        self.signer = signer()
        self.mqtt = MqttClient("127.0.0.1", port, client_id="hil-fleet").connect()
        self.mqtt.subscribe(result_topic(GATEWAY_ID), self._on_result)

    def _on_result(self, topic: str, payload: bytes) -> None:
        from fleet.upgrades._protocol import decode_result

        with self._cv:
            self.results.append((time.time(), json.loads(payload), decode_result(topic, payload)))
            self._cv.notify_all()

    def send_ota(self, deployment: str, device_id: str, signed: Any, artifact: bytes) -> str:
        from fleet.upgrades import Unit
        from fleet.upgrades._protocol import cmd_id, encode_update

        unit = Unit(GATEWAY_ID, device_id)
        topic, cmd = encode_update(deployment, unit, signed, f"fleet://release/{signed.manifest.target.value}@"
                                   f"{signed.manifest.version}", artifact=artifact)
        self.mqtt.publish(topic, self.signer.wrap(GATEWAY_ID, cmd), qos=1)      # signed, as the fleet sends it
        return cmd_id(deployment, unit, "update")

    def of(self, cid: str) -> list[dict[str, Any]]:
        with self._cv:
            return [r for _t, r, _u in self.results if r["cmd_id"] == cid]

    def outcome(self, cid: str, timeout_s: float) -> list[dict[str, Any]]:
        """Every result of ``cid`` up to and including the first non-progress one."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not any(r["status"] != "progress" for r in self.of(cid)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no outcome for {cid} within {timeout_s} s: {self.of(cid)}")
                self._cv.wait(left)
            return self.of(cid)

    def unit_state(self, cid: str) -> str:
        """The fleet's unit state machine fed with this command's reports (queued → send → …)."""
        from fleet.upgrades import UnitEvent, UnitState
        from fleet.upgrades._protocol import UnitReport
        from fleet.upgrades._states import unit_step

        state = unit_step(UnitState.QUEUED, UnitEvent.SEND)
        with self._cv:
            for _t, r, rep in self.results:
                if r["cmd_id"] != cid:
                    continue
                assert isinstance(rep, UnitReport), f"the fleet rejects the gateway's result {r}: {rep}"
                for ev in rep.events:
                    state = unit_step(state, ev)
        return state.value

    def close(self) -> None:
        self.mqtt.close()


def _phases(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        d = r["detail"]
        tag = f"{r['status']}:{d.get('phase')}"
        if r["status"] == "error":
            tag += f" rolled_back={str(d.get('rolled_back')).lower()}"
        out.append(tag)
    return " ".join(out)


def test_sensor_ota_fleet_release_through_gateway_commits_rolls_back_and_refuses_tampering(
        emulated_bench, tmp_path, hil_metrics, update_golden):
    from fleet.upgrades import SignedManifest

    name = "button-1"
    keys = tmp_path / "release"
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    _fleet(db, "release", "keygen", str(keys))
    out = tmp_path / "build"
    manifest = _build("button", "0.2.0", out)
    good_path = out / manifest["bundle"]
    good = good_path.read_bytes()

    def release(version: str, bundle_path: Path) -> SignedManifest:
        """The release process: sign with the fleet CLI, check it as an operator would."""
        _fleet(db, "release", "sign", str(bundle_path), "--key", f"{keys}.key", "--target", "fw-button",
               "--version", version)
        _fleet(db, "release", "verify", str(bundle_path), "--pubkey", f"{keys}.pub")
        return SignedManifest.from_json(Path(f"{bundle_path}.sig").read_text())

    signed_good = release("0.2.0", good_path)
    bench = emulated_bench([device(name, cfg={"confirm_s": 5})],
                           gateway={"upgrades": {"trusted_keys": [f"{keys}.pub"], "ota_ack_timeout_s": 2.0}})
    dev = bench.spec(name).device_id
    fw = bench.firmware[name]
    fleet = FleetSide(bench.broker.port)
    t = Transcript(bench)
    try:
        def hellos(since: float) -> list[Hello]:
            return [p for w, p in bench.uplink_payloads(name, Hello) if w >= since]

        base = bench.gw.status()
        base_fw = next(d for d in base["devices"] if d["device"] == dev).get("fw")
        assert base_fw not in ("0.2.0", "0.3.0"), base_fw
        first = hellos(0)
        assert first and first[0].fw_version == base_fw, (first, base_fw)
        t.note(f"boot fw=<factory> cause={ResetCause(first[0].reset_cause).name.lower()}")

        # 1. a tampered bundle (one byte flipped, the good release's signature): the gateway refuses
        #    it at download — error, nothing rolled back, and no OTA frame on the device's link
        t_tamper = time.time()
        cid = fleet.send_ota("hil-tampered", dev, signed_good, good[:-1] + bytes([good[-1] ^ 1]))
        res = fleet.outcome(cid, 20)
        assert _phases(res) == "error:download rolled_back=false", res
        assert "SHA-256" in res[-1]["detail"]["error"], res     # the hash check refused it (signature itself valid)
        time.sleep(0.5)   # anything the gateway might still send would be on the wire by now
        sent = [p for w, p in ota_downlinks(bench, name) if w >= t_tamper]
        assert not sent, f"the gateway sent OTA frames for a tampered bundle: {sent[:3]}"
        assert fleet.unit_state(cid) == "failed"
        t.note(f"ota tampered {_phases(res)} frames_to_device={len(sent)} fleet={fleet.unit_state(cid)}")

        # 2. the signed release: downloaded → installed → rebooted (HELLO 0.2.0) → committed
        t0 = time.time()
        cid = fleet.send_ota("hil-good", dev, signed_good, good)
        res = fleet.outcome(cid, 150)
        assert _phases(res) == "progress:downloaded progress:installed progress:rebooted ok:committed", \
            (res, bench.debug())
        at = {r["detail"]["phase"]: w for w, r, _u in fleet.results if r["cmd_id"] == cid}
        hil_metrics.figure("good_bundle_bytes", len(good))
        hil_metrics.figure("transfer_s", round(at["installed"] - t0, 2))
        hil_metrics.figure("good_update_committed_after_s", round(at["committed"] - t0, 2))
        chunks = [p for w, p in ota_downlinks(bench, name) if w >= t0 and isinstance(p, OtaChunk)]
        assert sum(len(c.data) for c in {c.offset: c for c in chunks}.values()) == len(good)
        new = hellos(t0)
        assert new and new[-1].fw_version == "0.2.0", [h.fw_version for h in new]
        st = bench.gw.status()
        assert next(d for d in st["devices"] if d["device"] == dev).get("fw") == "0.2.0", st["devices"]
        assert fleet.unit_state(cid) == "succeeded"
        t.note(f"boot fw={new[-1].fw_version} cause={ResetCause(new[-1].reset_cause).name.lower()}")
        t.note(f"ota good {_phases(res)} fleet={fleet.unit_state(cid)}")
        t.note("device ota_status " + " ".join(device_states(bench, name, t0, t_rep := time.time())))
        # the same deployment again (QoS 1 redelivery, a re-run rollout): its result, no transfer
        fleet.send_ota("hil-good", dev, signed_good, good)
        deadline = time.monotonic() + 20
        while len(fleet.of(cid)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["status"] for r in fleet.of(cid)][4:] == ["ok"], fleet.of(cid)
        time.sleep(0.5)
        assert not [p for w, p in ota_downlinks(bench, name) if w >= t_rep], "a repeated command re-sent the image"
        t.note("ota good repeated: same result, no transfer")

        # 3. a bad release: built and signed like any other, its app module crashes at import →
        #    the device tries it twice, rolls back to 0.2.0; the gateway reports error, rolled back
        t1 = time.time()
        files = {f["path"]: (out / "button-0.2.0" / f["path"]).read_bytes() for f in manifest["files"]}
        files["lib/version.mpy"] = compile_mpy('FW_VERSION = "0.3.0"\nBUILD_ROLE = "button"\n', "version.py", tmp_path)
        files["lib/app.mpy"] = compile_mpy('raise ImportError("hil: broken build")\n', "app.py", tmp_path)
        bad_path = out / "button-0.3.0-broken.wtb"
        bad_path.write_bytes(build_bundle(files, "0.3.0", "button"))
        bad = bad_path.read_bytes()
        signed_bad = release("0.3.0", bad_path)
        cid = fleet.send_ota("hil-bad", dev, signed_bad, bad)
        res = fleet.outcome(cid, 150)
        assert _phases(res) == "progress:downloaded progress:installed error:commit rolled_back=true", \
            (res, bench.debug())
        rolled_at = [w for w, r, _u in fleet.results if r["cmd_id"] == cid][-1]
        hil_metrics.figure("bad_update_rolled_back_after_s", round(rolled_at - t1, 2))
        after = hellos(t1)
        assert after and after[-1].fw_version == "0.2.0", [h.fw_version for h in after]
        assert not [h for h in after if h.fw_version == "0.3.0"], "the bad image came up?"
        console = "\n".join(fw.lines)
        failed_boots = console.count("ImportError: hil: broken build")
        assert failed_boots == 2, f"the bad image was tried {failed_boots} times, expected twice\n{console[-3000:]}"
        assert fleet.unit_state(cid) == "failed"
        assert fw.proc is not None and fw.proc.poll() is None, "the device is not running after the rollback"
        t.note(f"boot fw={after[-1].fw_version} after {failed_boots} failed boots")
        t.note(f"ota bad {_phases(res)} fleet={fleet.unit_state(cid)}")
        t.note("device ota_status " + " ".join(device_states(bench, name, t1, time.time())))
        assert not bench.alarms(), [a.type for a in bench.alarms()]   # no stimulus: an OTA raises no alarm
    finally:
        (tmp_path / "firmware-console.txt").write_text("\n".join(fw.lines))
        fleet.close()
    t.check("sensor_ota", update_golden)


def ota_downlinks(bench: Any, name: str) -> list[tuple[float, Any]]:
    """OTA frames the gateway wrote to the device's link (the serial proxy's tap)."""
    return [(w, p) for w, p in bench.downlink_payloads(name, object) if isinstance(p, OTA_FRAMES)]




def device_states(bench: Any, name: str, since: float, until: float) -> list[str]:
    """OTA_STATUS states the device reported on its link between two wall times."""
    return [p.state.name.lower() for w, p in bench.uplink_payloads(name, OtaStatus) if since <= w <= until]
