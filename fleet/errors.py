"""The fleet package's one root exception and its structured family.

Every error carries a human message that names what is wrong and how to fix it, plus
structured fields (``code`` and ``details``) for ``--json`` output and callers.
Library errors (sqlite3, psycopg, paho) are translated at the adapter boundary.
"""
from __future__ import annotations

from typing import Any


class FleetError(Exception):
    """Root of every error the fleet package raises on purpose."""

    code = "fleet_error"
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class StoreError(FleetError):
    """The database could not be opened, migrated or queried."""

    code = "store_error"


class NotFound(FleetError):
    code = "not_found"
    exit_code = 3


class ValidationError(FleetError):
    """Input was rejected; nothing was stored."""

    code = "invalid"
    exit_code = 2


class InvalidTransition(FleetError):
    """An item state change that the transition table does not allow."""

    code = "invalid_transition"
    exit_code = 2


class Conflict(FleetError):
    """Optimistic-concurrency conflict: someone else changed the row first."""

    code = "conflict"
    exit_code = 4


class AccessDenied(FleetError):
    code = "access_denied"
    exit_code = 5


class NotAuthenticated(FleetError):
    code = "not_authenticated"
    exit_code = 5


class CommissioningError(FleetError):
    code = "commissioning_failed"
    exit_code = 6


class IntegrityViolation(StoreError):
    """A unique / foreign-key / check constraint refused the write (translated driver error)."""

    code = "integrity"
    exit_code = 2


class StoreBusy(StoreError):
    """The database stayed locked or the transaction could not be serialised; retry."""

    code = "busy"
    exit_code = 75
