"""Root exception of gateway.adapters.upgrade."""
from __future__ import annotations

from gateway.errors import GatewayError


class UpgradeError(GatewayError):
    """An update or OTA step failed. ``reason`` is machine-readable, ``phase`` where it failed."""

    def __init__(self, message: str, *, reason: str = "error", phase: str = "download") -> None:
        super().__init__(message)
        self.reason = reason
        self.phase = phase
