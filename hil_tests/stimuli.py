"""Stimuli for bench scenarios: pin traces, replayed accelerometer files, NMEA logs.

SisFall trials (/work/shared/data/sisfall, 200 Hz ADXL345 counts) are converted into the
firmware's replay format in the test's own tmp dir (never copied into the repo): one
``x y z`` line of milli-g per sample at the device rate, the bin mean of the source
samples (what drivers/replay.SampleFile does and what the LIS3DH's own averaging does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SISFALL_HZ = 200
SISFALL_G_PER_COUNT = 32.0 / 8192      # ADXL345 ±16 g, 13 bit


def read_sisfall(path: Path) -> list[tuple[float, float, float]]:
    """ADXL345 (x, y, z) in g of every sample of a SisFall trial."""
    out = []
    for line in path.read_text().splitlines():
        line = line.strip().rstrip(";")
        if not line:
            continue
        p = line.split(",")
        out.append((int(p[0]) * SISFALL_G_PER_COUNT, int(p[1]) * SISFALL_G_PER_COUNT,
                    int(p[2]) * SISFALL_G_PER_COUNT))
    return out


def resample_mg(samples: list[tuple[float, float, float]], src_hz: int, rate_hz: int) -> list[tuple[int, int, int]]:
    """Bin-mean resampling to ``rate_hz``, in integer milli-g."""
    out = []
    per = src_hz / rate_hz
    n = int(len(samples) / per)
    for k in range(n):
        a, b = int(round(k * per)), int(round((k + 1) * per))
        chunk = samples[a:b] or samples[a:a + 1]
        out.append(tuple(int(round(sum(s[i] for s in chunk) / len(chunk) * 1000)) for i in range(3)))  # type: ignore[misc]
    return out


@dataclass(frozen=True)
class Replay:
    path: Path
    rate_hz: int
    samples: int
    peak_s: float        # time of the largest acceleration magnitude in the written file
    peak_mg: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate_hz


def sisfall_replay(src: Path, dst: Path, *, rate_hz: int = 50, before_s: float = 4.0, after_s: float = 4.0,
                   lead_s: float = 0.0) -> Replay:
    """Write the window [peak - before_s, peak + after_s] of a SisFall trial as a replay file.

    ``lead_s`` seconds of the trial's first sample are prepended (the wearer standing
    still while the device boots).
    """
    mg = resample_mg(read_sisfall(src), SISFALL_HZ, rate_hz)
    mags = [math.sqrt(x * x + y * y + z * z) for x, y, z in mg]
    k = max(range(len(mags)), key=mags.__getitem__)
    a = max(0, k - int(before_s * rate_hz))
    b = min(len(mg), k + int(after_s * rate_hz))
    lead = [mg[a]] * int(lead_s * rate_hz)
    window = lead + mg[a:b]
    dst.write_text("".join(f"{x} {y} {z}\n" for x, y, z in window))
    return Replay(dst, rate_hz, len(window), (len(lead) + k - a) / rate_hz, int(mags[k]))


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


# ------------------------------------------------------------------ NMEA
def _nmea_checksum(body: str) -> str:
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
    return [f"${b}*{_nmea_checksum(b)}\r\n" for b in (gga, rmc)]


def walk_nmea(dst: Path, start: tuple[float, float], bearing_deg: float, speed_mps: float, seconds: int) -> Path:
    """An NMEA log of a walk in a straight line from ``start`` (1 fix per second)."""
    lines = []
    lat0, lon0 = start
    for t in range(seconds):
        d = speed_mps * t
        dlat = d * math.cos(math.radians(bearing_deg)) / 111_320.0
        dlon = d * math.sin(math.radians(bearing_deg)) / (111_320.0 * math.cos(math.radians(lat0)))
        lines += nmea_fix(t, lat0 + dlat, lon0 + dlon)
    dst.write_text("".join(lines))
    return dst
