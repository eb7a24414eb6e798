"""Shared CLI helpers: JSON / table output, progress bars, opening an authenticated session."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence, TextIO


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a read command its ``--json`` flag (also accepted before the subcommand)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON on stdout instead of a table")
    return parser


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, out: TextIO | None = None,
          headers: Sequence[str] | None = None) -> None:
    out = out or sys.stdout
    headers = list(headers or [c.upper() for c in columns])
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    if not rows:
        out.write("(none)\n")


def emit(cfg, data: Any, *, columns: Sequence[str] | None = None, title: str | None = None,
         out: TextIO | None = None) -> None:
    """JSON when ``--json``; otherwise a table (list of dicts) or ``key: value`` lines (dict)."""
    out = out or sys.stdout
    if cfg.json:
        out.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    if title:
        out.write(title + "\n")
    if isinstance(data, list):
        table(data, columns or (list(data[0].keys()) if data else []), out=out)
    elif isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for k, v in data.items():
            out.write(f"{k.ljust(width)}  {_cell(v)}\n")
    else:
        out.write(f"{data}\n")


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self._last_decile = -1

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {self.done}/{self.total}")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"{self.label}: {self.done}/{self.total} ({decile * 10}%)\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def progress_iter(items: Iterable[Any], total: int, label: str, *, enabled: bool = True,
                  every: int = 1) -> Iterator[Any]:
    bar = Progress(total, label, enabled=enabled)
    pending = 0
    for x in items:
        yield x
        pending += 1
        if pending >= every:
            bar.advance(pending)
            pending = 0
    if pending:
        bar.advance(pending)
    bar.close()


@dataclass
class Session:
    """An open store plus the authenticated actor, for one command."""

    store: Any
    actor: Any
    cfg: Any


@contextmanager
def session(cfg, *, authenticate: bool = True) -> Iterator[Session]:
    """Open the store named by ``cfg`` and resolve who is running the command."""
    store = cfg.open_store()
    try:
        actor = None
        if authenticate:
            from ..access import resolve_actor

            actor = resolve_actor(store, cfg)
        yield Session(store, actor, cfg)
    finally:
        store.close()
