"""DeviceKeyRepo on the fleet database (fleet.store Tx; table device_key of migration 0302)."""
from __future__ import annotations

from typing import Any

from fleet.devicekeys._model import DeviceKey, KeyOrigin, KeyState


def _row(r: dict[str, Any]) -> DeviceKey:
    return DeviceKey(r["device_id"], int(r["version"]), KeyState(r["state"]), r["sealed"], r["key_id"],
                     KeyOrigin(r["origin"]), float(r["created_at"]), r["created_by"],
                     None if r["activated_at"] is None else float(r["activated_at"]),
                     None if r["ended_at"] is None else float(r["ended_at"]))


class SqlDeviceKeyRepo:
    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def add(self, key: DeviceKey) -> None:
        self.tx.execute("INSERT INTO device_key (device_id, version, state, sealed, key_id, origin, created_at, "
                        "created_by, activated_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (key.device_id, key.version, key.state.value, key.sealed, key.key_id, key.origin.value,
                         key.created_at, key.created_by, key.activated_at, key.ended_at))

    def versions(self, device_id: str) -> list[DeviceKey]:
        return [_row(r) for r in self.tx.query("SELECT * FROM device_key WHERE device_id = ? ORDER BY version",
                                               (device_id,))]

    def set_state(self, device_id: str, version: int, state: KeyState, *, at: float, by: str) -> None:
        column = "activated_at" if state is KeyState.ACTIVE else "ended_at"
        self.tx.execute(f"UPDATE device_key SET state = ?, {column} = ? WHERE device_id = ? AND version = ?",
                        (state.value, at, device_id, version))

    def active(self, device_ids: list[str]) -> dict[str, DeviceKey]:
        if not device_ids:
            return {}
        marks = ", ".join("?" for _ in device_ids)
        rows = self.tx.query(f"SELECT * FROM device_key WHERE state = 'active' AND device_id IN ({marks})",
                             tuple(device_ids))
        return {r["device_id"]: _row(r) for r in rows}

    def reseal(self, fn) -> int:  # noqa: ANN001 - fn(sealed, where) -> sealed under the current KEK
        """Re-encrypt every stored key with the current key-encryption key (rotation)."""
        n = 0
        for r in self.tx.query("SELECT device_id, version, sealed FROM device_key"):
            where = f"device_key:{r['device_id']}:{int(r['version'])}"
            new = fn(r["sealed"], where)
            if new != r["sealed"]:
                self.tx.execute("UPDATE device_key SET sealed = ? WHERE device_id = ? AND version = ?",
                                (new, r["device_id"], r["version"]))
                n += 1
        return n



def sealed_key_layers(tx: Any, keyring: Any, gateway_id: str, device_ids: list[str], templates: list[Any]) -> list[Any]:
    """The key layers of a configuration for ``gateway_id`` (:func:`fleet.devicekeys._templates.key_layers`).

    Every device key the gateway gets is sealed to its enrolled X25519 key: the active key of
    each device of ``device_ids``, and a key still typed into one of the ``templates`` (from
    before keys had a life cycle, not migrated yet) for a device without an active key. A
    gateway that is not enrolled gets no key at all: rendering its configuration is refused
    (:func:`fleet.devicekeys._templates.not_enrolled`) instead of sending a key in clear."""
    import base64

    from fleet.clock import SystemClock
    from fleet.config._merge import effective_config
    from fleet.devicekeys._service import DeviceKeyService
    from fleet.devicekeys._templates import key_layers, not_enrolled

    repo = SqlDeviceKeyRepo(tx)
    configured = effective_config(templates).get("devices") or {}
    # a key goes only with a configured device ([devices.<id>] with its role): a bare key is no device
    active = {d: k for d, k in repo.active(sorted(set(device_ids) | set(configured))).items() if d in configured}
    typed = {d: b["key"] for d, b in configured.items()
             if isinstance(b, dict) and isinstance(b.get("key"), str) and b["key"] and d not in active}
    if not active and not typed:
        return []
    pub = tx.scalar("SELECT x25519_public FROM gateway_identity WHERE gateway_id = ? AND revoked_at IS NULL",
                    (gateway_id,))
    if not pub:
        raise not_enrolled(gateway_id, sorted({*active, *typed}))
    raw = base64.b64decode(pub)
    svc = DeviceKeyService(repo, SystemClock(), keyring)
    sealed = svc.sealed_for(gateway_id, raw, sorted(active))
    sealed.update(svc.seal_legacy(gateway_id, raw, typed))
    return key_layers(sealed)


def gateway_of(tx: Any, device_id: str) -> str | None:
    """The gateway a device is installed with (active installation, else its last reports)."""
    gw = tx.scalar("SELECT n.gateway_id FROM item i JOIN installation n ON n.id = i.installation_id "
                   "WHERE i.hw_id = ? AND n.status IN ('commissioning', 'active') ORDER BY n.updated_at DESC LIMIT 1",
                   (device_id,))
    return gw or tx.scalar("SELECT gateway_id FROM device_status WHERE device_id = ?", (device_id,))
