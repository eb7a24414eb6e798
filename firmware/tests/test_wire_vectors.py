"""Every vector of docs/protocol-vectors.json, decoded AND re-encoded by firmware/lib/wire.py
running on the real MicroPython interpreter (64 KB heap, .mpy as deployed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.tests.mpy import ROOT, run_mpy

VECTORS = ROOT / "docs" / "protocol-vectors.json"

# Runs under MicroPython: one JSON case per input line -> one JSON result per output line.
CHECKER = r'''
import json, struct, wire, wire_gw
def fields(t, p):
    if t == wire.T_EVENT:
        ev = wire_gw.parse_event(p)
        if isinstance(ev, str):
            return ev, None
        code, age, data = ev
        return {"code": code, "age_ms": age, "data": list(data), "class": wire.event_class(code)}, \
            wire.event_payload(code, age, wire_gw.pack_event_data(code, *data))
    if t == wire.T_ACK:
        a = wire.parse_u32_u8(p, 3)
        if a is None:
            return "bad_payload", None
        return {"acked_seq": a[0], "status": a[1]}, wire.ack_payload(a[0], a[1])
    if t == wire.T_FEEDBACK:
        a = wire.parse_u32_u8(p, 3)
        if a is None or a[1] == 0:
            return "bad_payload", None
        return {"ref_seq": a[0], "state": a[1]}, struct.pack("<IB", a[0], a[1])
    if t == wire.T_HEARTBEAT:
        if len(p) != 13:
            return "bad_payload", None
        v = struct.unpack("<BHBIHHb", p)
        return {"battery_pct": v[0], "battery_mv": v[1], "power_flags": v[2], "uptime_s": v[3],
                "queue_depth": v[4], "rejects": v[5], "rssi": v[6]}, wire.heartbeat_payload(*v)
    if t == wire.T_HELLO:
        role, rc, cv, n = struct.unpack("<BBIB", p[:7])
        fw = p[7:7 + n].decode()
        return {"role": role, "reset_cause": rc, "config_version": cv, "fw_version": fw}, \
            wire.hello_payload(role, rc, cv, fw)
    if t == wire.T_CONFIG:
        cv = struct.unpack("<I", p[:4])[0]
        return {"config_version": cv, "config": json.loads(p[4:])}, p
    if t == wire.T_TIME:
        return {"epoch_s": struct.unpack("<I", p)[0]}, p
    if t == wire.T_OTA_STATUS:
        v = p[2:2 + p[1]].decode()
        return {"state": p[0], "version": v}, wire.ota_status_payload(p[0], v)
    if t == wire.T_ERROR:
        m = p[1:].decode()
        return {"code": p[0], "msg": m}, wire.error_payload(p[0], m)
    if t == wire.T_OTA_BEGIN:
        import ota
        b = ota.parse_begin(p)
        if b is None:
            return "bad_payload", None
        return {"total_size": b[0], "sha256": b[1].hex(), "version": b[2], "signature": b[3].hex()}, p
    if t == wire.T_OTA_CHUNK:
        return {"offset": struct.unpack("<I", p[:4])[0], "data": p[4:].hex()}, p
    return {}, p

for line in open(FILE):
    c = json.loads(line)
    k = c["key"]
    auth = wire.Auth(bytes.fromhex(k)) if k else None
    kind = c["kind"]
    if kind == "crc":
        print(json.dumps({"crc": wire.crc16(bytes.fromhex(c["in"]))}))
    elif kind == "cobs":
        d = bytes.fromhex(c["dec"])
        e = bytes.fromhex(c["enc"])
        back = wire.cobs_decode(e)
        print(json.dumps({"enc": wire.cobs_encode(d).hex(), "dec": back.hex() if back is not None else None}))
    elif kind == "replay":
        w = wire.ReplayWindow()
        out = []
        for s in c["steps"]:
            ok = w.check(s)
            if ok:
                w.accept(s)
            out.append(ok)
        print(json.dumps({"acc": out, "highest": w.highest, "bits": "%016x" % w.bits}))
    else:
        raw = bytes.fromhex(c["wire"])
        dec = wire.StreamDecoder()
        items = dec.feed(raw)
        if len(items) != 1:
            print(json.dumps({"reason": "split", "n": len(items)}))
            continue
        f = wire.decode(items[0], auth) if items[0] is not None else "oversize"
        if isinstance(f, str):
            print(json.dumps({"reason": f}))
            continue
        fl, payload = fields(f.type, f.payload)
        if isinstance(fl, str):
            print(json.dumps({"reason": fl}))
            continue
        again = wire.encode(f.type, f.flags, f.device_id, f.seq, payload, auth) if payload is not None else b""
        print(json.dumps({"type": f.type, "flags": f.flags, "dev": f.device_id.hex(), "seq": f.seq,
                          "payload": f.payload.hex(), "authed": f.authed, "fields": fl, "wire": again.hex()}))
'''


def _vectors():
    return json.loads(VECTORS.read_text())


def _cases(v):
    cases = []
    for c in v["crc"]:
        cases.append({"kind": "crc", "key": None, "in": c["input_hex"], "exp": c})
    for c in v["cobs"]:
        cases.append({"kind": "cobs", "key": None, "dec": c["decoded_hex"], "enc": c["encoded_hex"], "exp": c})
    for c in v["replay"]:
        cases.append({"kind": "replay", "key": None, "steps": [s["seq"] for s in c["steps"]], "exp": c})
    for c in v["frames"]:
        cases.append({"kind": "frame", "key": c["key_hex"], "wire": c["wire_hex"], "exp": c})
    for c in v["invalid_frames"]:
        cases.append({"kind": "invalid", "key": c["key_hex"], "wire": c["wire_hex"], "exp": c})
    return cases


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not VECTORS.exists():
        pytest.fail(f"{VECTORS} missing: generate it with `python -m gateway.codec.vectors --write`")
    cases = _cases(_vectors())
    f = tmp_path_factory.mktemp("vec") / "cases.jsonl"
    f.write_text("".join(json.dumps({k: v for k, v in c.items() if k != "exp"}) + "\n" for c in cases))
    out = run_mpy(f"FILE = {str(f)!r}\n" + CHECKER, heap="64k").stdout.splitlines()
    assert len(out) == len(cases), out[-3:]
    return [(c, json.loads(line)) for c, line in zip(cases, out)]


def _expected_fields(t: int, exp: dict) -> dict:
    """The gateway's decoded view -> the firmware's raw view (units, nulls)."""
    e = dict(exp)
    if t == 1:
        data = e["data"]
        vals = list(data.values())
        if "lat" in data:
            vals = [round(data["lat"] * 1e7), round(data["lon"] * 1e7), data["alt_m"], data["fix_quality"],
                    data["sats"], data["zone"]]
        return {"code": e["code"], "age_ms": e["age_ms"], "data": vals,
                "class": {"event": 0, "care": 1, "technical": 2}[e["class"]]}
    if t == 3:
        if e["battery_pct"] is None:
            e["battery_pct"] = 0xFF
        if e["rssi"] is None:
            e["rssi"] = 0x7F
    return e


def test_crc_and_cobs_vectors(results):
    n = 0
    for c, r in results:
        if c["kind"] == "crc":
            assert r["crc"] == c["exp"]["crc"], c
            n += 1
        elif c["kind"] == "cobs":
            assert r["enc"] == c["exp"]["encoded_hex"], c
            assert r["dec"] == c["exp"]["decoded_hex"], c
            n += 1
    assert n == len(_vectors()["crc"]) + len(_vectors()["cobs"])


def test_replay_window_vectors(results):
    for c, r in results:
        if c["kind"] != "replay":
            continue
        assert r["acc"] == [s["accepted"] for s in c["exp"]["steps"]]
        state = bytes.fromhex(c["exp"]["final_state_hex"])
        assert r["highest"] == int.from_bytes(state[1:5], "little")
        assert int(r["bits"], 16) == int.from_bytes(state[5:13], "little")


def test_every_valid_frame_decodes_and_reencodes_byte_exact(results):
    seen = 0
    for c, r in results:
        if c["kind"] != "frame":
            continue
        d = c["exp"]["decoded"]
        name = c["exp"]["name"]
        assert "reason" not in r, (name, r)
        assert r["type"] == d["type"] and r["flags"] == d["flags"] and r["seq"] == d["seq"], name
        assert r["dev"] == d["device_id"] and r["payload"] == d["payload_hex"], name
        assert r["authed"] == (c["key"] is not None), name
        assert r["fields"] == _expected_fields(d["type"], d["fields"]), name
        assert r["wire"] == c["exp"]["wire_hex"], f"{name}: re-encoded differs"
        seen += 1
    assert seen == len(_vectors()["frames"]) >= 30


def test_every_invalid_frame_is_rejected_with_the_vector_reason(results):
    seen = 0
    for c, r in results:
        if c["kind"] != "invalid":
            continue
        assert r.get("reason") == c["exp"]["reason"], (c["exp"]["name"], r)
        seen += 1
    assert seen == len(_vectors()["invalid_frames"]) >= 10
