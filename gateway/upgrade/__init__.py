"""Upgrades: signed release verification, sensor OTA relay, gateway A/B slots (docs/upgrades.md)."""
from gateway.upgrade._ab import SlotStore
from gateway.upgrade._errors import UpgradeError
from gateway.upgrade._manifest import Manifest, SignedRelease, key_id, load_trusted_key, verify
from gateway.upgrade._ota import OtaSession, OtaStep

__all__ = ["Manifest", "OtaSession", "OtaStep", "SignedRelease", "SlotStore", "UpgradeError", "key_id",
           "load_trusted_key", "verify"]
