"""Liveness, readiness and metrics (no authentication; see docs/fleet-service.md)."""
from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...errors import StoreError
from ...store import pending
from .._context import PUBLIC, app_state
from .._problems import problem_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process answers (liveness)", openapi_extra=PUBLIC)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready for traffic: database reachable and every migration applied",
            openapi_extra=PUBLIC, responses={503: {"description": "not ready (the body says why)"}})
def readyz(request: Request) -> Any:
    state = app_state(request)
    try:
        with state.stores.using() as store:
            todo = pending(store)
    except StoreError:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if todo:
        return JSONResponse({"status": "unavailable", "database": "reachable", "pending_migrations": todo},
                            status_code=503)
    return {"status": "ready", "database": "reachable", "pending_migrations": []}


@router.get("/metrics", summary="Prometheus metrics (request counts/latency by route, login failures, audit writes)",
            openapi_extra=PUBLIC, response_class=Response)
def metrics(request: Request) -> Response:
    state = app_state(request)
    want = state.settings.metrics_token
    if want:
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {want}".encode()):
            return problem_response(401, "not authenticated", "metrics need the metrics token", instance="/metrics",
                                    code="not_authenticated", errors=[{"field": None, "problem": "no metrics token",
                                                                       "fix": "send Authorization: Bearer <token>"}],
                                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, ctype = state.metrics.exposition()
    return Response(body, media_type=ctype)
