"""Problem details (RFC 9457) -> the fleet's own errors, so a command exits with the code it
always had (docs/fleet.md, `fleet --help`) whether the service runs in this process or on a
server.

The problem ``type`` (``urn:fleet:problem:<code>``) names the error; the HTTP status is the
fallback for a code this client does not know (a newer server). The message is the server's
``detail``, with the fix of the first field problem when the detail does not already say it.
"""
from __future__ import annotations

from typing import Any

from ..errors import (AccessDenied, CommissioningError, Conflict, FleetError, IntegrityViolation, InvalidTransition,
                      NotAuthenticated, NotFound, StoreBusy, ValidationError)

TYPE_PREFIX = "urn:fleet:problem:"


class ServerUnavailable(FleetError):
    """The fleet server cannot be reached (connection refused, no answer in time, not HTTP), or
    it cannot do what was asked right now (no MQTT broker configured for config pushes)."""

    code = "server_unavailable"
    exit_code = 69


class ServerError(FleetError):
    """The server answered 5xx: it says nothing about the inside (its log has it)."""

    code = "server_error"


# problem code -> error class (exit code): the codes of fleet/api/_problems.py
_BY_CODE: dict[str, type[FleetError]] = {
    "not_found": NotFound,
    "conflict": Conflict,
    "invalid_transition": InvalidTransition,
    "integrity": IntegrityViolation,
    "commissioning_failed": CommissioningError,
    "access_denied": AccessDenied,
    "not_authenticated": NotAuthenticated,
    "login_throttled": NotAuthenticated,
    "busy": StoreBusy,
    "unavailable": ServerUnavailable,
    "mqtt_error": ServerUnavailable,          # the service's MQTT broker: exit 69 as on the command line
    "malformed_json": ValidationError,
    "too_large": ValidationError,
    "invalid": ValidationError,
}
_BY_STATUS: dict[int, type[FleetError]] = {
    400: ValidationError, 401: NotAuthenticated, 403: AccessDenied, 404: NotFound, 409: Conflict,
    413: ValidationError, 422: ValidationError, 429: NotAuthenticated, 503: ServerUnavailable,
}


def error_from_problem(status: int, body: Any, *, method: str, path: str) -> FleetError:
    """The FleetError a command raises for an error answer (``body``: the parsed JSON, or None)."""
    problem = body if isinstance(body, dict) else {}
    code = str(problem.get("type") or "").removeprefix(TYPE_PREFIX) or None
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    errors = [e for e in problem.get("errors") or [] if isinstance(e, dict)]
    first = errors[0] if errors else {}
    field, fix = first.get("field"), str(first.get("fix") or "")
    if status == 404 and problem.get("title") == "no such endpoint":
        return ServerError(f"the server has no {method} {path}; it runs another version of fleet than this "
                           "command line (update one of them)", status=status)
    if status >= 500 and code not in ("busy", "unavailable", "mqtt_error"):
        return ServerError(f"the fleet service could not complete {method} {path} ({detail}); try again, and if it "
                           "persists tell the fleet operators the time of the request", status=status)
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or (ValidationError if 400 <= status < 500 else FleetError)
    message = detail
    if fix and fix.rstrip(".") not in detail and status not in (401, 403, 404):
        message = f"{detail}; {fix}"
    if len(errors) > 1:       # every field problem, as the validators collect them (ESPHome style)
        message = "; ".join(f"{e.get('field')}: {e.get('problem')}" if e.get("field") else str(e.get("problem"))
                            for e in errors)
    details: dict[str, Any] = {"status": status}
    if field:
        details["field"] = field
    if len(errors) > 1:
        details["errors"] = errors
    if status == 429 and isinstance(problem.get("retry_after"), (int, float)):
        details["retry_after_s"] = problem["retry_after"]
    exc = cls.__new__(cls)
    FleetError.__init__(exc, message, **details)
    if code and code != cls.code:
        exc.code = code                  # the server's name for it (--json shows it)
    return exc
