"""Upgrades: signed release verification, the release artifact, gateway A/B slots, sensor
OTA relay and its persisted results (docs/upgrades.md)."""
from gateway.adapters.upgrade._ab import EXIT_RESTART, SlotStore, check_importable, running_slot
from gateway.adapters.upgrade._bundle import Bundle, inspect, pack, unpack
from gateway.adapters.upgrade._errors import UpgradeError
from gateway.adapters.upgrade._fetch import check_url, fetch, max_fetch_bytes
from gateway.adapters.upgrade._floor import FLOOR_FILE, FloorStore, device_unit
from gateway.adapters.upgrade._manifest import (Manifest, SignedRelease, check_artifact, check_install, key_id,
                                                load_trusted_key, verify, verify_signature)
from gateway.adapters.upgrade._results import ResultStore
from gateway.domain.ota import OtaSession, OtaStep

__all__ = ["Bundle", "EXIT_RESTART", "FLOOR_FILE", "FloorStore", "Manifest", "OtaSession", "OtaStep", "ResultStore",
           "SignedRelease", "SlotStore", "UpgradeError", "check_artifact", "check_importable", "check_install",
           "check_url", "device_unit", "fetch", "inspect", "key_id", "load_trusted_key", "max_fetch_bytes", "pack",
           "running_slot", "unpack", "verify", "verify_signature"]
