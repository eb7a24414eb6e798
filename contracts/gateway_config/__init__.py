"""The gateway configuration schema, shared by the gateway and the fleet.

- ``_schema``: frozen, typed dataclasses — the ONLY place defaults live — and
  :data:`IMMUTABLE`, the keys a fleet push may not change.
- ``_validate``: :func:`validate` / :func:`build` turn nested tables (as TOML gives them)
  into a :class:`GatewayConfig`, collecting every problem as a
  :class:`ConfigIssue` (key, value, problem, fix — with "did you mean" for a misspelt key).
- ``_render``: plain dict / TOML output, secrets redacted.

Where the values come from (file, fleet push, environment, command line, and their order)
is the gateway's business: ``gateway.config.load_config``. The fleet validates a push with
:func:`validate` on the schema defaults, exactly as the gateway builds its fleet layer.
Pure standard library; imports neither ``gateway`` nor ``fleet``.
"""
from __future__ import annotations

from contracts.gateway_config._errors import NO_VALUE, ConfigError, ConfigIssue
from contracts.gateway_config._render import to_plain, to_toml
from contracts.gateway_config._schema import (DEVICE_ID_RE, GATEWAY_ID_RE, IMMUTABLE, IMMUTABLE_SECTIONS,
                                              SERVICE_TYPE_RE, ZONE_ID_RE,
                                              BatteryRule, BedRule, BleScanMode, BleSection, DeviceLink,
                                              DeviceSection, DiscoverySection, DoorRule, DoseRule, FallbackSection,
                                              GatewayConfig, GatewaySection, GeofenceRule, JournalSection, LogLevel,
                                              MainsSection, MainsSource, RulesSection, ScaipRole, ScaipSection,
                                              ScaipTlsSection, ScaipTransport, SerialSection, StatusSection,
                                              SupervisionSection, TlsSection, TrustSection, UpgradesSection, UplinkSection, Zone,
                                              ZoneShape, immutable_key, meta)
from contracts.gateway_config._validate import build, validate
from contracts.roles import Role

__all__ = [
    "DEVICE_ID_RE", "GATEWAY_ID_RE", "IMMUTABLE", "IMMUTABLE_SECTIONS", "SERVICE_TYPE_RE", "ZONE_ID_RE", "BatteryRule", "BedRule",
    "BleScanMode", "BleSection", "ConfigError", "ConfigIssue", "DeviceLink", "DeviceSection", "DiscoverySection",
    "DoorRule", "DoseRule", "FallbackSection", "GatewayConfig", "GatewaySection", "GeofenceRule", "JournalSection",
    "LogLevel", "MainsSection", "MainsSource", "NO_VALUE", "Role", "RulesSection", "ScaipRole", "ScaipSection",
    "ScaipTlsSection", "ScaipTransport", "SerialSection", "StatusSection",
    "SupervisionSection", "TlsSection", "TrustSection", "UpgradesSection", "UplinkSection", "Zone", "ZoneShape", "build", "immutable_key", "meta",
    "to_plain", "to_toml", "validate",
]
