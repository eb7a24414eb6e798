"""Root exception of the daemon package."""
from __future__ import annotations

from gateway.errors import GatewayError


class DaemonError(GatewayError):
    """Root exception of the daemon (start-up problems; ``what`` names the resource)."""

    def __init__(self, message: str, *, what: str = "") -> None:
        super().__init__(message)
        self.what = what
