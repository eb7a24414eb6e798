"""The ASGI application factory: routers, error handlers, limits, metrics, OpenAPI."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from fastapi.routing import APIRoute

from ..clock import Clock, SystemClock
from . import _problems
from ._authcache import AuthCache
from ._context import AppState, Need
from ._limits import BodyLimitMiddleware
from ._metrics import Metrics, MetricsMiddleware
from ._settings import ApiSettings
from ._stores import StoreOpener, ThreadStores

API_VERSION = "1.0.0"
UPLOAD_PATHS = ("/api/v1/releases", "/api/v1/deliveries")
DESCRIPTION = """\
The fleet service: the only holder of the fleet database's credentials. Every endpoint under
`/api/v1/` needs `Authorization: Bearer <token>` — a 30-minute login token (`POST /api/v1/login`)
or a long-lived, scoped API token (`POST /api/v1/tokens`). Authorisation is the role table of
`fleet/access/_roles.py` times the caller's municipalities: `x-permission` on an operation names the
permission, `x-scope` how its data is scoped (`municipality`: a foreign municipality's data gives
403/404 and no data). Errors are RFC 9457 problem details (`application/problem+json`) with
`errors: [{field, problem, fix}]`. Lists return `{items, next_cursor}`; pass `?cursor=` for the next
page. Every change and every read of personal data writes an audit record.
"""


def create_app(settings: ApiSettings, *, store: StoreOpener | None = None, clock: Clock | None = None,
               control_key: Any = None) -> FastAPI:
    """Build the service. ``store`` opens a Store (called once per worker thread; default
    ``open_store(settings.db_url, migrate=False)`` — the service never migrates, the owner role does);
    ``clock`` defaults to the wall clock; ``control_key`` the fleet's control key (an
    ``Ed25519PrivateKey``; default: ``FLEET_CONTROL_KEY_FILE`` of this process, read when signing)."""
    from ..config import Keyring
    from ..store import open_store
    from .routers import ROUTERS, system

    opener = store or (lambda: open_store(settings.db_url, migrate=False))
    clock = clock or SystemClock()
    state = AppState(settings, ThreadStores(opener), clock, Metrics(),
                     secrets=Keyring.load(settings.kek_file) if settings.kek_file else None,
                     auth_cache=AuthCache(settings.auth_cache_s, clock.time), control_key=control_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.db_threads
        try:
            yield
        finally:
            state.stores.close()

    app = FastAPI(title="Fleet service", version=API_VERSION, description=DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.fleet = state
    _problems.install(app)
    from ..web import router as web_router
    from .routers import events

    for r in [*ROUTERS, events.router, system.router]:
        _annotate(r.routes)
        app.include_router(r)
    app.include_router(web_router)       # the technician web app under /web (docs/fleet-web.md)
    _problem_schema(app)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes,
                       upload_paths=UPLOAD_PATHS)
    return app


def _annotate(routes: list[Any]) -> None:
    """``x-permission`` on each operation, from the endpoint's ``need(...)`` dependency."""
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(route.openapi_extra or {})
        for dep in route.dependant.dependencies:
            if isinstance(dep.call, Need):
                extra.setdefault("x-permission", dep.call.permission.value if dep.call.permission else "any")
        route.openapi_extra = extra


def _problem_schema(app: FastAPI) -> None:
    """The Problem schema in the components (the common responses refer to it)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = base()
        from pydantic.json_schema import models_json_schema

        _, defs = models_json_schema([(_problems.Problem, "serialization")], ref_template="#/components/schemas/{model}")
        doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
