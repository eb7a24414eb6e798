"""Feed a raw NMEA log through the firmware's parser (firmware/lib/nmea.py) under the
real MicroPython interpreter; print one JSON fix per line and a final summary line.

    python bench/nmea_parse.py LOGFILE [--chunk 64] [--cpython]

Fix lines: {"time", "lat", "lon", "alt_m", "speed_mps", "course_deg", "fix_quality",
"sats"}; summary: {"sentences", "fixes", "checksum_errors", ...}. The log is fed in
chunks of --chunk bytes (as a UART delivers it), so lines split across reads are
exercised too. Epoch merging is documented in docs/gps.md.
"""
import sys


def fix_json(fx):
    """One-line JSON of a fix (exact decimal formatting, no float noise)."""
    def deg(v):
        if v is None:
            return "null"
        sign = "-" if v < 0 else ""
        v = -v if v < 0 else v
        return "%s%d.%07d" % (sign, v // 10000000, v % 10000000)

    def dec(v, div, places):
        if v is None:
            return "null"
        sign = "-" if v < 0 else ""
        v = -v if v < 0 else v
        fmt = "%s%d.%0" + str(places) + "d"
        return fmt % (sign, v // div, v % div)

    import nmea_more  # the firmware's formatter (on sys.path by now)
    t = nmea_more.iso_time(fx)
    return ('{"time": %s, "lat": %s, "lon": %s, "alt_m": %s, "speed_mps": %s, '
            '"course_deg": %s, "fix_quality": %s, "sats": %s}') % (
        "null" if t is None else '"%s"' % t, deg(fx.lat_e7), deg(fx.lon_e7),
        dec(fx.alt_dm, 10, 1), dec(fx.speed_mmps, 1000, 3), dec(fx.course_cdeg, 100, 2),
        "null" if fx.quality is None else fx.quality, "null" if fx.sats is None else fx.sats)


if sys.implementation.name == "micropython":
    def _worker(libdir, chunk):
        sys.path.insert(0, libdir)
        import nmea
        import nmea_more
        p = nmea.NmeaParser()
        inp = sys.stdin.buffer
        w = sys.stdout.write
        while True:
            data = inp.read(chunk)
            if not data:
                break
            for fx in p.feed(data):
                w(fix_json(fx) + "\n")
        for fx in nmea_more.flush(p):
            w(fix_json(fx) + "\n")
        st = nmea_more.stats(p)
        w("{" + ", ".join('"%s": %d' % (k, st[k]) for k in (
            "sentences", "fixes", "checksum_errors", "malformed", "overflow", "unchecked",
            "ignored", "no_fix")) + "}\n")

    _worker(sys.argv[1], int(sys.argv[2]))
    raise SystemExit(0)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _default_micropython() -> str:
    import shutil  # noqa: PLC0415

    venv = ROOT / ".venv" / "bin" / "micropython"
    if venv.exists():
        return str(venv)
    return shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
LIB = ROOT / "firmware" / "lib"


def run_cpython(data: bytes, chunk: int) -> list[str]:
    sys.path.insert(0, str(LIB))
    import nmea  # noqa: PLC0415 (the firmware module itself)
    import nmea_more  # noqa: PLC0415
    p = nmea.NmeaParser()
    out = []
    for i in range(0, len(data), chunk):
        out += [fix_json(f) for f in p.feed(data[i:i + chunk])]
    out += [fix_json(f) for f in nmea_more.flush(p)]
    st = nmea_more.stats(p)
    keys = ("sentences", "fixes", "checksum_errors", "malformed", "overflow", "unchecked", "ignored", "no_fix")
    out.append(json.dumps({k: st[k] for k in keys}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logfile", type=Path)
    ap.add_argument("--chunk", type=int, default=64, help="bytes per UART read (default 64)")
    ap.add_argument("--cpython", action="store_true", help="run the parser module in CPython")
    ap.add_argument("--micropython", default=_default_micropython())
    ap.add_argument("--heap", default="128k")
    args = ap.parse_args(argv)
    try:
        data = args.logfile.read_bytes()
    except OSError as exc:
        print(f"nmea_parse: cannot read {args.logfile}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.chunk < 1:
        print("nmea_parse: --chunk must be >= 1", file=sys.stderr)
        return 2
    if args.cpython:
        for line in run_cpython(data, args.chunk):
            print(line)
        return 0
    cmd = [args.micropython, "-X", f"heapsize={args.heap}", str(Path(__file__).resolve()), str(LIB), str(args.chunk)]
    proc = subprocess.run(cmd, input=data, capture_output=True)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or not out.rstrip().endswith("}"):
        print(f"nmea_parse: micropython parser failed (rc={proc.returncode}): "
              f"{(proc.stderr.decode(errors='replace') + out)[-2000:]}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
