"""The firmware's host HAL on a real pseudo-terminal, talking to the GATEWAY's codec.

host_main.py runs the button role on the real MicroPython interpreter with a real-time
clock and its link UART on a pty (PtyUart: raw mode, non-blocking reads). This test
is the gateway: it decodes the device's frames with gateway.codec (key check, payload
decode) and answers with frames the gateway codec encodes (ACK, TIME, FEEDBACK)."""
from __future__ import annotations

import os
import select
import time

import pytest

from firmware.tests.mpy import FIRMWARE, spawn_mpy

import gateway.codec.frame as codec  # contract test: the gateway codec ships in this repo
from gateway.codec.enums import MsgType  # noqa: E402
from gateway.codec.payloads import decode_payload  # noqa: E402

KEY = bytes(range(16))
DEV = "a4c1380a1b2c"


def _frames(fd: int, buf: bytearray, timeout_s: float):
    end = time.monotonic() + timeout_s
    out = []
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                buf.extend(os.read(fd, 4096))
            except OSError:
                break
        while b"\x00" in buf:
            i = buf.index(b"\x00")
            raw = bytes(buf[:i])
            del buf[:i + 1]
            if raw:
                out.append(codec.decode_wire(raw))
        if out:
            return out
    return out


def test_button_over_a_pty_with_the_gateway_codec(tmp_path):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    trace = tmp_path / "button.txt"
    trace.write_text("1000 1\n1200 0\n")
    src = (FIRMWARE / "host_main.py").read_text()
    p = spawn_mpy(src, heap="160k", args=(
        "--link", path, "--flash", str(tmp_path / "dev.img"), "--role", "button", "--key", KEY.hex(),
        "--device-id", DEV, "--pins", f"button={trace}", "--seconds", "5", "--heartbeat", "60"))
    buf = bytearray()
    got = []
    acked = None
    down_seq = 1
    try:
        end = time.monotonic() + 12
        while time.monotonic() < end and p.poll() is None:
            for f in _frames(master, buf, 0.2):
                assert isinstance(f, codec.Frame), f
                assert f.device_id == DEV and f.verify(KEY), f
                pl = decode_payload(f.type, f.payload) if f.type != MsgType.EVENT else bytes(f.payload)
                got.append((f.type, f.seq, pl))
                if f.type == MsgType.HELLO:
                    os.write(master, codec.encode_frame(MsgType.TIME, DEV, down_seq, (1795413600).to_bytes(4, "little"),
                                                        key=KEY, downlink=True))
                    down_seq += 1
                if f.type == MsgType.EVENT and acked is None:
                    acked = f.seq
                    ack = codec.encode_frame(MsgType.ACK, DEV, down_seq, acked.to_bytes(4, "little") + b"\x00",
                                             key=KEY, downlink=True)
                    fb = codec.encode_frame(MsgType.FEEDBACK, DEV, down_seq + 1, acked.to_bytes(4, "little") + b"\x02",
                                            key=KEY, downlink=True)
                    os.write(master, ack + fb)
                    down_seq += 2
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, out + err
    types = [t for t, _, _ in got]
    assert types[0] == MsgType.HELLO and got[0][2].fw_version == "0.1.0-dev"
    assert MsgType.HEARTBEAT in types
    events = [(s, pl) for t, s, pl in got if t == MsgType.EVENT]
    assert events and events[0][0] == acked and events[0][1][0] == 0x01   # button_press
    # the ACK stopped retransmission: the event was sent exactly once in 5 s (retry 2 s)
    assert len(events) == 1, events
    assert "Traceback" not in out, out


def _run_role_on_pty(tmp_path, role: str, extra: tuple[str, ...], seconds: int = 4) -> tuple[list, str]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    src = (FIRMWARE / "host_main.py").read_text()
    p = spawn_mpy(src, heap="256k", args=(
        "--link", path, "--flash", str(tmp_path / f"{role}.img"), "--role", role, "--key", KEY.hex(),
        "--device-id", DEV, "--seconds", str(seconds), *extra))
    buf = bytearray()
    got = []
    try:
        end = time.monotonic() + seconds + 10
        while time.monotonic() < end and p.poll() is None:
            for f in _frames(master, buf, 0.2):
                assert isinstance(f, codec.Frame) and f.verify(KEY), f
                got.append((f.type, bytes(f.payload)))
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)
    assert p.returncode == 0 and "Traceback" not in out, out + err
    return got, out


def test_gps_role_from_the_command_line_replays_nmea(tmp_path):
    from firmware.tests.gps_fixtures import walk
    log = tmp_path / "walk.nmea"
    log.write_text("\r\n".join(walk(59.9127, 10.7461, start_s=43200, seconds=30, north_mps=1.0)) + "\r\n")
    got, _ = _run_role_on_pty(tmp_path, "gps", ("--gps", str(log), "--gps-rate", "400"))
    events = [pl for t, pl in got if t == MsgType.EVENT]
    assert any(pl[0] == 0x40 for pl in events), got          # gps_position from the replayed fixes
    assert not any(pl[0] == 0x62 for pl in events), got      # the receiver passed its self-test


def test_fall_role_from_the_command_line_reads_the_replayed_accelerometer(tmp_path):
    # a recording without gravity (a sensor stuck at 0 g): the samples flow from the
    # file through the LIS3DH register model into the role, which flags them as
    # implausible after 5 s: sensor_fault(3)
    acc = tmp_path / "zero_g.csv"
    acc.write_text("t_s,ax_g,ay_g,az_g\n" + "".join(f"{i / 100:.2f},0.0,0.0,0.0\n" for i in range(1000)))
    got, _ = _run_role_on_pty(tmp_path, "fall", ("--acc", str(acc)), seconds=8)
    assert got and got[0][0] == MsgType.HELLO
    events = [pl for t, pl in got if t == MsgType.EVENT]
    assert any(pl[0] == 0x65 and pl[5:] == b"\x03" for pl in events), events
    assert not any(pl[0] == 0x62 for pl in events), events   # the LIS3DH model passed WHO_AM_I
