"""Config versions, applied reports, drift status and the ports the service needs."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from fleet.config._merge import Layer, Scope


@dataclass(frozen=True)
class ConfigVersion:
    gateway_id: str
    version: int                  # monotonically increasing per gateway, starts at 1
    hash: str                     # content_hash(config)
    config: Mapping[str, Any]
    created_at: float
    pushed_at: float | None = None


class AppliedStatus(enum.Enum):
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AppliedReport:
    gateway_id: str
    version: int
    status: AppliedStatus
    error: str | None
    reported_at: float
    hash: str | None = None       # optional extra field; checked when present


class Drift(enum.Enum):
    IN_SYNC = "in_sync"           # gateway applied exactly the desired version
    PENDING = "pending"           # pushed recently, no report yet
    LAGGING = "lagging"           # pushed longer than the grace period ago, still not applied
    REJECTED = "rejected"         # gateway refused the desired version (error is stored)
    FOREIGN = "foreign"           # gateway runs a version/hash the fleet never issued
    STALE = "stale"               # templates changed since the desired version: push needed
    NOT_PUSHED = "not_pushed"     # no version has been pushed to this gateway


@dataclass(frozen=True)
class GatewayConfigStatus:
    gateway_id: str
    drift: Drift
    desired_version: int | None
    desired_hash: str | None
    applied_version: int | None
    applied_status: str | None
    error: str | None
    reported_at: float | None
    running_version: int | None = None    # config_version in the gateway's latest wt.health/1

    def as_dict(self) -> dict[str, Any]:
        return {"gateway": self.gateway_id, "drift": self.drift.value,
                "desired_version": self.desired_version, "desired_hash": self.desired_hash,
                "applied_version": self.applied_version, "applied_status": self.applied_status,
                "running_version": self.running_version, "error": self.error, "reported_at": self.reported_at}


class ConfigStore(Protocol):
    """Persistence the config service needs (SQL adapter in fleet.config._sql)."""

    def put_template(self, scope: Scope, scope_id: str, body: Mapping[str, Any], *, at: float, by: str) -> None: ...
    def get_template(self, scope: Scope, scope_id: str) -> Mapping[str, Any] | None: ...
    def layers_for(self, gateway_id: str) -> list[Layer]: ...
    def gateway_ids(self) -> list[str]: ...
    def latest_version(self, gateway_id: str) -> ConfigVersion | None: ...
    def get_version(self, gateway_id: str, version: int) -> ConfigVersion | None: ...
    def find_version_by_hash(self, gateway_id: str, hash: str) -> ConfigVersion | None: ...
    def add_version(self, v: ConfigVersion) -> None: ...
    def mark_pushed(self, gateway_id: str, version: int, at: float) -> None: ...
    def record_applied(self, report: AppliedReport) -> None: ...
    def applied(self, gateway_id: str) -> AppliedReport | None: ...
    def running_version(self, gateway_id: str) -> int | None:
        """The config version the gateway last reported in its health message (None if unknown)."""


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and return once the broker has acknowledged it (QoS 1)."""


Layers = Sequence[Layer]
