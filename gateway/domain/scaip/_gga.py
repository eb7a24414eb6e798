"""NMEA 0183 GGA sentence and WGS84 ``geo`` text for SCAIP ``<lge>`` (pure)."""
from __future__ import annotations

import math
import time


def _dm(value: float, deg_digits: int) -> str:
    """Degrees → ``d…dmm.mmmm`` (4 decimal minutes), carrying 60.0000 minutes into degrees."""
    total = round(abs(value) * 600000)          # 1e-4 minutes
    deg, rest = divmod(total, 600000)
    return f"{deg:0{deg_digits}d}{rest // 10000:02d}.{rest % 10000:04d}"


def nmea_checksum(body: str) -> str:
    cs = 0
    for ch in body.encode("ascii"):
        cs ^= ch
    return f"{cs:02X}"


def gga_sentence(lat: float, lon: float, *, at_epoch: float, alt_m: float | None = None,
                 fix_quality: int = 1, sats: int | None = None) -> str:
    """``$GPGGA,hhmmss.00,ddmm.mmmm,N,dddmm.mmmm,E,q,nn,,alt,M,,M,,*CS`` (≤ 81 characters).

    HDOP, geoid separation and DGPS fields are empty: the trackers do not report them.
    Raises ValueError on a position outside WGS84 ranges (trusted input only)."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"position {lat},{lon} is not a WGS84 position")
    t = time.gmtime(int(at_epoch))
    q = min(max(int(fix_quality), 0), 8)
    n = "" if sats is None else f"{min(max(int(sats), 0), 99):02d}"
    alt = "" if alt_m is None or not math.isfinite(float(alt_m)) else f"{float(alt_m):.1f}"
    body = (f"GPGGA,{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}.00,"
            f"{_dm(lat, 2)},{'N' if lat >= 0 else 'S'},{_dm(lon, 3)},{'E' if lon >= 0 else 'W'},"
            f"{q},{n},,{alt},M,,M,,")
    return f"${body}*{nmea_checksum(body)}"


def geo_text(lat: float, lon: float) -> str:
    """WGS84 ``"lat,lon"`` with 6 decimals (about 0.1 m), at most 23 characters."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"position {lat},{lon} is not a WGS84 position")
    return f"{lat:.6f},{lon:.6f}"


def iso_utc(epoch: float) -> str:
    t = time.gmtime(int(epoch))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)
