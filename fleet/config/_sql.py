"""ConfigStore on the fleet database (fleet.store Tx; tables from migration 0301)."""
from __future__ import annotations

import json
from typing import Any, Mapping

from fleet.config._merge import Layer, Scope, canonical_json, installed_layers
from fleet.config._model import AppliedReport, AppliedStatus, ConfigVersion
from fleet.config._secrets import Keyring, SecretCodec, keyring_from_env, redact

_ACTIVE = ("commissioning", "active")
FROM_ENV = "from-env"


class SqlConfigStore:
    """All reads/writes of one command run in the caller's transaction ``tx``.

    Secrets (fleet.config._secrets) are sealed on write and opened on read with ``secrets``, a
    :class:`Keyring` (None: no secrets can be stored; default: ``$FLEET_KEK_FILE``, loaded when
    a secret is met). :meth:`templates` returns bodies with secrets redacted.
    """

    def __init__(self, tx: Any, *, secrets: Keyring | None | str = FROM_ENV) -> None:
        self.tx = tx
        self._secrets = secrets

    @property
    def codec(self) -> SecretCodec:
        if self._secrets == FROM_ENV:
            self._secrets = keyring_from_env()
        return SecretCodec(self._secrets)  # type: ignore[arg-type]

    def template_municipality(self, scope: Scope, scope_id: str) -> str | None:
        """The municipality a template belongs to (None: not tied to one)."""
        if scope is Scope.MUNICIPALITY:
            return scope_id
        if scope is Scope.GROUP:
            return self.tx.scalar("SELECT municipality_id FROM config_group WHERE group_id = ?", (scope_id,))
        if scope is Scope.GATEWAY:
            return self.municipality_of(scope_id)
        gw = self.tx.scalar("SELECT gateway_id FROM device_status WHERE device_id = ?", (scope_id,))
        if gw is None:
            gw = self.tx.scalar("SELECT n.gateway_id FROM item i JOIN installation n ON n.id = i.installation_id "
                                "WHERE i.hw_id = ?", (scope_id,))
        if gw is not None:
            return self.municipality_of(gw)
        return self.tx.scalar("SELECT l.municipality_id FROM item i JOIN location l ON l.id = i.location_id "
                              "WHERE i.hw_id = ?", (scope_id,))

    # -- membership ------------------------------------------------------------
    def municipality_of(self, gateway_id: str) -> str | None:
        row = self.tx.one("SELECT municipality_id FROM config_gateway WHERE gateway_id = ?", (gateway_id,))
        if row and row["municipality_id"]:
            return row["municipality_id"]
        row = self.tx.one("SELECT municipality_id FROM installation WHERE gateway_id = ? AND status IN (?, ?) "
                          "ORDER BY updated_at DESC LIMIT 1", (gateway_id, *_ACTIVE))
        if row:
            return row["municipality_id"]
        row = self.tx.one("SELECT l.municipality_id FROM item i JOIN location l ON l.id = i.location_id "
                          "WHERE i.hw_id = ?", (gateway_id,))
        return row["municipality_id"] if row else None

    def group_of(self, gateway_id: str) -> str | None:
        return self.tx.scalar("SELECT group_id FROM config_gateway WHERE gateway_id = ?", (gateway_id,))

    def assign(self, gateway_id: str, *, group_id: str | None, municipality_id: str | None) -> None:
        if group_id is not None:
            self.tx.execute("INSERT INTO config_group (group_id, municipality_id) VALUES (?, ?) "
                            "ON CONFLICT (group_id) DO NOTHING", (group_id, municipality_id))
        self.tx.execute(
            "INSERT INTO config_gateway (gateway_id, group_id, municipality_id) VALUES (?, ?, ?) "
            "ON CONFLICT (gateway_id) DO UPDATE SET group_id = COALESCE(excluded.group_id, config_gateway.group_id), "
            "municipality_id = COALESCE(excluded.municipality_id, config_gateway.municipality_id)",
            (gateway_id, group_id, municipality_id))

    def devices_of(self, gateway_id: str) -> list[str]:
        rows = self.tx.query(
            "SELECT i.hw_id AS d FROM item i JOIN installation n ON n.id = i.installation_id "
            "WHERE n.gateway_id = ? AND n.status IN (?, ?) AND i.hw_id IS NOT NULL AND i.hw_id <> ? "
            "UNION SELECT device_id AS d FROM device_status WHERE gateway_id = ?",
            (gateway_id, *_ACTIVE, gateway_id, gateway_id))
        return sorted(r["d"] for r in rows)

    def installed_settings(self, gateway_id: str) -> dict[str, dict[str, Any]]:
        """Device id -> the settings its installation's checklist records for it (where a fall
        sensor is worn: ``{"placement": "wrist"}``; fleet.installations.device_settings)."""
        from fleet.installations._checklist import device_settings

        rows = self.tx.query(
            "SELECT i.serial, i.hw_id, m.role, n.checklist FROM item i JOIN installation n ON n.id = i.installation_id "
            "JOIN device_model m ON m.code = i.model_code "
            "WHERE n.gateway_id = ? AND n.status IN (?, ?) AND i.hw_id IS NOT NULL AND i.hw_id <> ?",
            (gateway_id, *_ACTIVE, gateway_id))
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            answers = (json.loads(r["checklist"]) if r["checklist"] else {}).get(r["serial"]) or {}
            settings = device_settings(answers, r["role"])
            if settings:
                out[r["hw_id"]] = {"role": r["role"], **settings}
        return out

    # -- templates -------------------------------------------------------------
    def put_template(self, scope: Scope, scope_id: str, body: Mapping[str, Any], *, at: float, by: str) -> None:
        body = self.codec.seal(body, f"{scope.value}:{scope_id}", device_scope=scope is Scope.DEVICE)
        self.tx.execute(
            "INSERT INTO config_template (scope, scope_id, body, updated_at, updated_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, scope_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by", (scope.value, scope_id, canonical_json(body), at, by))

    def get_template(self, scope: Scope, scope_id: str) -> Mapping[str, Any] | None:
        body = self.tx.scalar("SELECT body FROM config_template WHERE scope = ? AND scope_id = ?",
                              (scope.value, scope_id))
        if body is None:
            return None
        return self.codec.open(json.loads(body), f"{scope.value}:{scope_id}", device_scope=scope is Scope.DEVICE)

    def templates(self) -> list[dict[str, Any]]:
        """Every template, secrets redacted ("set" / "not set" and a fingerprint)."""
        return [dict(r, body=redact(json.loads(r["body"]), device_scope=r["scope"] == Scope.DEVICE.value))
                for r in self.tx.query("SELECT scope, scope_id, body, updated_at, updated_by FROM config_template "
                                       "ORDER BY scope, scope_id")]

    def reseal(self) -> int:
        """Re-encrypt every stored secret with the current key (after adding a new first key to the
        key file); returns the rows rewritten. Old keys may be removed from the file afterwards."""
        n = 0
        codec = self.codec
        for r in self.tx.query("SELECT scope, scope_id, body FROM config_template"):
            dev, where = r["scope"] == Scope.DEVICE.value, f"{r['scope']}:{r['scope_id']}"
            body = json.loads(r["body"])
            if codec.has_sealed(body, device_scope=dev):
                new = codec.seal(codec.open(body, where, device_scope=dev), where, device_scope=dev, fresh=True)
                self.tx.execute("UPDATE config_template SET body = ? WHERE scope = ? AND scope_id = ?",
                                (canonical_json(new), r["scope"], r["scope_id"]))
                n += 1
        for r in self.tx.query("SELECT gateway_id, version, body FROM config_version"):
            where = f"config_version:{r['gateway_id']}:{r['version']}"
            body = json.loads(r["body"])
            if codec.has_sealed(body):
                new = codec.seal(codec.open(body, where), where, fresh=True)
                self.tx.execute("UPDATE config_version SET body = ? WHERE gateway_id = ? AND version = ?",
                                (canonical_json(new), r["gateway_id"], r["version"]))
                n += 1
        from fleet.devicekeys._sql import SqlDeviceKeyRepo    # the device keys' store (fleet/devicekeys)

        kr = codec.keyring
        return n + (SqlDeviceKeyRepo(self.tx).reseal(lambda v, where: kr.seal(kr.open(v, where), where)) if kr else 0)

    def layers_for(self, gateway_id: str) -> list[Layer]:
        keys: list[tuple[Scope, str | None]] = [(Scope.MUNICIPALITY, self.municipality_of(gateway_id)),
                                                (Scope.GROUP, self.group_of(gateway_id)),
                                                (Scope.GATEWAY, gateway_id)]
        devices = self.devices_of(gateway_id)
        keys += [(Scope.DEVICE, d) for d in devices]
        layers = []
        for scope, sid in keys:
            if sid:
                body = self.get_template(scope, sid)
                if body is not None:
                    layers.append(Layer(scope, sid, body))
        layers = installed_layers(self.installed_settings(gateway_id), layers) + layers
        # device keys: from the key store, sealed to the gateway's own key (fleet/devicekeys)
        from fleet.devicekeys._sql import sealed_key_layers

        return layers + sealed_key_layers(self.tx, self.codec.keyring, gateway_id, devices, layers)

    def gateway_ids(self) -> list[str]:
        rows = self.tx.query("SELECT gateway_id FROM config_gateway UNION SELECT gateway_id FROM config_version "
                             "UNION SELECT gateway_id FROM config_applied")
        return sorted(r["gateway_id"] for r in rows)

    # -- versions ----------------------------------------------------------------
    def _version(self, r: Mapping[str, Any] | None) -> ConfigVersion | None:
        if r is None:
            return None
        body = self.codec.open(json.loads(r["body"]), f"config_version:{r['gateway_id']}:{int(r['version'])}")
        return ConfigVersion(r["gateway_id"], int(r["version"]), r["hash"], body,
                             float(r["created_at"]), None if r["pushed_at"] is None else float(r["pushed_at"]))

    def latest_version(self, gateway_id: str) -> ConfigVersion | None:
        return self._version(self.tx.one("SELECT * FROM config_version WHERE gateway_id = ? "
                                         "ORDER BY version DESC LIMIT 1", (gateway_id,)))

    def get_version(self, gateway_id: str, version: int) -> ConfigVersion | None:
        return self._version(self.tx.one("SELECT * FROM config_version WHERE gateway_id = ? AND version = ?",
                                         (gateway_id, version)))

    def find_version_by_hash(self, gateway_id: str, hash: str) -> ConfigVersion | None:
        return self._version(self.tx.one("SELECT * FROM config_version WHERE gateway_id = ? AND hash = ? "
                                         "ORDER BY version DESC LIMIT 1", (gateway_id, hash)))

    def versions(self, gateway_id: str) -> list[dict[str, Any]]:
        return self.tx.query("SELECT version, hash, created_at, pushed_at FROM config_version WHERE gateway_id = ? "
                             "ORDER BY version", (gateway_id,))

    def add_version(self, v: ConfigVersion) -> None:
        self.tx.execute("INSERT INTO config_version (gateway_id, version, hash, body, created_at, pushed_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (v.gateway_id, v.version, v.hash,
                         canonical_json(self.codec.seal(v.config, f"config_version:{v.gateway_id}:{v.version}")),
                         v.created_at, v.pushed_at))

    def mark_pushed(self, gateway_id: str, version: int, at: float) -> None:
        self.tx.execute("UPDATE config_version SET pushed_at = ? WHERE gateway_id = ? AND version = ?",
                        (at, gateway_id, version))

    def record_applied(self, report: AppliedReport) -> None:
        self.tx.execute(
            "INSERT INTO config_applied (gateway_id, version, status, error, hash, reported_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (gateway_id) DO UPDATE SET version = excluded.version, status = excluded.status, "
            "error = excluded.error, hash = excluded.hash, reported_at = excluded.reported_at "
            "WHERE excluded.reported_at >= config_applied.reported_at",
            (report.gateway_id, report.version, report.status.value, report.error, report.hash, report.reported_at))

    def applied(self, gateway_id: str) -> AppliedReport | None:
        r = self.tx.one("SELECT * FROM config_applied WHERE gateway_id = ?", (gateway_id,))
        if r is None:
            return None
        return AppliedReport(r["gateway_id"], int(r["version"]), AppliedStatus(r["status"]), r["error"],
                             float(r["reported_at"]), r["hash"])

    def running_version(self, gateway_id: str) -> int | None:
        v = self.tx.scalar("SELECT config_version FROM gateway_status WHERE gateway_id = ?", (gateway_id,))
        return None if v is None else int(v)
