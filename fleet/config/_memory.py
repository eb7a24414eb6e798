"""In-memory ConfigStore: the fake for domain tests (same contract as the SQL adapter)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from fleet.config._merge import Layer, Scope, installed_layers
from fleet.config._model import AppliedReport, ConfigVersion


@dataclass
class MemoryConfigStore:
    membership: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # gw -> (municipality, group)
    devices: dict[str, list[str]] = field(default_factory=dict)                         # gw -> device ids
    templates: dict[tuple[Scope, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[ConfigVersion]] = field(default_factory=dict)
    reports: dict[str, AppliedReport] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)     # gw -> config_version from health
    installed: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # gw -> device -> role + settings

    def put_template(self, scope: Scope, scope_id: str, body: Mapping[str, Any], *, at: float, by: str) -> None:
        self.templates[(scope, scope_id)] = copy.deepcopy(dict(body))

    def get_template(self, scope: Scope, scope_id: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.templates.get((scope, scope_id)))

    def layers_for(self, gateway_id: str) -> list[Layer]:
        muni, group = self.membership.get(gateway_id, (None, None))
        keys = [(Scope.MUNICIPALITY, muni), (Scope.GROUP, group), (Scope.GATEWAY, gateway_id)]
        keys += [(Scope.DEVICE, d) for d in self.devices.get(gateway_id, [])]
        layers = [Layer(s, i, self.templates[(s, i)]) for s, i in keys if i and (s, i) in self.templates]
        return installed_layers(self.installed.get(gateway_id, {}), layers) + layers

    def gateway_ids(self) -> list[str]:
        return sorted(set(self.membership) | set(self.versions))

    def latest_version(self, gateway_id: str) -> ConfigVersion | None:
        vs = self.versions.get(gateway_id)
        return vs[-1] if vs else None

    def get_version(self, gateway_id: str, version: int) -> ConfigVersion | None:
        return next((v for v in self.versions.get(gateway_id, []) if v.version == version), None)

    def find_version_by_hash(self, gateway_id: str, hash: str) -> ConfigVersion | None:
        return next((v for v in self.versions.get(gateway_id, []) if v.hash == hash), None)

    def add_version(self, v: ConfigVersion) -> None:
        self.versions.setdefault(v.gateway_id, []).append(v)

    def mark_pushed(self, gateway_id: str, version: int, at: float) -> None:
        vs = self.versions[gateway_id]
        vs[:] = [replace(v, pushed_at=at) if v.version == version else v for v in vs]

    def record_applied(self, report: AppliedReport) -> None:
        self.reports[report.gateway_id] = report

    def applied(self, gateway_id: str) -> AppliedReport | None:
        return self.reports.get(gateway_id)

    def running_version(self, gateway_id: str) -> int | None:
        return self.running.get(gateway_id)
