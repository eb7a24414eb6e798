"""The gateway's root exception. Every package's own root error subclasses it.

One ``except GatewayError`` catches what the gateway itself raises (as ``BleakError``
does for bleak and ``MqttError`` for aiomqtt), while each package keeps a root of its
own for callers that care where it came from:

==================================================  ===========================================
``gateway.config.ConfigError``                      the configuration is invalid (``issues``)
``gateway.domain.uplink_errors.UplinkError``        an MQTT route failed (``route``, ``code``)
``gateway.domain.rules.RuleError``                  a rule's settings are unusable
``gateway.codec.CodecError``                        bytes that do not decode (also a ValueError)
``gateway.adapters.journal.JournalError``           the event journal failed (``path``, ``cause``)
``gateway.adapters.transports.TransportError``      a serial/BLE link failed (``link``)
``gateway.adapters.status.StatusError``             the status endpoint cannot be reached (``url``)
``gateway.adapters.discovery.DiscoveryError``       zeroconf failed (``service_type``)
``gateway.adapters.upgrade.UpgradeError``           an OTA/update step failed (``reason``, ``phase``)
``gateway.daemon.DaemonError``                      the daemon cannot start (``what``)
==================================================  ===========================================

Library errors (paho, sqlite3, bleak, zeroconf) are translated into these at the adapter
boundary. This module imports nothing, so the domain may import it.
"""
from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of every error the gateway raises, with structured fields.

    ``fields`` is every public attribute the subclass set (``route``, ``path``, ``what``,
    …) — what a log line or a ``wt.cmd-result/1`` detail can show without parsing the
    message. Keyword arguments given here become such attributes."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def to_dict(self) -> dict[str, Any]:
        """``{"error": <class name>, "message": ..., **fields}`` (values as they are)."""
        return {"error": type(self).__name__, "message": self.message, **self.fields}
