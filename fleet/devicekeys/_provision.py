"""Provisioning a sensor over USB: the key made by the fleet, written into the device, in one step.

``provision(board, keys, device_id)`` — :class:`Board` is the sensor on the workbench (the
mpremote adapter for a real board in :mod:`fleet.devicekeys._boards`, a host-HAL flash image
for benches and tests), :class:`KeyApi` the fleet service's device-key endpoints:

1. the board's own id (its efuse MAC) must be ``device_id``: the wrong sensor on the cable is
   refused before anything is made;
2. the fleet generates a new key (``pending``; the key is in that answer only);
3. ``config.json`` on the device gets the role and the key (written to a temporary file and
   renamed on the device), and is read back;
4. only then is the key activated (the gateway gets it, sealed to its own key, with the next
   push) and the board reset. Any failure in 3 discards the pending key: device, fleet and
   gateway stay on the old key.

The key never appears in output; the result names the version and its key id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fleet.errors import FleetError

ROLES = ("button", "fall", "bed", "door", "motion", "gps", "dispenser")


class ProvisionError(FleetError):
    """Provisioning failed; ``where`` names the board. Nothing was activated."""

    code = "provision_failed"
    exit_code = 1


class Board(Protocol):
    where: str

    def device_id(self) -> str: ...
    def read_config(self) -> dict[str, Any] | None: ...
    def write_config(self, cfg: dict[str, Any]) -> None: ...
    def reset(self) -> None: ...


class KeyApi(Protocol):
    def generate(self, device_id: str) -> dict[str, Any]: ...
    def activate(self, device_id: str, version: int) -> dict[str, Any]: ...
    def discard(self, device_id: str, version: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Provisioned:
    device_id: str
    role: str
    version: int
    key_id: str
    gateway_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "role": self.role, "version": self.version, "key_id": self.key_id,
                "gateway_id": self.gateway_id}


def provision(board: Board, keys: KeyApi, device_id: str, *, role: str | None = None) -> Provisioned:
    found = board.device_id()
    if found != device_id:
        raise ProvisionError(f"the board on {board.where} is {found}, not {device_id}; check the label and the "
                             "cable, nothing was changed", where=board.where, found=found)
    current = board.read_config() or {}
    role = role or current.get("role")
    if role not in ROLES:
        raise ProvisionError(f"which role does {device_id} run? its config.json names none",
                             where=board.where, fix=f"give --role ({', '.join(ROLES)})")
    made = keys.generate(device_id)
    version, key = int(made["version"]), str(made["key"])
    try:
        board.write_config({**current, "role": role, "key": key})
        back = board.read_config() or {}
        if back.get("key") != key or back.get("role") != role:
            raise ProvisionError(f"config.json read back from {board.where} does not hold the new key", where=board.where)
    except BaseException:
        keys.discard(device_id, version)       # the device keeps its old key; so do the fleet and the gateway
        raise
    done = keys.activate(device_id, version)
    board.reset()
    return Provisioned(device_id, role, version, str(made["key_id"]), done.get("gateway_id"))
