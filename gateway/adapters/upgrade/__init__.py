"""Upgrades: signed release verification, sensor OTA relay, gateway A/B slots (docs/upgrades.md)."""
from gateway.adapters.upgrade._ab import SlotStore
from gateway.adapters.upgrade._errors import UpgradeError
from gateway.adapters.upgrade._manifest import Manifest, SignedRelease, key_id, load_trusted_key, verify
from gateway.domain.ota import OtaSession, OtaStep

__all__ = ["Manifest", "OtaSession", "OtaStep", "SignedRelease", "SlotStore", "UpgradeError", "key_id",
           "load_trusted_key", "verify"]
