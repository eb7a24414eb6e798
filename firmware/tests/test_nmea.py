"""NMEA parser (firmware/lib/nmea.py) on the real MicroPython interpreter, via the bench
script bench/nmea_parse.py (the same path the receiver-log check uses)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from firmware.tests.gps_fixtures import gga, rmc, sentence, walk

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "nmea_parse.py"


def parse(tmp_path, text: str | bytes, *, chunk: int = 64, cpython: bool = False) -> tuple[list[dict], dict]:
    p = tmp_path / "log.nmea"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    cmd = [sys.executable, str(BENCH), str(p), "--chunk", str(chunk)] + (["--cpython"] if cpython else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    return lines[:-1], lines[-1]


def test_gga_rmc_same_epoch_merge_into_one_fix(tmp_path):
    log = "\r\n".join([
        sentence("GPGGA,123519.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        sentence("GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"),
        sentence("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
    ]) + "\r\n"
    fixes, summary = parse(tmp_path, log)
    assert fixes == [{"time": "1994-03-23T12:35:19.000Z", "lat": 48.1173, "lon": 11.5166667, "alt_m": 545.4,
                      "speed_mps": 11.524, "course_deg": 84.4, "fix_quality": 1, "sats": 8}]
    assert summary["sentences"] == 3 and summary["fixes"] == 1 and summary["checksum_errors"] == 0


def test_southern_western_hemispheres_and_talkers(tmp_path):
    lines = []
    for i, talker in enumerate(("GP", "GN", "GL", "GA", "BD", "GB")):
        lines.append(gga(3600 + i, -33.8688197, -151.2092955, talker=talker, q=2, sats=11, alt=-5.0))
    fixes, summary = parse(tmp_path, "\n".join(lines) + "\n")
    assert len(fixes) == 6 and summary["fixes"] == 6
    for f in fixes:
        assert f["lat"] == pytest.approx(-33.8688197, abs=2e-7)
        assert f["lon"] == pytest.approx(-151.2092955, abs=2e-7)
        assert f["fix_quality"] == 2 and f["sats"] == 11 and f["alt_m"] == -5.0
    assert fixes[0]["time"] == "01:00:00.000"  # GGA-only stream: no date known


def test_no_fix_epochs_emit_no_position(tmp_path):
    log = "\n".join([
        gga(10, 0, 0, q=0), rmc(10, 0, 0, valid=False),
        gga(11, 59.9, 10.7), rmc(11, 59.9, 10.7),
        sentence("GPRMC,000012.00,V,5954.0000,N,01042.0000,E,,,231126,,,N"),  # position but not valid
    ]) + "\n"
    fixes, summary = parse(tmp_path, log)
    assert len(fixes) == 1 and fixes[0]["time"] == "2026-11-23T00:00:11.000Z"
    assert summary["no_fix"] == 2


def test_rmc_only_stream_quality_from_mode_and_date(tmp_path):
    log = "\n".join([rmc(20, 69.6492, 18.9553, speed_mps=1.0, mode="D"), rmc(21, 69.6492, 18.9553, mode="A")]) + "\n"
    fixes, _ = parse(tmp_path, log)
    assert [f["fix_quality"] for f in fixes] == [2, 1]
    assert fixes[0]["speed_mps"] == pytest.approx(1.0, abs=0.002)
    assert fixes[0]["alt_m"] is None and fixes[0]["sats"] is None


def test_garbage_checksum_truncation_and_missing_checksum_are_counted_never_fatal(tmp_path):
    good = gga(30, 59.9, 10.7)
    log = b"\r\n".join([
        b"\x00\xff\xfe garbage \x80",                      # binary noise
        b"xx$GPGGA" + good[6:].encode(),                     # '$' mid-line garbage before a good sentence
        gga(31, 59.9, 10.7)[:-3].encode() + b"*00",           # wrong checksum
        b"$GPGGA,000032.00,5954.00",                          # truncated, no checksum
        b"$GPGGA,000033.00,5954.0000,N,01042.0000,E,1,05,1.0,10.0,M,,M,,",  # no checksum, complete
        b"$GPGGA,000034.00,5954.0000,X,01042.0000,E,1,05,1.0,10.0,M,,M,,",  # bad hemisphere
        b"$" + b"A" * 300,                                   # overlong line
        good[:20].encode() + gga(35, 59.9, 10.7).encode(),    # truncated sentence runs into the next
    ]) + b"\n"
    fixes, s = parse(tmp_path, log, chunk=7)
    assert [f["time"] for f in fixes] == ["00:00:30.000", "00:00:33.000", "00:00:35.000"]
    assert s["checksum_errors"] == 1
    assert s["malformed"] >= 3 and s["overflow"] == 1 and s["unchecked"] == 3


def test_lf_and_crlf_and_chunking_give_identical_fixes(tmp_path):
    lines = walk(59.9127, 10.7461, start_s=100, seconds=20, north_mps=1.4)
    a, sa = parse(tmp_path, "\r\n".join(lines) + "\r\n", chunk=1)
    b, sb = parse(tmp_path, "\n".join(lines) + "\n", chunk=4096)
    assert a == b and sa == sb and len(a) == 20


def test_micropython_and_cpython_parsers_agree_and_date_rolls_over_midnight(tmp_path):
    # one RMC gives the date; the GGA-only epochs after it carry it, across midnight
    lines = [rmc(86389, -45.0, -170.0)] + walk(-45.0, -170.0, start_s=86390, seconds=15, north_mps=-2.0,
                                               rmc_too=False)
    a = parse(tmp_path, "\n".join(lines) + "\n")
    b = parse(tmp_path, "\n".join(lines) + "\n", cpython=True)
    assert a == b
    times = [f["time"] for f in a[0]]
    assert times[0] == "2026-11-23T23:59:49.000Z" and times[-1] == "2026-11-24T00:00:04.000Z"


# -- fuzz: the parser never raises (run in-process on CPython; same module) ---------------------

def _load_firmware_module(name: str):
    # registered under its device name: nmea imports nmea_more (rare sentences) lazily
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / "firmware" / "lib" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


nmea = _load_firmware_module("nmea")  # the firmware module itself (CPython-compatible)
nmea_more = _load_firmware_module("nmea_more")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=120), st.sampled_from([
    gga(1, 59.9, 10.7).encode(), rmc(1, 59.9, 10.7).encode(), b"$GPGSA,A,3,,,,,,,,,,,,,,,", b"*", b"$", b"\r\n", b","])),
    max_size=30))
def test_fuzz_never_raises_and_counts_add_up(chunks):
    p = nmea.NmeaParser()
    for c in chunks:
        for fx in p.feed(c):
            assert not fx.invalid and fx.lat_e7 is not None and -900000000 <= fx.lat_e7 <= 900000000
    nmea_more.flush(p)
    s = nmea_more.stats(p)
    assert s["fixes"] >= 0 and all(v >= 0 for v in s.values())


def test_receiver_order_trailing_gsa_duplicate_talkers_and_gns(tmp_path):
    # u-blox order per second: RMC, VTG, GGA, GSA (trails the epoch), GSV; plus a second
    # talker repeating GGA, and a GNS-only receiver afterwards
    lines = []
    for k in range(3):
        t = 7200 + k
        lines += [rmc(t, 63.4305, 10.3951, speed_mps=1.2), sentence("GPVTG,45.0,T,,M,2.333,N,4.320,K,A"),
                  gga(t, 63.4305, 10.3951, talker="GN", sats=9), gga(t, 63.4305, 10.3951, talker="GP", sats=5),
                  sentence("GNGSA,A,1,,,,,,,,,,,,,99.9,99.9,99.9" if k == 1 else "GNGSA,A,3,01,02,03,,,,,,,,,,1.5,0.9,1.2"),
                  sentence("GPGSV,1,1,01,01,40,083,46")]
    lines += [sentence("GNGNS,020003.00,6325.8300,N,01023.7060,E,AAN,10,0.8,55.0,40.0,,,V"),
              sentence("GNGNS,020004.00,6325.8300,N,01023.7060,E,NNN,00,,,,,,V")]
    fixes, s = parse(tmp_path, "\r\n".join(lines) + "\r\n")
    assert [f["time"][-13:] for f in fixes] == ["02:00:00.000Z", "02:00:01.000Z", "02:00:02.000Z", "02:00:03.000Z"]
    assert [f["sats"] for f in fixes] == [9, 9, 9, 10]      # the first GGA of an epoch wins
    assert fixes[3]["alt_m"] == 55.0 and fixes[3]["fix_quality"] == 1
    assert s["no_fix"] == 1 and s["checksum_errors"] == 0   # GNS with all modes N: no position


def test_logger_prefixed_lines_with_real_checksums_zda_and_long_minutes(tmp_path):
    # formats seen in published receiver logs: an external timestamp before the '$',
    # 6-decimal minutes, ZDA, proprietary sentences (checksums are the receivers')
    log = "\n".join([
        "03/15/2010,14:08:45.876,$GPGGA,140844,2605.395,N,08006.974,W,2,08,0.90,0,M,,,1196,0017*21",
        "gnss_cnav  2014-12-11T00:00:01.0020Z  $GNZDA,000001.00,11,12,2014,00,00*7D",
        "gnss_cnav  2014-12-11T00:00:01.0811Z  $GNRMC,000001.00,A,2304.167961,N,16553.836924,W,7.87,100.6,111214,0,E,D*17",
        "gnss_cnav  2014-12-11T00:00:01.1226Z  $GNVTG,100.6,T,,M,7.87,N,14.57,K,D*2E",
        "gnss_cnav  2014-12-11T00:00:01.1630Z  $PNCTR,NAVQ,000001.00,3D,SBAS,DUAL*38",
        "gnss_cnav  2014-12-11T00:00:01.2517Z  $GNGGA,000001.00,2304.167961,N,16553.836924,W,2,11,1.0,44.542,M,0.000,M,2.0,0103*43",
    ]) + "\n"
    fixes, s = parse(tmp_path, log, chunk=16)
    assert s == {"sentences": 6, "fixes": 2, "checksum_errors": 0, "malformed": 0, "overflow": 0, "unchecked": 0,
                 "ignored": 1, "no_fix": 0}
    assert fixes[0] == {"time": "14:08:44.000", "lat": 26.0899167, "lon": -80.1162333, "alt_m": 0.0,
                        "speed_mps": None, "course_deg": None, "fix_quality": 2, "sats": 8}
    assert fixes[1]["time"] == "2014-12-11T00:00:01.000Z"
    assert (fixes[1]["lat"], fixes[1]["lon"]) == (23.069466, -165.897282)   # 2304.167961 N, 16553.836924 W
    assert fixes[1]["speed_mps"] == pytest.approx(7.87 * 0.514444, abs=0.001) and fixes[1]["sats"] == 11
