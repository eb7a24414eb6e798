"""Stimuli: inputs built from factories, for gateway tests, the emulator, HIL benches, benches.

Build an input from a factory here instead of writing bytes by hand in a test (and
instead of copying a helper from another test file). Two kinds:

What the gateway receives (host side of the protocol, docs/protocol.md):

- :func:`event_frame`: a device's EVENT frame as wire bytes (COBS + 0x00), authenticated
  with the device key.
- :func:`bthome_plain`: unencrypted BTHome v2 service data with one-byte objects; for
  encrypted or typed objects use ``gateway.codec.encode_advert``.
- :func:`device_event`: an :class:`~gateway.domain.model.Event` as ingress stores it
  (id ``<device>-<seq:08x>``), for the journal, rules and the forwarder.

What a device senses (firmware inputs on a bench, docs/hil.md):

- :func:`button_presses` / :func:`releases`: pin traces (``(t_ms, level)`` points).
- :func:`resample_mg` / :func:`write_replay`: accelerometer replay files (``x y z`` milli-g
  per line at the device rate); the SisFall conversion lives in ``hil_tests/stimuli.py``.
- :func:`nmea_fix` / :func:`walk_nmea` / :func:`offset_position`: GPS NMEA logs.

Pure functions (files only where a path is passed): no clock, no randomness.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from gateway.codec import EventPayload, MsgType, encode_frame
from gateway.domain.model import Event, EventCode, Role, is_alarm

TEST_DEVICE = "a4c1380a1b2c"        # the device id most tests use
TEST_KEY = bytes(range(16))         # ... and its AES-128 key (never a real device's)
METRES_PER_DEGREE_LAT = 111_320.0


# ------------------------------------------------------------------ gateway inputs
def event_frame(seq: int, code: EventCode = EventCode.BUTTON_PRESS, *, device: str = TEST_DEVICE,
                key: bytes | None = TEST_KEY, age_ms: int = 0, data: dict[str, Any] | None = None,
                urgent: bool | None = None) -> bytes:
    """A device EVENT frame (wire bytes). ``urgent`` defaults to whether ``code`` is an alarm,
    as the firmware sets it; ``key=None`` sends it unauthenticated."""
    return encode_frame(MsgType.EVENT, device, seq, EventPayload(code, age_ms, dict(data or {})), key=key,
                        urgent=is_alarm(code) if urgent is None else urgent)


def bthome_plain(packet_id: int, *objects: tuple[int, int]) -> bytes:
    """BTHome v2 service data, unencrypted (device info 0x40): packet id, then one-byte objects."""
    out = bytearray([0x40, 0x00, packet_id & 0xFF])
    for oid, value in objects:
        out += bytes([oid, value])
    return bytes(out)


def device_event(seq: int, code: EventCode = EventCode.BUTTON_PRESS, t: float = 1_795_413_600.0, *,
                 device: str = TEST_DEVICE, role: Role | None = None, data: dict[str, Any] | None = None,
                 test: bool = False) -> Event:
    """An event from ``device`` as ingress stores it: id ``<device>-<seq:08x>``, occurred and
    received at ``t``."""
    return Event(event_id=f"{device}-{seq:08x}", device_id=device, code=code, occurred_at=t, received_at=t,
                 role=role, seq=seq, data=dict(data or {}), test=test)


# ------------------------------------------------------------------ pin traces
def button_presses(first_ms: int, n: int, every_ms: int, hold_ms: int = 120) -> list[tuple[int, int]]:
    """Pin trace of ``n`` short presses; level 1 = pressed."""
    pts: list[tuple[int, int]] = []
    for i in range(n):
        t = first_ms + i * every_ms
        pts += [(t, 1), (t + hold_ms, 0)]
    return pts


def releases(trace: list[tuple[int, int]]) -> list[int]:
    """Times (ms) at which a press completes (the falling edge: a short press is an alarm on release)."""
    return [t for (t, v) in trace if v == 0]


# ------------------------------------------------------------------ accelerometer replay
def resample_mg(samples: Sequence[tuple[float, float, float]], src_hz: int, rate_hz: int) -> list[tuple[int, int, int]]:
    """Bin-mean resampling of (x, y, z) in g to ``rate_hz``, in integer milli-g (what the
    firmware's replay driver and the LIS3DH's own averaging do)."""
    def mean_mg(chunk: Sequence[tuple[float, float, float]], axis: int) -> int:
        return int(round(sum(s[axis] for s in chunk) / len(chunk) * 1000))

    out = []
    per = src_hz / rate_hz
    n = int(len(samples) / per)
    for k in range(n):
        a, b = int(round(k * per)), int(round((k + 1) * per))
        chunk = samples[a:b] or samples[a:a + 1]
        out.append((mean_mg(chunk, 0), mean_mg(chunk, 1), mean_mg(chunk, 2)))
    return out


def write_replay(dst: Path, samples_mg: Sequence[tuple[int, int, int]]) -> Path:
    """The firmware's replay format: one ``x y z`` line of milli-g per sample."""
    dst.write_text("".join(f"{x} {y} {z}\n" for x, y, z in samples_mg))
    return dst


# ------------------------------------------------------------------ GPS
def nmea_checksum(body: str) -> str:
    """XOR of the characters between ``$`` and ``*``, two upper-case hex digits."""
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"{c:02X}"


def _deg_min(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    d = int(v)
    m = (v - d) * 60
    return (f"{d:02d}{m:07.4f}" if lat else f"{d:03d}{m:07.4f}"), hemi


def nmea_fix(t_s: int, lat: float, lon: float, sats: int = 8) -> list[str]:
    """A GGA + RMC pair for one 1 Hz fix (time of day t_s seconds after 10:00:00 UTC)."""
    hh, mm, ss = 10 + t_s // 3600, (t_s // 60) % 60, t_s % 60
    tod = f"{hh:02d}{mm:02d}{ss:02d}.00"
    la, ns = _deg_min(lat, True)
    lo, ew = _deg_min(lon, False)
    gga = f"GPGGA,{tod},{la},{ns},{lo},{ew},1,{sats:02d},0.9,23.0,M,39.0,M,,"
    rmc = f"GPRMC,{tod},A,{la},{ns},{lo},{ew},1.2,45.0,231126,,,A"
    return [f"${b}*{nmea_checksum(b)}\r\n" for b in (gga, rmc)]


def offset_position(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """(lat, lon) moved ``north_m`` then ``east_m`` metres (flat earth: fine for a few km)."""
    lat2 = lat + north_m / METRES_PER_DEGREE_LAT
    return lat2, lon + east_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat2)))


def walk_nmea(dst: Path, start: tuple[float, float], bearing_deg: float, speed_mps: float, seconds: int) -> Path:
    """An NMEA log of a walk in a straight line from ``start`` (1 fix per second)."""
    lines = []
    lat0, lon0 = start
    for t in range(seconds):
        d = speed_mps * t
        dlat = d * math.cos(math.radians(bearing_deg)) / METRES_PER_DEGREE_LAT
        dlon = d * math.sin(math.radians(bearing_deg)) / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat0)))
        lines += nmea_fix(t, lat0 + dlat, lon0 + dlon)
    dst.write_text("".join(lines))
    return dst


__all__ = ["TEST_DEVICE", "TEST_KEY", "bthome_plain", "button_presses", "device_event", "event_frame",
           "nmea_checksum", "nmea_fix", "offset_position", "releases", "resample_mg", "walk_nmea", "write_replay"]
