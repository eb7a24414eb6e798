"""Gateway configuration: where the values come from, and in which order.

The schema (frozen, typed dataclasses, the ONLY place defaults live), its validation and
its rendering are the shared contract :mod:`contracts.gateway_config` — the fleet
validates its pushes against the same schema. This package adds the sources:

``load_config(path, env=..., overrides=..., fleet=...)`` is the one function that applies
the override order **CLI > environment > fleet push > file > schema defaults**, validates
everything and returns a frozen :class:`GatewayConfig`. Validation collects every problem at
once; each :class:`ConfigIssue` names the key, the bad value and the fix, e.g.::

    rules.bed.max_out_min = -5: must be ≥ 1 minute; set e.g. max_out_min = 30
    rules.bed.max_out_min = nan: not a finite number; set a number of minutes such as 30

Numbers must be finite in every source: TOML's ``nan``/``inf``, an override ``NaN`` or
``1e999``, a push's ``NaN``/``Infinity`` are refused by the schema (NaN passes any range check).

Environment overrides: ``WT_GW__<SECTION>__<KEY>=value`` (double underscores separate
levels, e.g. ``WT_GW__UPLINK__HOST=broker.local``). CLI overrides: ``--set key=value``
with dotted keys (``uplink.port=8883``). Override values are parsed as TOML values when
they parse (``8883``, ``true``, ``["a", "b"]``), else taken as strings.

Modules: ``_load`` (sources, ``tomllib``, override order). Pure: imports no network,
serial or BLE library.
"""
from __future__ import annotations

from contracts.gateway_config import (DEVICE_ID_RE, GATEWAY_ID_RE, IMMUTABLE, BatteryRule, BedRule, BleScanMode,
                                      BleSection, ConfigIssue, DeviceLink, DeviceSection,
                                      DiscoverySection, DoorRule, DoseRule, FallbackSection, GatewayConfig,
                                      GatewaySection, GeofenceRule, JournalSection, LogLevel, MainsSection,
                                      MainsSource, RulesSection, SerialSection, StatusSection, SupervisionSection,
                                      TlsSection, UpgradesSection, UplinkSection, Zone, ZoneShape, meta, to_plain,
                                      to_toml)
from gateway.config._load import ENV_PREFIX, ConfigError, load_config, parse_override_value

__all__ = [
    "DEVICE_ID_RE", "ENV_PREFIX", "GATEWAY_ID_RE", "IMMUTABLE", "BatteryRule", "BedRule", "BleScanMode", "BleSection",
    "ConfigError", "ConfigIssue", "DeviceLink", "DeviceSection", "DiscoverySection", "DoorRule", "DoseRule",
    "FallbackSection", "GatewayConfig", "GatewaySection", "GeofenceRule", "JournalSection", "LogLevel",
    "MainsSection", "MainsSource", "RulesSection", "SerialSection", "StatusSection", "SupervisionSection",
    "TlsSection", "UpgradesSection", "UplinkSection", "Zone", "ZoneShape", "load_config", "meta",
    "parse_override_value", "to_plain", "to_toml",
]
