"""Shared CLI helpers: JSON / table output, progress bars, the MQTT broker option, dates, and the
authenticated session that wires services (the CLI's composition root)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, TextIO

if TYPE_CHECKING:   # types only: the services and drivers load inside the commands (fast --help)
    from ..access import AccessRepo, AccessService, Actor
    from ..clock import Clock
    from ..installations import InstallationService
    from ..inventory import InventoryService
    from ..store import Store, Transactions, Tx


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a read command its ``--json`` flag (also accepted before the subcommand)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON on stdout instead of a table")
    return parser


def add_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--broker", default=None, metavar="HOST:PORT",
                   help="MQTT broker (default: $FLEET_MQTT or 127.0.0.1:1883)")
    return p


def connect_broker(args, *, client_id: str, manual_ack: bool = False):
    from ..mqtt import MqttClient, parse_broker

    host, port = parse_broker(args.broker or os.environ.get("FLEET_MQTT") or "127.0.0.1:1883")
    return MqttClient(host, port, client_id=client_id, manual_ack=manual_ack).connect()


def parse_day(text: str) -> float:
    """``YYYY-MM-DD`` (UTC midnight) or an RFC 3339 time -> epoch seconds."""
    from ..errors import ValidationError

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-01") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


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
    """An open store plus the authenticated actor, for one command.

    This is the CLI's composition root: the ``inventory`` / ``installations`` / ``access``
    helpers wire a package's SQL adapter over an open transaction to its service, with a
    clock fixed when the helper is called (one command step = one instant).
    """

    store: Any
    actor: Any
    cfg: Any

    @property
    def clock(self) -> Clock:
        """The CLI's clock (``cfg.clock``) as a :class:`fleet.clock.Clock` that keeps ticking."""
        from ..clock import FunctionClock

        return FunctionClock(self.cfg.clock)

    def _now(self) -> Clock:
        from ..clock import FixedClock

        return FixedClock(self.cfg.clock())

    def inventory(self, tx: Tx, clock: Clock | None = None) -> InventoryService:
        from ..inventory import InventoryService
        from ..inventory._sql import SqlInventoryRepo

        return InventoryService(SqlInventoryRepo(tx), clock or self._now())

    def installations(self, tx: Tx) -> InstallationService:
        from ..installations import InstallationService
        from ..installations._sql import SqlInstallationRepo

        now = self._now()
        return InstallationService(SqlInstallationRepo(tx), self.inventory(tx, now), now)

    def access(self, tx: Tx) -> AccessService:
        return _access(tx, self.cfg)

    def audit(self, tx: Tx, action: str, entity: str, entity_id: Any = None, *, at: float | None = None,
              **kw: Any) -> None:
        """Audit ``action`` by this session's actor, in ``tx`` (so it commits with the change); ``at``: now."""
        from ..access import audit
        from ..access._sql import SqlAuditLog

        audit(SqlAuditLog(tx), self.actor, action, entity, entity_id, at=self.cfg.clock() if at is None else at, **kw)


def _access(tx: Tx, cfg: Any) -> AccessService:
    from ..access import AccessService
    from ..access._sql import SqlAccessRepo
    from ..clock import FixedClock

    return AccessService(SqlAccessRepo(tx), FixedClock(cfg.clock()))


def access_transactions(store: Store) -> Transactions[AccessRepo]:
    """Transactions on ``store`` that hand out the access SQL adapter (for multi-step flows)."""
    from ..access._sql import SqlAccessRepo
    from ..store import sql_transactions

    return sql_transactions(store, SqlAccessRepo)


def resolve_actor(store: Store, cfg: Any) -> Actor:
    """Who runs this command: FLEET_TOKEN, FLEET_USER (SQLite only) or the `fleet login` session."""
    from ..access import read_session_file

    session_data = None if (cfg.token or cfg.user) else read_session_file(cfg.session_file)
    with store.transaction(write=False) as tx:
        return _access(tx, cfg).resolve(token=cfg.token, user=cfg.user, session=session_data, db_url=store.url,
                                        trust_user=store.dialect.is_sqlite)


@contextmanager
def session(cfg, *, authenticate: bool = True) -> Iterator[Session]:
    """Open the store named by ``cfg`` and resolve who is running the command."""
    store = cfg.open_store()
    try:
        actor = resolve_actor(store, cfg) if authenticate else None
        yield Session(store, actor, cfg)
    finally:
        store.close()
