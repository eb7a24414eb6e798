"""Root exception of gateway.adapters.journal (structured fields, library errors translated)."""
from __future__ import annotations

import errno
import sqlite3
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


def is_full(exc: BaseException) -> bool:
    """True if ``exc`` (an ``OSError`` or a ``sqlite3.Error``) says the disk or quota is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code == getattr(sqlite3, "SQLITE_FULL", 13) or "disk is full" in str(exc)


def write_error(message: str, *, path: Path | str, cause: BaseException) -> JournalError:
    """The error to raise for a failed write: :class:`JournalFull` if ``cause`` is a full
    disk, else :class:`JournalError` (``raise write_error(...) from cause``)."""
    return (JournalFull if is_full(cause) else JournalError)(message, path=path, cause=cause)
