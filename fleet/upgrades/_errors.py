"""Errors of fleet.upgrades (children of :class:`fleet.errors.FleetError`)."""
from __future__ import annotations

from fleet.errors import FleetError, InvalidTransition


class UpgradeError(FleetError):
    code = "upgrade_error"
    exit_code = 2


class ArtifactRejected(UpgradeError):
    """Hash, size or signature does not match: the artifact is not stored or sent."""

    code = "artifact_rejected"


class RolloutError(UpgradeError):
    code = "rollout_error"


__all__ = ["ArtifactRejected", "InvalidTransition", "RolloutError", "UpgradeError"]
