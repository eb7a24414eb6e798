"""Sensor OTA on the bench: bundles and a relay that speaks the OTA frames of docs/protocol.md.

The gateway daemon does not relay OTA yet (the fleet's ``ota`` command has no gateway
handler), so :class:`OtaRelay` plays the gateway's part on the device's serial link: it
ACKs events, answers with TIME, and streams OTA_BEGIN / OTA_CHUNK / OTA_END built with the
gateway's own codec (gateway/codec), authenticated with the device key.

Bundle container (firmware/lib/ota.py): ``b"WTB1"``, u16 manifest length, manifest JSON
``{"version", "role", "files": [{"path", "size", "sha256"}]}``, then the files' bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import struct
import subprocess
import threading
import time
import tty
from pathlib import Path
from typing import Any


def compile_mpy(source: str, name: str, workdir: Path) -> bytes:
    """``source`` compiled with mpy-cross (as the firmware is shipped)."""
    from firmware.tests.mpy import mpy_cross_bin

    d = workdir / "ota-build"
    d.mkdir(exist_ok=True)
    src = d / name
    src.write_text(source)
    out = src.with_suffix(".mpy")
    subprocess.run([mpy_cross_bin(), "-o", str(out), "-s", name, str(src)], check=True, capture_output=True)
    return out.read_bytes()


def build_bundle(files: dict[str, bytes], version: str, role: str) -> bytes:
    manifest = {"version": version, "role": role,
                "files": [{"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()]}
    m = json.dumps(manifest, separators=(",", ":")).encode()
    return b"WTB1" + struct.pack("<H", len(m)) + m + b"".join(files.values())


class OtaRelay:
    """The gateway side of one device's serial link, for OTA (and the minimum a device needs meanwhile)."""

    def __init__(self, path: str, device_id: str, key: bytes) -> None:
        from gateway.codec import StreamDecoder

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.device_id = device_id
        self.key = key
        self.dl_seq = 1000           # above anything a gateway sent this device on the bench
        self.dec = StreamDecoder()
        self.uplink: list[tuple[float, Any, Any]] = []   # (wall, Frame, payload)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ota-relay")
        self._thread.start()

    # ---- link -------------------------------------------------------------------------
    def send(self, payload: Any) -> int:
        from gateway.codec import encode_payload_frame

        self.dl_seq += 1
        os.write(self.fd, encode_payload_frame(payload, self.device_id, self.dl_seq, key=self.key, downlink=True))
        return self.dl_seq

    def _run(self) -> None:
        from gateway.codec import Ack, AckStatus, Frame, MsgType, Time
        from gateway.codec.payloads import decode_payload

        while not self._stop.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            for f in self.dec.feed(data):
                if not isinstance(f, Frame) or not f.verify(self.key):
                    continue
                p = decode_payload(f.type, f.payload)
                with self._lock:
                    self.uplink.append((time.time(), f, p))
                    self._lock.notify_all()
                if f.type is MsgType.EVENT:
                    self.send(Ack(f.seq, AckStatus.STORED))
                elif f.type is MsgType.HELLO:
                    self.send(Time(int(time.time())))   # an authenticated downlink: the gateway is reachable

    def wait(self, pred: Any, timeout_s: float, after: float = 0.0) -> Any:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for t, f, p in self.uplink:
                    if t >= after and pred(p):
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def payloads(self, kind: type) -> list[Any]:
        with self._lock:
            return [p for _, _, p in self.uplink if isinstance(p, kind)]

    # ---- OTA --------------------------------------------------------------------------
    def _acked(self, seq: int, timeout_s: float, start: int) -> bool:
        from gateway.codec import Ack, Error

        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for _, _, p in self.uplink[start:]:
                    if isinstance(p, Ack) and p.acked_seq == seq:
                        return True
                    if isinstance(p, Error):
                        raise AssertionError(f"device refused OTA frame: {p}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)

    def push(self, bundle: bytes, version: str, signature: bytes = b"", chunk: int = 200,
             timeout_s: float = 5.0) -> None:
        """OTA_BEGIN, every OTA_CHUNK (each ACKed; re-sent once if the ACK is late), OTA_END."""
        from gateway.codec import OtaBegin, OtaChunk, OtaEnd

        steps: list[Any] = [OtaBegin(len(bundle), hashlib.sha256(bundle).digest(), version, signature)]
        steps += [OtaChunk(off, bundle[off:off + chunk]) for off in range(0, len(bundle), chunk)]
        steps.append(OtaEnd())
        for p in steps:
            for _attempt in range(3):
                with self._lock:
                    start = len(self.uplink)
                if self._acked(self.send(p), timeout_s, start):
                    break
            else:
                raise AssertionError(f"device never ACKed {type(p).__name__}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.fd)
