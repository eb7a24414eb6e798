"""EnrolmentRepo on the fleet database (tables of migration 0106; release keys of 0401)."""
from __future__ import annotations

from typing import Any

from fleet.enrolment._model import CodeRecord, GatewayIdentity


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


class SqlEnrolmentRepo:
    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def add_code(self, rec: CodeRecord) -> None:
        self.tx.execute("INSERT INTO enrolment_code (code_hash, gateway_id, municipality_id, created_at, created_by, "
                        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (rec.code_hash, rec.gateway_id, rec.municipality_id, rec.created_at, rec.created_by,
                         rec.expires_at))

    def code(self, code_hash: str) -> CodeRecord | None:
        r = self.tx.one("SELECT * FROM enrolment_code WHERE code_hash = ?", (code_hash,))
        if r is None:
            return None
        return CodeRecord(r["code_hash"], r["gateway_id"], r["municipality_id"], float(r["created_at"]),
                          r["created_by"], float(r["expires_at"]), _f(r["used_at"]), r["used_from"])

    def mark_used(self, code_hash: str, *, at: float, peer: str | None) -> bool:
        n = self.tx.execute("UPDATE enrolment_code SET used_at = ?, used_from = ? WHERE code_hash = ? AND used_at IS NULL",
                            (at, peer, code_hash))
        return n == 1

    def put_identity(self, i: GatewayIdentity) -> bool:
        had = self.tx.scalar("SELECT 1 FROM gateway_identity WHERE gateway_id = ?", (i.gateway_id,)) is not None
        self.tx.execute(
            "INSERT INTO gateway_identity (gateway_id, x25519_public, cert_serial, cert_fingerprint, cert_not_after, "
            "mqtt_username, mqtt_password_hash, enrolled_at, code_created_by, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (gateway_id) DO UPDATE SET "
            "x25519_public = excluded.x25519_public, cert_serial = excluded.cert_serial, "
            "cert_fingerprint = excluded.cert_fingerprint, cert_not_after = excluded.cert_not_after, "
            "mqtt_username = excluded.mqtt_username, mqtt_password_hash = excluded.mqtt_password_hash, "
            "enrolled_at = excluded.enrolled_at, code_created_by = excluded.code_created_by, revoked_at = NULL",
            (i.gateway_id, i.x25519_public, i.cert_serial, i.cert_fingerprint, i.cert_not_after, i.mqtt_username,
             i.mqtt_password_hash, i.enrolled_at, i.code_created_by))
        return had

    @staticmethod
    def _ident(r: dict[str, Any]) -> GatewayIdentity:
        return GatewayIdentity(r["gateway_id"], r["x25519_public"], r["cert_serial"], r["cert_fingerprint"],
                               float(r["cert_not_after"]), r["mqtt_username"], r["mqtt_password_hash"],
                               float(r["enrolled_at"]), r["code_created_by"], _f(r["revoked_at"]))

    def identity(self, gateway_id: str) -> GatewayIdentity | None:
        r = self.tx.one("SELECT * FROM gateway_identity WHERE gateway_id = ?", (gateway_id,))
        return None if r is None else self._ident(r)

    def identities(self) -> list[GatewayIdentity]:
        return [self._ident(r) for r in self.tx.query("SELECT * FROM gateway_identity ORDER BY gateway_id")]

    def revoke(self, gateway_id: str, *, at: float) -> bool:
        return self.tx.execute("UPDATE gateway_identity SET revoked_at = ? WHERE gateway_id = ? AND revoked_at IS NULL",
                               (at, gateway_id)) == 1

    def release_keys_pem(self) -> list[str]:
        return [r["public_pem"] for r in self.tx.query("SELECT public_pem FROM release_key ORDER BY added_at, key_id")]
