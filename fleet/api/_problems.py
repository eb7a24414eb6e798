"""RFC 9457 problem details: every error the service answers is ``application/problem+json``.

``{type, title, status, detail, instance, errors: [{field, problem, fix}]}`` — the
``errors`` list names each bad field and how to fix it, as the fleet's validators do
(ESPHome style). Fleet errors map by class (:data:`STATUS`); request validation errors
(malformed JSON, wrong types, unknown fields with "did you mean") are translated here;
an unexpected exception becomes a 500 that says nothing about the inside.
"""
from __future__ import annotations

import difflib
import logging
from typing import Any, Iterable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..access import LoginThrottled
from ..errors import (AccessDenied, CommissioningError, Conflict, FleetError, IntegrityViolation, InvalidTransition,
                      NotAuthenticated, NotFound, StoreBusy, StoreError, ValidationError)

log = logging.getLogger("fleet.api")
MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:fleet:problem:"


class FieldProblem(BaseModel):
    field: str | None = Field(description="the request field at fault (dotted), or null for the request as a whole")
    problem: str
    fix: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(examples=["urn:fleet:problem:invalid"])
    title: str = Field(examples=["invalid input"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["unknown location kind 'garage'; use one of warehouse, van, home"])
    instance: str = Field(examples=["/api/v1/locations"])
    errors: list[FieldProblem] = Field(default_factory=list)


class ServiceUnavailable(FleetError):
    """A feature the server is not configured for (e.g. no MQTT broker for config pushes)."""

    code = "unavailable"


# most specific class first
STATUS: tuple[tuple[type[FleetError], int, str], ...] = (
    (LoginThrottled, 429, "too many failed logins"),
    (NotAuthenticated, 401, "not authenticated"),
    (AccessDenied, 403, "access denied"),
    (NotFound, 404, "not found"),
    (Conflict, 409, "edit conflict: reload and apply your change again"),
    (InvalidTransition, 409, "not allowed in the current state"),
    (CommissioningError, 409, "installation not ready"),
    (IntegrityViolation, 409, "clashes with stored data"),
    (StoreBusy, 503, "database busy: retry"),
    (ServiceUnavailable, 503, "not available on this server"),
    (ValidationError, 422, "invalid input"),
)


def _status_table() -> tuple[tuple[type[FleetError], int, str], ...]:
    from ..config import ConfigError
    from ..mqtt import MqttError
    from ..upgrades import ArtifactRejected, UpgradeError

    return STATUS + ((ArtifactRejected, 422, "release rejected"), (UpgradeError, 422, "invalid upgrade request"),
                     (ConfigError, 422, "invalid configuration"), (MqttError, 503, "MQTT broker unavailable"))

_GENERIC_FIX = {401: "log in again (POST /api/v1/login) and send the token as 'Authorization: Bearer <token>'",
                403: "ask an admin for a role or municipality scope that allows it",
                404: "check the identifier (list the collection to find it)",
                409: "reload the resource and try again",
                422: "correct the value and send the request again",
                429: "wait and try again",
                503: "retry in a moment"}


def problem_response(status: int, title: str, detail: str, *, instance: str, code: str,
                     errors: Iterable[dict[str, Any]] = (), headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": TYPE_PREFIX + code, "title": title, "status": status, "detail": detail, "instance": instance,
            "errors": list(errors)}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _split_fix(message: str) -> tuple[str, str | None]:
    """Fleet messages read "<what is wrong>; <how to fix it>"."""
    head, sep, tail = message.rpartition("; ")
    return (head, tail) if sep else (message, None)


def _constraint_field(constraint: str) -> str | None:
    """'UNIQUE constraint failed: item.serial' (SQLite) or 'item_serial_key' (PostgreSQL) -> 'serial'."""
    if "." in constraint:
        return constraint.rsplit(".", 1)[-1].strip() or None
    parts = constraint.split("_")
    if len(parts) >= 3 and parts[-1] in ("key", "fkey", "pkey", "check"):
        return "_".join(parts[1:-1])
    return None


def fleet_error_response(request: Request, exc: FleetError) -> JSONResponse:
    status, title = 500, "error"
    for cls, st, t in _status_table():
        if isinstance(exc, cls):
            status, title = st, t
            break
    headers: dict[str, str] = {}
    detail = exc.message
    field = exc.details.get("field") or exc.details.get("key")
    problem, fix = _split_fix(exc.message)
    if exc.details.get("fix"):
        problem, fix = exc.message, str(exc.details["fix"])
    if isinstance(exc, IntegrityViolation):
        constraint = str(exc.details.get("constraint", ""))
        field = field or _constraint_field(constraint)
        detail = problem = "the change clashes with a stored record (a duplicate or a missing reference)"
        fix = f"use another {field}" if field else "check identifiers; list the collection to see what exists"
    code = exc.code
    if isinstance(exc, AccessDenied) and exc.details.get("municipality") not in (None, "*"):
        # outside the caller's municipalities: answered like a missing row, so neither the row's
        # existence nor its municipality is revealed
        status, title, code = 404, "not found", NotFound.code
        detail = problem = "not found in your municipalities"
        fix = "check the identifier; an admin can add the municipality to your scope if you need it"
        field = None
    if status == 500:   # a storage or unexpected fleet error: say nothing about the inside
        log.error("fleet error on %s: %s", request.url.path, exc.message)
        detail = problem = "the server could not complete the request"
        fix = "try again later; if it persists, tell the fleet operators the time of the request"
        title = "internal error"
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, StoreBusy):
        headers["Retry-After"] = "1"
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="fleet"'
    errors = [{"field": field, "problem": problem, "fix": fix or _GENERIC_FIX.get(status, "")}]
    return problem_response(status, title, detail, instance=request.url.path, code=code, errors=errors,
                            headers=headers or None)


# pydantic error type -> (problem, fix)
_PYDANTIC = {
    "missing": ("is required", "give {field}"),
    "extra_forbidden": ("is not a field of this request", "remove {field}"),
    "json_invalid": ("the body is not valid JSON", "send a JSON object with Content-Type: application/json"),
    "model_attributes_type": ("must be a JSON object", "send a JSON object {{...}}"),
    "dict_type": ("must be a JSON object", "send a JSON object {{...}}"),
    "int_parsing": ("must be a whole number", "write a number without quotes, e.g. 3"),
    "int_type": ("must be a whole number", "write a number without quotes, e.g. 3"),
    "float_parsing": ("must be a number", "write a number without quotes, e.g. 2.5"),
    "float_type": ("must be a number", "write a number without quotes, e.g. 2.5"),
    "bool_parsing": ("must be true or false", "write true or false without quotes"),
    "bool_type": ("must be true or false", "write true or false without quotes"),
    "string_type": ("must be a string", "put the value in quotes"),
    "list_type": ("must be a list", "write a JSON list [...]"),
    "string_too_long": ("is too long", "shorten {field}"),
    "string_too_short": ("is too short", "give a longer {field}"),
    "string_pattern_mismatch": ("has characters that are not allowed", "see the pattern in /openapi.json"),
    "enum": ("is not one of the allowed values", "use one of the values listed in /openapi.json"),
    "literal_error": ("is not one of the allowed values", "use one of the values listed in /openapi.json"),
    "greater_than_equal": ("is too small", "give a larger {field}"),
    "greater_than": ("is too small", "give a larger {field}"),
    "less_than_equal": ("is too large", "give a smaller {field}"),
    "less_than": ("is too large", "give a smaller {field}"),
}


def _allowed_fields(request: Request, loc: tuple[Any, ...]) -> list[str]:
    route = request.scope.get("route")
    body = getattr(route, "body_field", None)
    model = None
    if body is not None:
        model = getattr(body, "type_", None) or getattr(getattr(body, "field_info", None), "annotation", None)
    for part in loc[1:-1]:   # walk nested models
        fields = getattr(model, "model_fields", {})
        model = getattr(fields.get(part), "annotation", None) if part in fields else None
    return sorted(getattr(model, "model_fields", {}) or [])


def validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors: list[dict[str, Any]] = []
    status, code, title = 422, "invalid", "invalid input"
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        field = ".".join(str(p) for p in loc[1:]) or (str(loc[0]) if loc else None)
        etype = e.get("type", "")
        if etype == "json_invalid":
            status, code, title = 400, "malformed_json", "malformed JSON"
            field = None
            ctx = e.get("ctx", {}).get("error")
            problem = "the body is not valid JSON" + (f" ({ctx})" if ctx else "")
            fix = "send a JSON object with Content-Type: application/json"
        else:
            problem, fix = _PYDANTIC.get(etype, (str(e.get("msg", "is not valid")).lower(), "correct {field}"))
            if etype == "extra_forbidden" and loc:
                allowed = _allowed_fields(request, loc)
                close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                fix = f"did you mean {close[0]}?" if close else f"remove {field}; the fields are {', '.join(allowed)}"
            if etype == "missing" and loc and loc[0] == "body" and len(loc) == 1:
                problem, fix = "the request needs a JSON body", "send a JSON object"
            elif loc and loc[0] in ("query", "path", "header") and etype != "missing":
                problem = f"{problem} (got {e.get('input')!r})"[:200]
            fix = fix.format(field=field)
        errors.append({"field": field, "problem": problem, "fix": fix})
    detail = "; ".join(f"{x['field']}: {x['problem']}" if x["field"] else x["problem"] for x in errors[:5])
    return problem_response(status, title, detail, instance=request.url.path, code=code, errors=errors)


def http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    titles = {404: ("not_found", "no such endpoint", "see /openapi.json for the endpoints"),
              405: ("method_not_allowed", "method not allowed", "see /openapi.json for the methods of this path"),
              413: ("too_large", "request body too large", "send a smaller body"),
              401: ("not_authenticated", "not authenticated", _GENERIC_FIX[401])}
    code, title, fix = titles.get(exc.status_code, ("http_error", "request refused", "check the request"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else title
    return problem_response(exc.status_code, title, detail, instance=request.url.path, code=code,
                            errors=[{"field": None, "problem": detail, "fix": fix}],
                            headers=getattr(exc, "headers", None))


def unexpected_response(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, "internal error", "the server could not complete the request",
                            instance=request.url.path, code="internal",
                            errors=[{"field": None, "problem": "internal error",
                                     "fix": "try again later; if it persists, tell the fleet operators"}])


_PROBLEM = {"description": "problem detail (RFC 9457)", "content": {"application/problem+json": {
    "schema": {"$ref": "#/components/schemas/Problem"}}}}
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _PROBLEM, 401: _PROBLEM, 403: _PROBLEM, 404: _PROBLEM, 409: _PROBLEM, 413: _PROBLEM, 422: _PROBLEM}
API_PREFIX = "/api/v1"


def api_router(tag: str):  # noqa: ANN201 - fastapi.APIRouter
    """A router of one area: under /api/v1, with the problem responses documented."""
    from fastapi import APIRouter

    return APIRouter(prefix=API_PREFIX, tags=[tag], responses=COMMON_RESPONSES)


def install(app) -> None:
    app.add_exception_handler(FleetError, fleet_error_response)
    app.add_exception_handler(RequestValidationError, validation_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    app.add_exception_handler(Exception, unexpected_response)


__all__ = ["MEDIA_TYPE", "Problem", "ServiceUnavailable", "StoreError", "install", "problem_response"]
