"""In-memory DeviceKeyRepo: the fake for service tests (same contract as the SQL adapter)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from fleet.devicekeys._model import DeviceKey, KeyState
from fleet.errors import IntegrityViolation


@dataclass
class MemoryDeviceKeyRepo:
    rows: dict[tuple[str, int], DeviceKey] = field(default_factory=dict)

    def add(self, key: DeviceKey) -> None:
        if (key.device_id, key.version) in self.rows:
            raise IntegrityViolation(f"device key {key.device_id} v{key.version} exists", constraint="device_key_pkey")
        self.rows[(key.device_id, key.version)] = key

    def versions(self, device_id: str) -> list[DeviceKey]:
        return sorted((k for (d, _), k in self.rows.items() if d == device_id), key=lambda k: k.version)

    def set_state(self, device_id: str, version: int, state: KeyState, *, at: float, by: str) -> None:
        k = self.rows[(device_id, version)]
        if state is KeyState.ACTIVE:
            self.rows[(device_id, version)] = replace(k, state=state, activated_at=at)
        else:
            self.rows[(device_id, version)] = replace(k, state=state, ended_at=at)

    def active(self, device_ids: list[str]) -> dict[str, DeviceKey]:
        wanted = set(device_ids)
        return {k.device_id: k for k in self.rows.values() if k.state is KeyState.ACTIVE and k.device_id in wanted}
