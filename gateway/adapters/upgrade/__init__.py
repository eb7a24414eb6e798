"""Upgrades: signed release verification, the release artifact, gateway A/B slots, sensor
OTA relay and its persisted results (docs/upgrades.md)."""
from gateway.adapters.upgrade._ab import EXIT_RESTART, SlotStore, check_importable, running_slot
from gateway.adapters.upgrade._bundle import Bundle, inspect, pack, unpack
from gateway.adapters.upgrade._errors import UpgradeError
from gateway.adapters.upgrade._manifest import Manifest, SignedRelease, key_id, load_trusted_key, verify
from gateway.adapters.upgrade._results import ResultStore
from gateway.domain.ota import OtaSession, OtaStep

__all__ = ["Bundle", "EXIT_RESTART", "Manifest", "OtaSession", "OtaStep", "ResultStore", "SignedRelease", "SlotStore",
           "UpgradeError", "check_importable", "inspect", "key_id", "load_trusted_key", "pack", "running_slot",
           "unpack", "verify"]
