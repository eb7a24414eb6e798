"""Normalised transcripts and golden-file comparison.

A transcript is a list of lines describing what the platform saw, stripped of anything
that changes between runs (timestamps, event ids, device ids, latencies), so it can be
compared with a checked-in golden file. ``--update-golden`` rewrites golden files.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
VOLATILE = {"event_id", "occurred_at", "received_at", "sent_at", "at", "gateway", "device",
            "attempt", "latency_ms", "since", "uptime_s", "test_mode_until"}


def _scrub(value: Any, volatile: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, volatile) for k, v in sorted(value.items()) if k not in VOLATILE and k not in volatile}
    if isinstance(value, list):
        return [_scrub(v, volatile) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


def normalise(arrivals: Iterable[Any], names: Mapping[str, str] | None = None,
              volatile: Iterable[str] = ()) -> list[str]:
    """One line per arrival: ``<topic kind> <class> <type> <device name> <data>``.

    ``volatile`` names extra data keys to leave out (measured values that vary with timing).
    """
    names = names or {}
    extra = frozenset(volatile)
    lines = []
    for a in arrivals:
        p = a.payload
        kind = a.topic.rsplit("/", 1)[-1]
        dev = names.get(str(p.get("device", "")), p.get("role") or "?")
        data = json.dumps(_scrub(p.get("data", {}), extra), sort_keys=True, separators=(",", ":"))
        test = " test" if p.get("test") else ""
        lines.append(f"{kind} {p.get('class', '?')} {p.get('type', '?')} {dev}{test} {data}")
    return lines


class GoldenMismatch(AssertionError):
    pass


def check_golden(name: str, lines: list[str], update: bool, directory: Path = GOLDEN_DIR) -> None:
    path = directory / f"{name}.txt"
    text = "\n".join(lines) + "\n"
    if update or not path.exists():
        if not update:
            raise GoldenMismatch(
                f"no golden transcript {path}; run pytest hil_tests --update-golden to create it, then review and commit it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    expected = path.read_text()
    if expected != text:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            fromfile=str(path), tofile="this run"))
        raise GoldenMismatch(f"transcript differs from golden {path.name}:\n{diff}\n"
                             "If the change is intended, rerun with --update-golden and review the diff.")
