"""``python -m hil_tests --report out/ [--bench FILE] [pytest args...]``

Runs the scenario library, writes JUnit XML (out/junit.xml), a JSON summary and an HTML
report (out/report.html), and ends with one JSON line:
``{"scenarios":…, "passed":…, "press_to_platform_p99_ms":…}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil_tests", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", default="out", help="report directory (default: out/)")
    ap.add_argument("--bench", default=None, help="bench TOML for real boards (default: emulated bench)")
    ap.add_argument("--update-golden", action="store_true", help="rewrite golden transcripts")
    args, rest = ap.parse_known_args(argv)
    out = Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    pyargs = [str(Path(__file__).resolve().parent), "-m", "hil", "-p", "no:cacheprovider",
              f"--junitxml={out / 'junit.xml'}", f"--hil-report={out}", "-q"]
    if args.bench:
        pyargs.append(f"--bench={args.bench}")
    if args.update_golden:
        pyargs.append("--update-golden")
    rc = pytest.main(pyargs + rest)
    summary_file = out / "report.json"
    if not summary_file.exists():
        print(json.dumps({"scenarios": 0, "passed": 0, "press_to_platform_p99_ms": None,
                          "error": f"no scenario ran (pytest exit {int(rc)})"}))
        return 1
    s = json.loads(summary_file.read_text())["summary"]
    print(f"report: {out / 'report.html'}  junit: {out / 'junit.xml'}", file=sys.stderr)
    line = {"scenarios": s["scenarios"], "passed": s["passed"], "press_to_platform_p99_ms": s["press_to_platform_p99_ms"]}
    if s.get("skipped"):
        line["skipped"] = s["skipped"]
    print(json.dumps(line))
    # skipped scenarios (e.g. one needing root on this machine) are listed in the report, not failures
    return 0 if rc == 0 and s["failed"] == 0 and s["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
