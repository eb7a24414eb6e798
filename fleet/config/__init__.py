"""Gateway configuration: templates by scope, effective config, versions, push, drift.

Pure domain except :mod:`fleet.config._sql` (SQL adapter over the fleet store). The
MQTT adapter lives in :mod:`fleet.mqtt`.
"""
from fleet.config._codec import (APPLIED_SCHEMA, CONFIG_SCHEMA, Rejected, applied_topic, config_topic,
                                 decode_applied, encode_config)
from fleet.config._diff import Change, DiffEntry, diff, flatten
from fleet.config._errors import ConfigError, ConfigValidationError, Problem
from fleet.config._memory import MemoryConfigStore
from fleet.config._merge import Layer, Scope, canonical_json, content_hash, deep_merge, effective_config, parse_value, set_path
from fleet.config._model import (AppliedReport, AppliedStatus, ConfigStore, ConfigVersion, Drift,
                                 GatewayConfigStatus, Publisher)
from fleet.config._schema import validate
from fleet.config._secrets import Keyring, keyring_from_env, redact, secret_paths
from fleet.config._service import ConfigService

__all__ = [
    "APPLIED_SCHEMA", "CONFIG_SCHEMA", "AppliedReport", "AppliedStatus", "Change", "ConfigError",
    "ConfigService", "ConfigStore", "ConfigValidationError", "ConfigVersion", "DiffEntry", "Drift",
    "GatewayConfigStatus", "Keyring", "Layer", "MemoryConfigStore", "Problem", "Publisher", "Rejected", "Scope",
    "applied_topic", "canonical_json", "config_topic", "content_hash", "decode_applied", "deep_merge",
    "diff", "effective_config", "encode_config", "flatten", "keyring_from_env", "parse_value", "redact",
    "secret_paths", "set_path", "validate",
]
