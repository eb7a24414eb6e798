"""Which fleet service a command talks to, and as whom: the client's composition root.

- ``--server URL`` / ``FLEET_SERVER``: the fleet service on a server, over HTTP. The command
  line holds no database credentials and never opens the database.
- Otherwise (one machine): the **same application** (:func:`fleet.api.create_app`) runs in this
  process over the local database (``--db`` / ``FLEET_DB``, default the SQLite file) behind an
  in-process transport (:mod:`._asgi`) — no socket. The app is the only code that opens the
  database; it migrates it on first open, as the command line always did on one machine.

Identity (first that applies): ``FLEET_TOKEN`` (a login or API token); ``FLEET_USER`` — embedded
on a local SQLite file only, where whoever can read the file can read the data anyway (a
12-hour session token is issued for the command by the in-process app and revoked when it
ends); the ``fleet login`` session file stored for this server or database.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import NotAuthenticated
from ._api import FleetClient
from ._http import Http

USER_TOKEN_TTL_S = 12 * 3600
DEFAULT_TIMEOUT_S = 30.0


def normalise_server(url: str) -> str:
    """``host:port`` or ``http(s)://host[:port][/]`` -> ``http(s)://host[:port]``."""
    from ..errors import ValidationError

    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    scheme, _, rest = text.partition("://")
    rest = rest.rstrip("/")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith(("/", ":")):
        raise ValidationError(f"--server {url!r} is not a fleet server URL; write e.g. https://fleet.example.no or "
                              "127.0.0.1:8080", field="server")
    return f"{scheme.lower()}://{rest}"


def session_matches(data: dict[str, Any] | None, cfg: Any) -> bool:
    """A stored ``fleet login`` session belongs to this server (or, embedded, to this database)."""
    if not data or not data.get("token"):
        return False
    if cfg.server:
        return data.get("server") == cfg.server
    return not data.get("server") and data.get("db") == cfg.db_url


def _stored_token(cfg: Any) -> str:
    from ..access import read_session_file

    data = read_session_file(cfg.session_file)
    if session_matches(data, cfg):
        return str(data["token"])      # type: ignore[index]
    where = f"on {cfg.server}" if cfg.server else "on this database"
    raise NotAuthenticated(f"not logged in {where}; run `fleet login USER` (or set FLEET_TOKEN"
                           + ("" if cfg.server else " / FLEET_USER") + " for scripts)")


@contextmanager
def connect(cfg: Any, *, mqtt: Any = None, session_ttl_s: float | None = None) -> Iterator[FleetClient]:
    """A client of the fleet service named by ``cfg`` (``cfg.server`` or the embedded app).

    Embedded only: ``mqtt`` (a :class:`fleet.mqtt.BrokerSettings`) is the broker the app pushes
    configurations through; ``session_ttl_s`` the length of a ``fleet login`` session.
    """
    if cfg.server:
        client = _remote(cfg)
    else:
        client = _embedded(cfg, mqtt=mqtt, session_ttl_s=session_ttl_s)
    try:
        yield client
    finally:
        client.close()


def _token_source(cfg: Any, trusted_user: Any = None):
    def token() -> str:
        if cfg.token:
            return str(cfg.token)
        if cfg.user:
            if trusted_user is None:
                raise NotAuthenticated("FLEET_USER is not accepted by a fleet server; run `fleet login USER`, or set "
                                       "FLEET_TOKEN to an API token (`fleet user token USER`)")
            return trusted_user(cfg.user)
        return _stored_token(cfg)

    return token


def _remote(cfg: Any) -> FleetClient:
    import httpx

    from .. import __version__

    http = httpx.Client(base_url=cfg.server, timeout=httpx.Timeout(DEFAULT_TIMEOUT_S, connect=5.0),
                        headers={"user-agent": f"fleet-cli/{__version__}"}, follow_redirects=False)
    return FleetClient(Http(http, where=cfg.server, token=_token_source(cfg)), embedded=False)


class _Embedded(FleetClient):
    """The in-process app and the session it issued for ``FLEET_USER`` (revoked on close)."""

    def __init__(self, http: Http, transport: Any, app: Any) -> None:
        super().__init__(http, embedded=True)
        self.transport = transport
        self.app = app
        self.issued: str | None = None

    def trusted_user(self, name: str) -> str:
        from ..access import AccessService
        from ..access._sql import SqlAccessRepo
        from ..clock import FixedClock

        state = self.app.state.fleet
        with state.stores.using() as store, store.transaction() as tx:
            svc = AccessService(SqlAccessRepo(tx), FixedClock(state.clock.time()))
            # the command line's rule: FLEET_USER only on a local SQLite file, and only an active user
            svc.resolve(token=None, user=name, session=None, db_url=store.url, trust_user=store.dialect.is_sqlite)
            self.issued, _ = svc.issue_token(name, ttl_s=USER_TOKEN_TTL_S)
        return self.issued

    def close(self) -> None:
        try:
            if self.issued is not None:
                from ..access import AccessService
                from ..access._sql import SqlAccessRepo
                from ..clock import FixedClock

                state = self.app.state.fleet
                with state.stores.using() as store, store.transaction() as tx:
                    AccessService(SqlAccessRepo(tx), FixedClock(state.clock.time())).revoke(self.issued)
                if state.auth_cache is not None:
                    state.auth_cache.clear()
        finally:
            try:
                super().close()
            finally:
                self.transport.close()


def _embedded(cfg: Any, *, mqtt: Any, session_ttl_s: float | None) -> FleetClient:
    import threading

    import httpx

    from ..api import create_app, settings_from_env
    from ..clock import FunctionClock
    from ..store import open_store
    from ._asgi import InProcessTransport

    overrides: dict[str, Any] = {"db_url": cfg.db_url, "kek_file": cfg.kek_file, "mqtt": mqtt,
                                 "mqtt_url": mqtt.url if mqtt is not None else None}
    if session_ttl_s is not None:
        overrides["session_ttl_s"] = session_ttl_s
    settings = settings_from_env({}, **overrides)
    first = threading.Lock()
    migrated: list[bool] = []

    def opener():
        # one machine: the local app owns the file and brings its schema up to date once
        with first:
            store = open_store(cfg.db_url, migrate=not migrated)
            migrated.append(True)
        return store

    app = create_app(settings, store=opener, clock=FunctionClock(cfg.clock))
    transport = InProcessTransport(app).start()
    http_client = httpx.Client(transport=transport, base_url="http://fleet.local", timeout=None)
    holder: list[_Embedded] = []
    http = Http(http_client, where=f"the local database {cfg.db_url}",
                token=_token_source(cfg, trusted_user=lambda name: holder[0].trusted_user(name)))
    client = _Embedded(http, transport, app)
    holder.append(client)
    return client
