"""Root exception of the daemon package."""
from __future__ import annotations

class DaemonError(Exception):
    """Root exception of the daemon (start-up problems; ``what`` names the resource)."""

    def __init__(self, message: str, *, what: str = "") -> None:
        super().__init__(message)
        self.what = what

