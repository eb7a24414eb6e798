"""Shared CLI helpers: JSON / table output, progress bars, the MQTT broker option, dates, the client of
the fleet service (:func:`api`) and, for the commands that are inherently local (workers, set-up), the
authenticated session over the database (:func:`session`)."""
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
    from ..access import AccessService, Actor
    from ..client import FleetClient
    from ..clock import Clock
    from ..installations import InstallationService
    from ..inventory import InventoryService
    from ..store import Store, Tx


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a read command its ``--json`` flag (also accepted before the subcommand)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON on stdout instead of a table")
    return parser


BROKER_ENV = {"url": "FLEET_MQTT", "username": "FLEET_MQTT_USER", "password_file": "FLEET_MQTT_PASSWORD_FILE",
              "password": "FLEET_MQTT_PASSWORD", "ca_file": "FLEET_MQTT_CA", "cert_file": "FLEET_MQTT_CERT",
              "key_file": "FLEET_MQTT_KEY"}


class _RefusePassword(argparse.Action):
    """``--broker-password X`` is refused (it would sit in shell history and ``ps``) instead of
    being taken by argparse as an abbreviation of ``--broker-password-file``."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise argparse.ArgumentError(self, "passwords never go on the command line; put it in a file readable only "
                                           "by you and give --broker-password-file FILE")


def add_broker_auth(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Credentials and TLS files for the broker (each also from the environment)."""
    p.add_argument("--broker-password", action=_RefusePassword, help=argparse.SUPPRESS)
    p.add_argument("--broker-user", metavar="NAME", help="broker user name (default $FLEET_MQTT_USER)")
    p.add_argument("--broker-password-file", metavar="FILE",
                   help="file whose first line is the broker password (default $FLEET_MQTT_PASSWORD_FILE; "
                        "$FLEET_MQTT_PASSWORD also works). Never give a password on the command line")
    p.add_argument("--broker-ca", metavar="FILE", help="CA certificate (PEM) of the broker, for mqtts:// "
                                                       "(default $FLEET_MQTT_CA, else the system trust store)")
    p.add_argument("--broker-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS ($FLEET_MQTT_CERT)")
    p.add_argument("--broker-key", metavar="FILE", help="key of the client certificate ($FLEET_MQTT_KEY)")
    return p


def add_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--broker", default=None, metavar="URL",
                   help="MQTT broker: mqtt://HOST[:1883], mqtts://[USER@]HOST[:8883] or HOST:PORT "
                        "(default: $FLEET_MQTT or 127.0.0.1:1883)")
    return add_broker_auth(p)


def broker_settings(args, *, url: str | None = None, env: Any = None):
    """The broker to use: command line > environment (``BROKER_ENV``) > default, in this one place.

    The password comes from ``--broker-password-file``, ``$FLEET_MQTT_PASSWORD_FILE`` or
    ``$FLEET_MQTT_PASSWORD`` — never from an argument (a URL with a password is refused).
    """
    from ..mqtt import parse_url, read_password_file

    env = os.environ if env is None else env

    def pick(attr: str, key: str) -> Any:
        v = getattr(args, attr, None)
        return v if v else (env.get(BROKER_ENV[key]) or None)

    password_file = pick("broker_password_file", "password_file")
    password = read_password_file(password_file) if password_file else (env.get(BROKER_ENV["password"]) or None)
    return parse_url(url or getattr(args, "broker", None) or env.get(BROKER_ENV["url"]) or "127.0.0.1:1883",
                     username=pick("broker_user", "username"), password=password,
                     ca_file=pick("broker_ca", "ca_file"), cert_file=pick("broker_cert", "cert_file"),
                     key_file=pick("broker_key", "key_file"))


def broker_client(args, *, client_id: str, manual_ack: bool = False, url: str | None = None, **kwargs):
    """An unconnected fleet.mqtt.MqttClient for ``args`` (see :func:`broker_settings`)."""
    from ..mqtt import MqttClient

    return MqttClient.from_settings(broker_settings(args, url=url), client_id=client_id, manual_ack=manual_ack,
                                    **kwargs)


def connect_broker(args, *, client_id: str, manual_ack: bool = False, url: str | None = None):
    return broker_client(args, client_id=client_id, manual_ack=manual_ack, url=url).connect()


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


DEFAULT_TZ = "Europe/Oslo"          # every time a person reads; $FLEET_TZ overrides (JSON keeps epoch seconds)
TIME_COLUMNS = frozenset({"at", "last_seen", "since", "expires", "time"})


def local_tz():
    """The display time zone: $FLEET_TZ or Europe/Oslo (UTC if the zone database lacks it)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = os.environ.get("FLEET_TZ") or DEFAULT_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def fmt_time(ts: float | None) -> str:
    """``2026-11-23 07:00:12 CET`` in the display zone (``-`` for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), tz=local_tz()).strftime("%Y-%m-%d %H:%M:%S %Z")


def fmt_ago(ts: float | None, now: float) -> str:
    """How long ago, for people: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 15 h`` (``never``)."""
    if ts is None:
        return "never"
    s = max(0, int(now - float(ts)))
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def is_time_column(name: str) -> bool:
    return name in TIME_COLUMNS or name.endswith("_at")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(v: Any, column: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if column and isinstance(v, (int, float)) and is_time_column(column):
        return fmt_time(v)
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, out: TextIO | None = None,
          headers: Sequence[str] | None = None) -> None:
    out = out or sys.stdout
    headers = list(headers or [c.upper() for c in columns])
    cells = [[_cell(r.get(c), c) for c in columns] for r in rows]
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
            out.write(f"{k.ljust(width)}  {_cell(v, k)}\n")
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


@contextmanager
def api(cfg, *, mqtt: Any = None, session_ttl_s: float | None = None) -> Iterator[FleetClient]:
    """The fleet service for this command: ``--server`` / ``FLEET_SERVER``, or the same application
    run in this process on ``--db`` (docs/fleet.md, "Server or one machine"). Commands call its
    typed methods; they neither open the database nor build services."""
    from ..client import connect

    with connect(cfg, mqtt=mqtt, session_ttl_s=session_ttl_s) as client:
        yield client


def local_only(cfg, what: str) -> None:
    """Refuse a command that opens the database itself when a server is configured without one."""
    from ..errors import ValidationError

    if cfg.server and not cfg.db_given:
        raise ValidationError(f"{what} runs next to the database, not through the fleet server; run it where the "
                              "database is, with --db / FLEET_DB (docs/fleet.md, \"Commands that stay local\")",
                              field="db")


@dataclass
class Session:
    """An open store plus the authenticated actor, for one command that stays local (a worker,
    database set-up); every other command goes through :func:`api`.

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


# What a person reads instead of "UNIQUE constraint failed: item.serial".
_UNIQUE_NOUNS = {
    ("item", "serial"): ("an item with serial number", "fleet device show {v}"),
    ("item", "hw_id"): ("an item with device id", "fleet device show {v}"),
    ("location", "code"): ("a location with code", "fleet location list"),
    ("device_model", "code"): ("a device model with code", "fleet model list"),
    ("municipality", "id"): ("a municipality with number", "fleet location municipalities"),
    ("kit", "code"): ("a kit with code", "fleet kit show {v}"),
    ("kit_template", "code"): ("a kit template with code", "fleet kit templates"),
    ("app_user", "name"): ("a user named", "fleet user list"),
    ("installation", "code"): ("an installation with code", "fleet install show {v}"),
    ("release", "release_id"): ("a release", "fleet release list"),
    ("rollout", "rollout_id"): ("a rollout", "fleet rollout list"),
}


def explain_integrity(exc: Any) -> str:
    """A sentence for a unique-constraint refusal (SQLite or PostgreSQL wording), else the message."""
    import re

    text = str(getattr(exc, "message", exc))
    cause = getattr(exc, "__cause__", None)
    table = col = value = None
    m = re.search(r"UNIQUE constraint failed: (\w+)\.(\w+)", text)
    if m:
        table, col = m.group(1), m.group(2)
    else:
        name = str(getattr(exc, "details", {}).get("constraint") or "")
        detail = getattr(getattr(cause, "diag", None), "message_detail", None) or text
        k = re.search(r"Key \((\w+)\)=\((.*)\) already exists", detail)
        if k:
            col, value = k.group(1), k.group(2)
            table = name[: -len(f"_{col}_key")] if name.endswith(f"_{col}_key") else name.rsplit("_", 1)[0] or None
            if name.endswith("_pkey"):
                table = name[:-5]
    if table is None or "already exists" not in text and "UNIQUE" not in text:
        return text
    noun, look = _UNIQUE_NOUNS.get((table, col or ""), (f"a {table.replace('_', ' ')} with this {col}", ""))
    shown = f" {value}" if value else ""
    hint = f" (see: {look.format(v=value or (col or '').upper())})" if look else ""
    return f"{noun}{shown} is already registered; nothing was saved{hint}"
