"""Gateway configuration: one frozen, typed schema; the ONLY place defaults live.

``load_config(path, env=..., overrides=..., fleet=...)`` is the one function that applies
the override order **CLI > environment > fleet push > file > schema defaults**, validates everything and
returns a frozen :class:`GatewayConfig`. Validation collects every problem at once; each
:class:`ConfigIssue` names the key, the bad value and the fix, e.g.::

    rules.bed.max_out_min = -5: must be ≥ 1 minute; set e.g. max_out_min = 30

Environment overrides: ``WT_GW__<SECTION>__<KEY>=value`` (double underscores separate
levels, e.g. ``WT_GW__UPLINK__HOST=broker.local``). CLI overrides: ``--set key=value``
with dotted keys (``uplink.port=8883``). Override values are parsed as TOML values when
they parse (``8883``, ``true``, ``["a", "b"]``), else taken as strings.

Modules: ``_schema`` (the dataclasses: the only place defaults live), ``_load`` (sources and
override order), ``_validate`` (typed conversion, ranges, cross-field checks), ``_render``
(TOML/JSON output, secrets redacted), ``_errors``. Pure domain: imports no network, serial
or BLE library.
"""
from __future__ import annotations

from gateway.config._errors import ConfigError, ConfigIssue
from gateway.config._load import ENV_PREFIX, load_config, parse_override_value
from gateway.config._render import to_plain, to_toml
from gateway.config._schema import (DEVICE_ID_RE, GATEWAY_ID_RE, BatteryRule, BedRule, BleSection, DeviceLink,
                                    DeviceSection, DiscoverySection, DoorRule, DoseRule, FallbackSection,
                                    GatewayConfig, GatewaySection, GeofenceRule, JournalSection, LogLevel,
                                    MainsSection, MainsSource, RulesSection, SerialSection, StatusSection,
                                    SupervisionSection, TlsSection, UpgradesSection, UplinkSection, Zone, ZoneShape, meta)

__all__ = [
    "DEVICE_ID_RE", "ENV_PREFIX", "GATEWAY_ID_RE", "BatteryRule", "BedRule", "BleSection", "ConfigError",
    "ConfigIssue", "DeviceLink", "DeviceSection", "DiscoverySection", "DoorRule", "DoseRule", "FallbackSection",
    "GatewayConfig", "GatewaySection", "GeofenceRule", "JournalSection", "LogLevel", "MainsSection", "MainsSource",
    "RulesSection", "SerialSection", "StatusSection", "SupervisionSection", "TlsSection", "UpgradesSection", "UplinkSection", "Zone",
    "ZoneShape", "load_config", "meta", "parse_override_value", "to_plain", "to_toml",
]
