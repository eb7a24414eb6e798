"""NMEA input factories for the GPS tests (CPython): build sentences and walks."""
from __future__ import annotations

import math


def checksum(body: str) -> str:
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"{c:02X}"


def sentence(body: str, *, good: bool = True) -> str:
    return f"${body}*{checksum(body) if good else '00'}"


def _dm(deg: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if deg >= 0 else "S") if lat else ("E" if deg >= 0 else "W")
    a = abs(deg)
    d = int(a)
    m = (a - d) * 60
    return (f"{d:02d}{m:08.5f}" if lat else f"{d:03d}{m:08.5f}"), hemi


def gga(t_s: float, lat: float, lon: float, *, q: int = 1, sats: int = 8, alt: float = 12.0,
        talker: str = "GP", hdop: float = 0.9) -> str:
    hh, mm, ss = int(t_s // 3600) % 24, int(t_s // 60) % 60, t_s % 60
    la, ns = _dm(lat, True)
    lo, ew = _dm(lon, False)
    if q == 0:
        return sentence(f"{talker}GGA,{hh:02d}{mm:02d}{ss:05.2f},,,,,0,00,99.99,,,,,,")
    return sentence(f"{talker}GGA,{hh:02d}{mm:02d}{ss:05.2f},{la},{ns},{lo},{ew},{q},{sats:02d},{hdop},{alt:.1f},M,18.0,M,,")


def rmc(t_s: float, lat: float, lon: float, *, speed_mps: float = 0.0, course: float = 0.0,
        date: str = "231126", valid: bool = True, talker: str = "GP", mode: str = "A") -> str:
    hh, mm, ss = int(t_s // 3600) % 24, int(t_s // 60) % 60, t_s % 60
    la, ns = _dm(lat, True)
    lo, ew = _dm(lon, False)
    kn = speed_mps / 0.514444
    if not valid:
        return sentence(f"{talker}RMC,{hh:02d}{mm:02d}{ss:05.2f},V,,,,,,,{date},,,N")
    return sentence(f"{talker}RMC,{hh:02d}{mm:02d}{ss:05.2f},A,{la},{ns},{lo},{ew},{kn:.3f},{course:.1f},{date},,,{mode}")


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    r = 6371008.8
    return lat + math.degrees(north_m / r), lon + math.degrees(east_m / (r * math.cos(math.radians(lat))))


def walk(lat0: float, lon0: float, *, start_s: float, seconds: int, north_mps: float,
         start_north_m: float = 0.0, rmc_too: bool = True, talker: str = "GN") -> list[str]:
    """1 Hz GGA (+RMC) of a person walking north from start_north_m."""
    out = []
    for k in range(seconds):
        t = start_s + k
        lat, lon = offset(lat0, lon0, start_north_m + north_mps * k, 0.0)
        out.append(gga(t, lat, lon, talker=talker))
        if rmc_too:
            out.append(rmc(t, lat, lon, speed_mps=abs(north_mps), course=0.0 if north_mps >= 0 else 180.0, talker=talker))
    return out
