"""Root exception of gateway.adapters.journal (structured fields, library errors translated)."""
from __future__ import annotations

from pathlib import Path

from gateway.errors import GatewayError


class JournalError(GatewayError):
    """Any journal failure. ``path`` is the journal file, ``cause`` the underlying error."""

    def __init__(self, message: str, *, path: Path | str | None = None, cause: BaseException | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.cause = cause


class JournalFull(JournalError):
    """The disk (or the configured filesystem) is full: the write was not stored."""


class JournalClosed(JournalError):
    """The journal or its writer was closed."""
