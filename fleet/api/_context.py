"""The service's composition root per request: who is asking (bearer token -> Actor) and the
fleet services over the SQL adapters of one transaction (or of plain reads, ``ctx.read()``).

Endpoints declare what they need with ``ctx: Ctx = need(Permission.X)``: the dependency
authenticates the bearer token (one this worker verified in the last ``auth_cache_s`` seconds
without a database round trip, see ``_authcache``), checks the role permission (the
municipality is checked by the service on the row it touches) and hands out a :class:`Ctx`.
``with ctx.tx() as s:`` is one transaction; ``s.inventory``, ``s.installations``, ``s.access``,
``s.config`` ... are the services over it, and every audit row they write is counted in the
metrics after commit. ``with ctx.read() as s:`` is for reads that write nothing (no audit row).
"""
from __future__ import annotations

import ipaddress
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..access import AccessService, Actor, Permission, audit
from ..access._sql import SqlAccessRepo, SqlAuditLog
from ..clock import Clock, FixedClock
from ..errors import NotAuthenticated
from ..installations import InstallationService
from ..installations._sql import SqlInstallationRepo
from ..inventory import InventoryService
from ..inventory._sql import SqlInventoryRepo
from ..store import Tx
from ._authcache import AuthCache, token_key
from ._metrics import Metrics
from ._settings import ApiSettings
from ._stores import ThreadStores


class _Counting:
    """Mixin: remember the entity of every audit row appended (counted after the commit)."""

    sink: list[str]

    def append_audit(self, entry) -> None:  # noqa: ANN001 - AuditEntry
        super().append_audit(entry)  # type: ignore[misc]
        self.sink.append(entry.entity)


class _Inventory(_Counting, SqlInventoryRepo):
    pass


class _Installations(_Counting, SqlInstallationRepo):
    pass


class _Access(_Counting, SqlAccessRepo):
    pass


class _Audit(_Counting, SqlAuditLog):
    pass


def _counted(cls: type, tx: Tx, sink: list[str]) -> Any:
    repo = cls(tx)
    repo.sink = sink
    return repo


@dataclass
class AppState:
    settings: ApiSettings
    stores: ThreadStores
    clock: Clock
    metrics: Metrics
    secrets: Any = None          # fleet.config secret keyring (None: secrets cannot be stored)
    auth_cache: AuthCache | None = None      # verified tokens of this worker (None: always the database)
    control_key: Any = None      # the fleet's control key (Ed25519PrivateKey); None: FLEET_CONTROL_KEY_FILE of this process


@dataclass
class Services:
    """The fleet services over one open transaction, acting as ``actor``."""

    tx: Tx
    actor: Actor
    clock: Clock
    state: AppState
    audited: list[str] = field(default_factory=list)

    @cached_property
    def inventory(self) -> InventoryService:
        return InventoryService(_counted(_Inventory, self.tx, self.audited), self.clock)

    @cached_property
    def installations(self) -> InstallationService:
        return InstallationService(_counted(_Installations, self.tx, self.audited), self.inventory, self.clock)

    @cached_property
    def access(self) -> AccessService:
        return AccessService(_counted(_Access, self.tx, self.audited), self.clock)

    @cached_property
    def config_store(self) -> Any:
        from ..config._sql import SqlConfigStore

        return SqlConfigStore(self.tx, secrets=self.state.secrets)

    @cached_property
    def config(self) -> Any:
        from ..config import ConfigService
        from ..control import TxSeq

        signer = None if self.state.control_key is None else self.control_signer(TxSeq(self.tx))
        return ConfigService(self.config_store, self.clock, signer=signer)

    def control_signer(self, seq: Any) -> Any:
        """The fleet's control signer in this service process: the app's key (``create_app(control_key=)``)
        or ``FLEET_CONTROL_KEY_FILE``'s; ``seq`` the sequence source (the store's, :class:`~fleet.control.TxSeq`).
        No key: :class:`ServiceUnavailable` naming the fix (a gateway refuses unsigned commands)."""
        from ..control import ControlKeyMissing, ControlSigner
        from ._problems import ServiceUnavailable

        if self.state.control_key is not None:
            return ControlSigner(self.state.control_key, seq, clock=self.clock.time)
        try:
            return ControlSigner.from_env(seq, clock=self.clock.time)
        except ControlKeyMissing as exc:
            raise ServiceUnavailable(f"this server cannot sign: {exc.message}") from None

    @cached_property
    def releases(self) -> Any:
        from ..upgrades._sql import ReleaseRepo

        return ReleaseRepo(self.tx)

    @cached_property
    def rollouts(self) -> Any:
        from ..upgrades._sql import RolloutRepo

        return RolloutRepo(self.tx)

    def audit(self, action: str, entity: str, entity_id: Any = None, **kw: Any) -> None:
        """Audit ``action`` by the request's actor in this transaction."""
        audit(_counted(_Audit, self.tx, self.audited), self.actor, action, entity, entity_id,
              at=self.clock.time(), **kw)


@dataclass
class Ctx:
    """One authenticated request."""

    state: AppState
    actor: Actor
    path: str

    @contextmanager
    def tx(self, *, write: bool = True) -> Iterator[Services]:
        with self.state.stores.using() as store:
            with store.transaction(write=write) as tx:
                s = Services(tx, self.actor, FixedClock(self.state.clock.time()), self.state)
                yield s
        if write and self.state.auth_cache is not None:
            self.state.auth_cache.clear()     # it may have ended a session or changed a user: check again
        for entity in s.audited:
            self.state.metrics.audit_writes.labels(entity).inc()

    @contextmanager
    def read(self) -> Iterator[Services]:
        """Reads that write nothing, not even an audit row (:meth:`fleet.store.Store.reading`: on
        PostgreSQL no BEGIN/COMMIT round trips; a write raises). Audited reads use ``tx``."""
        with self.state.stores.using() as store:
            with store.reading() as tx:
                yield Services(tx, self.actor, FixedClock(self.state.clock.time()), self.state)

    def now(self) -> float:
        return self.state.clock.time()


bearer = HTTPBearer(auto_error=False, description="a login token (POST /api/v1/login) or an API token")


def app_state(request: Request) -> AppState:
    return request.app.state.fleet


def client_address(request: Request, settings: ApiSettings) -> str | None:
    """The caller's address; ``X-Forwarded-For`` only when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    if peer and peer in settings.trusted_proxies:
        fwd = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(fwd))
        except ValueError:
            return peer
    return peer


def _bearer_token(creds: HTTPAuthorizationCredentials | None) -> str:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise NotAuthenticated("no bearer token; log in with POST /api/v1/login and send "
                               "'Authorization: Bearer <token>'")
    token = creds.credentials.strip()
    if len(token) > 200:
        raise NotAuthenticated("token not recognised; log in again")
    return token


def _verify(state: AppState, token: str) -> tuple[Actor, float | None]:
    with state.stores.using() as store, store.transaction(write=False) as tx:
        return AccessService(SqlAccessRepo(tx), FixedClock(state.clock.time())).verify_token(token)


def authenticate(state: AppState, creds: HTTPAuthorizationCredentials | None) -> Actor:
    """The token's actor, checked against the database now (blocking; no cache)."""
    return _verify(state, _bearer_token(creds))[0]


async def authenticate_cached(state: AppState, creds: HTTPAuthorizationCredentials | None) -> Actor:
    """The token's actor: from this worker's :class:`AuthCache` if it verified the token within
    ``auth_cache_s`` seconds, else checked against the database in a worker thread (and cached)."""
    token = _bearer_token(creds)
    cache = state.auth_cache
    if cache is None or not cache.enabled:
        return (await run_in_threadpool(_verify, state, token))[0]
    key = token_key(token)
    actor = cache.get(key)
    if actor is not None:
        return actor
    generation = cache.generation
    actor, expires_at = await run_in_threadpool(_verify, state, token)
    cache.put(key, actor, expires_at, generation)
    return actor


class Need:
    """Dependency: an authenticated actor whose role grants ``permission`` (None: any role)."""

    def __init__(self, permission: Permission | None) -> None:
        self.permission = permission

    async def __call__(self, request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Ctx:
        state = app_state(request)
        actor = await authenticate_cached(state, creds)
        if self.permission is not None:
            actor.require(self.permission)
        return Ctx(state, actor, request.url.path)


def need(permission: Permission | None) -> Any:
    """``ctx: Ctx = need(Permission.STOCK_READ)`` in an endpoint's signature."""
    return Depends(Need(permission))


# OpenAPI extension telling a reader (and the generated authorisation test) how an operation is scoped
MUNICIPALITY = {"x-scope": "municipality"}   # data of one or more municipalities: a foreign one gives 403/404
FLEETWIDE = {"x-scope": "fleet"}             # catalog data shared by every municipality (models, templates ...)
OWN = {"x-scope": "self"}                    # the caller's own account
PUBLIC = {"x-scope": "public"}               # no authentication (login, health, metrics)
