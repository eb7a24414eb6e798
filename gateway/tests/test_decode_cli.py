"""`gateway decode ...`: JSON out, exit 0 / 1 (rejected) / 2 (bad usage)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.cli import main
from gateway.codec import EventPayload, MsgType, encode_frame
from gateway.domain.model import EventCode

KEY_HEX = "000102030405060708090a0b0c0d0e0f"
DEV = "a4c1380a1b2c"
BPM_HEX = "1e780050005d00ea070b170600004800010c00"


def run(capsys, *argv):
    rc = main(["decode", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_gatt_bpm(capsys):
    rc, out, err = run(capsys, "gatt", "--uuid", "2A35", BPM_HEX)
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert (doc["systolic"], doc["diastolic"], doc["pulse_rate"], doc["unit"]) == (120, 80, 72, "mmHg")
    assert doc["timestamp"] == "2026-11-23T06:00:00"


def test_gatt_uuid_forms_and_special_value(capsys):
    rc, out, _ = run(capsys, "gatt", "--uuid", "0x2a1c", "00ffff7f00")
    assert rc == 0 and json.loads(out)["temperature"] == "NaN"
    rc, out, _ = run(capsys, "gatt", "--uuid", "00002a1c-0000-1000-8000-00805f9b34fb", "01 6a 01 00 fe")
    assert rc == 0 and json.loads(out)["temperature"] == 3.62 and json.loads(out)["unit"] == "°F"


def test_gatt_unknown_uuid_and_bad_hex_exit_2(capsys):
    rc, out, err = run(capsys, "gatt", "--uuid", "2A37", "0048")
    assert rc == 2 and out == "" and "2A37" in err and "2A35" in err
    rc, out, err = run(capsys, "gatt", "--uuid", "2A35", "xyz")
    assert rc == 2 and out == "" and "not hex" in err


def test_gatt_rejection_exit_1(capsys):
    rc, out, _ = run(capsys, "gatt", "--uuid", "2A35", "007800")
    doc = json.loads(out)
    assert rc == 1 and doc["rejected"] is True and doc["reason"] == "short"


def test_frame_with_key(capsys):
    wire = encode_frame(MsgType.EVENT, DEV, 42, EventPayload(EventCode.BUTTON_PRESS, 120, {}), key=bytes(range(16)), urgent=True)
    rc, out, _ = run(capsys, "frame", wire.hex(), "--key", KEY_HEX)
    doc = json.loads(out)
    assert rc == 0 and doc["auth"] == "ok" and doc["fields"]["type"] == "button_press" and doc["seq"] == 42
    rc, out, _ = run(capsys, "frame", wire.hex(), "--key", "ff" * 16)
    assert rc == 1 and json.loads(out)["reason"] == "bad_auth"
    rc, out, _ = run(capsys, "frame", wire.hex()[:-2])  # without the trailing delimiter
    assert rc == 0 and json.loads(out)["auth"].startswith("not checked")


def test_frame_several_and_garbage(capsys):
    one = encode_frame(MsgType.EVENT, DEV, 1, EventPayload(EventCode.MOTION, 0, {}))
    rc, out, _ = run(capsys, "frame", (one + b"\x01\x02\x00" + one).hex())
    docs = json.loads(out)
    assert rc == 1 and [d.get("reason") for d in docs] == [None, "cobs", None]


def test_frame_bad_key_length_exit_2(capsys):
    rc, _, err = run(capsys, "frame", "00", "--key", "0102")
    assert rc == 2 and "--key must be 16 bytes" in err


def test_adv_encrypted_and_rejections(capsys):
    rc, out, _ = run(capsys, "adv", "41e445f3c9962b332211006c7c4519", "--mac", "54:48:E6:8F:80:A5",
                     "--key", "231d39c1d7cc1ab1aee224cd096db932")
    doc = json.loads(out)
    assert rc == 0 and doc["counter"] == 0x00112233
    assert [o["value"] for o in doc["objects"]] == [25.06, 50.55]
    rc, out, _ = run(capsys, "adv", "41e445f3c9962b332211006c7c4519")
    assert rc == 1 and json.loads(out)["reason"] == "bad_auth"
    rc, _, err = run(capsys, "adv", "40", "--mac", "AA:BB")
    assert rc == 2 and "--mac" in err


def test_adv_button_event(capsys):
    rc, out, _ = run(capsys, "adv", "40" + "3a01" + "0155")
    doc = json.loads(out)
    assert rc == 0 and [e["type"] for e in doc["events"]] == ["button_press"]


def test_console_script_subprocess():
    exe = Path(sys.executable).with_name("gateway")
    proc = subprocess.run([str(exe), "decode", "gatt", "--uuid", "2A35", BPM_HEX], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["systolic"] == 120
    proc = subprocess.run([str(exe), "decode", "adv", "nothex"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not hex" in proc.stderr


def test_adv_accepts_ad_header_and_uuid_prefix(capsys):
    rc, out, _ = run(capsys, "adv", "0716d2fc4002ca09")
    doc = json.loads(out)
    assert rc == 0 and doc["objects"][0]["value"] == 25.06 and "AD structure" in doc["stripped"]
    rc, out, _ = run(capsys, "adv", "d2fc4002ca09")
    assert rc == 0 and json.loads(out)["stripped"].startswith("UUID")
