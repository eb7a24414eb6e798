"""Fleet service: inventory, installations, access, configuration, upgrades, monitoring.

Domain modules import no database driver, paho or zeroconf: storage goes through
:mod:`fleet.store` (SQLite or PostgreSQL adapters), MQTT through :mod:`fleet.mqtt`.
"""
from __future__ import annotations

__version__ = "0.1.0"
