"""Root exception of the uplink (MQTT routes, forwarder); paho return codes are translated into these."""
from __future__ import annotations

from gateway.errors import GatewayError


class UplinkError(GatewayError):
    """An uplink failure. ``route`` names the broker route, ``code`` the library's code/reason."""

    def __init__(self, message: str, *, route: str | None = None, code: object = None):
        super().__init__(message)
        self.route = route
        self.code = code


class NotConnected(UplinkError):
    """The route has no broker connection right now; the caller keeps the message."""


class PublishFailed(UplinkError):
    """The MQTT client refused the publication (queue full, bad topic, payload too large)."""
