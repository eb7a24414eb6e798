"""Signed releases, staged rollouts and the per-unit update state machine.

Pure domain except ``_sql`` (fleet store adapter); MQTT goes through fleet.mqtt. The release
manifest and its signature check are :mod:`contracts.release` (shared with the gateway);
``_signing`` gives them the fleet's errors.
"""
from fleet.upgrades._emulated import EmulatedGateway, serve_mqtt
from fleet.upgrades._errors import ArtifactRejected, RolloutError, UpgradeError
from fleet.upgrades._protocol import (Rejected, UnitReport, VersionReport, cmd_id, cmd_topic, decode_result,
                                      decode_version_report, encode_result, encode_update, result_topic)
from fleet.upgrades._rollout import RolloutEngine, RolloutPlan, Unit, UnitRecord, assign_waves
from fleet.upgrades._runner import InProcessTransport, MqttTransport, RunStats, run_rollout
from fleet.upgrades._signing import (Manifest, SignedManifest, Target, generate_key, key_id, load_private,
                                     load_public, parse_target, parse_version, sign, verify)
from fleet.upgrades._states import (ROLLOUT_TRANSITIONS, UNIT_TRANSITIONS, RolloutEvent, RolloutState, UnitEvent,
                                    UnitState, rollout_step, unit_step)

__all__ = [
    "ArtifactRejected", "EmulatedGateway", "InProcessTransport", "Manifest", "MqttTransport", "ROLLOUT_TRANSITIONS",
    "Rejected", "RolloutEngine", "RolloutError", "RolloutEvent", "RolloutPlan", "RolloutState", "RunStats",
    "SignedManifest", "Target", "UNIT_TRANSITIONS", "Unit", "UnitEvent", "UnitRecord", "UnitReport", "UnitState",
    "UpgradeError", "VersionReport", "assign_waves", "cmd_id", "cmd_topic", "decode_result", "decode_version_report",
    "encode_result", "encode_update",
    "generate_key", "key_id", "load_private", "load_public", "parse_target", "parse_version", "result_topic", "rollout_step",
    "run_rollout", "serve_mqtt", "sign", "unit_step", "verify",
]
