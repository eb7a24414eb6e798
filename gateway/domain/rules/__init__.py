"""Gateway rules: a table of small classes sharing ``on_event(event)`` + ``tick(now)``.

Rules work offline (only the injected clock, config thresholds and events), and raise
gateway events with ids ``<gateway>-g<counter:010d>`` through :class:`RuleEngine`. Every
duration is measured on the clock's ``monotonic()``, times of day on wall time
(``_base``, "Time").
"""
from __future__ import annotations

from typing import Any, Callable

from gateway.domain.rules._base import Raised, Rule, RuleEngine, RuleError, in_window
from gateway.domain.rules.care import (BedNotReturnedRule, DoorAtNightRule, GeofenceRule, MissedDoseRule,
                                haversine_m, point_in_polygon, zone_contains)
from gateway.domain.rules.technical import BleReceiverRule, LowBatteryRule, MainsRule, SupervisionRule, UplinkRule

__all__ = [
    "Raised", "Rule", "RuleEngine", "RuleError", "in_window", "build_rules",
    "BedNotReturnedRule", "DoorAtNightRule", "GeofenceRule", "MissedDoseRule",
    "SupervisionRule", "LowBatteryRule", "MainsRule", "UplinkRule", "BleReceiverRule",
    "haversine_m", "point_in_polygon", "zone_contains",
]


def build_rules(cfg, registry, mains, uplink_connected: Callable[[], bool], clock,
                ble_status: Callable[[], Any] | None = None) -> list[Rule]:
    """The rule table for a validated GatewayConfig (disabled rules are left out).
    ``ble_status``: the BLE watchdog's status (None while BLE is not running)."""
    r = cfg.rules
    tz = cfg.tz
    rules: list[Rule] = [SupervisionRule(registry, clock)]
    if r.bed.enabled:
        rules.append(BedNotReturnedRule(r.bed, tz, clock))
    if r.door.enabled:
        rules.append(DoorAtNightRule(r.door, tz, clock))
    if r.dose.enabled:
        rules.append(MissedDoseRule(r.dose, clock))
    if r.geofence.enabled and r.geofence.zones:
        rules.append(GeofenceRule(r.geofence))
    if r.battery.enabled:
        rules.append(LowBatteryRule(r.battery, registry))
    rules.append(MainsRule(cfg.gateway.id, mains, cfg.mains.debounce_s, clock))
    rules.append(UplinkRule(cfg.gateway.id, uplink_connected, cfg.supervision.uplink_lost_after_s, clock))
    if cfg.ble.enabled and ble_status is not None:
        rules.append(BleReceiverRule(cfg.gateway.id, ble_status, clock))
    return rules
