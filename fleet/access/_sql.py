"""AccessRepo on the fleet database (fleet.store Tx; tables from migration 0101).

:class:`SqlAuditLog` is also the base of the other packages' SQL repositories, so every
change and its audit record go through one object in one transaction.
"""
from __future__ import annotations

import json
from typing import Any

from ..store import Tx, in_scope
from ._model import ApiTokenRecord, AuditEntry, ThrottleState, UserRecord
from ._roles import Role


class SqlAuditLog:
    """Appends to ``audit_log`` (append-only: database triggers refuse UPDATE and DELETE)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def append_audit(self, entry: AuditEntry) -> None:
        self.tx.execute(
            "INSERT INTO audit_log (at, actor, action, entity, entity_id, municipality_id, personal, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.at, entry.actor, entry.action, entry.entity, entry.entity_id, entry.municipality, entry.personal,
             json.dumps(entry.detail, sort_keys=True, default=str) if entry.detail else None))

    def audit_entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                      since: float | None = None, limit: int = 200, municipality: str | None = None,
                      scope: frozenset[str] | None = None, before_id: int | None = None) -> list[dict[str, Any]]:
        frag, params = in_scope("municipality_id", scope)
        where: list[str] = [frag]
        for col, val in (("entity", entity), ("entity_id", entity_id), ("actor", actor),
                         ("municipality_id", municipality)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        rows = self.tx.query(f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                             (*params, limit))
        for r in rows:
            r["personal"] = bool(r["personal"])
            r["detail"] = json.loads(r["detail"]) if r["detail"] else None
        return rows


class SqlAccessRepo(SqlAuditLog):
    def _user(self, row: dict[str, Any] | None) -> UserRecord | None:
        if row is None:
            return None
        scope = frozenset(r["municipality_id"] for r in self.tx.query(
            "SELECT municipality_id FROM user_scope WHERE user_name = ?", (row["name"],)))
        return UserRecord(row["name"], Role(row["role"]), bool(row["all_municipalities"]), bool(row["active"]),
                          row["password_hash"], scope)

    def get_user(self, name: str) -> UserRecord | None:
        return self._user(self.tx.one("SELECT name, role, password_hash, all_municipalities, active FROM app_user"
                                      " WHERE name = ?", (name,)))

    def add_user(self, name: str, role: Role, *, password_hash: str | None, all_municipalities: bool,
                 at: float) -> None:
        self.tx.execute("INSERT INTO app_user (name, role, password_hash, all_municipalities, active, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (name, role.value, password_hash, all_municipalities, True, at))

    def user_count(self) -> int:
        return int(self.tx.scalar("SELECT count(*) FROM app_user"))

    def users(self) -> list[UserRecord]:
        scopes: dict[str, set[str]] = {}
        for r in self.tx.query("SELECT user_name, municipality_id FROM user_scope"):
            scopes.setdefault(r["user_name"], set()).add(r["municipality_id"])
        return [UserRecord(r["name"], Role(r["role"]), bool(r["all_municipalities"]), bool(r["active"]),
                           r["password_hash"], frozenset(scopes.get(r["name"], ())))
                for r in self.tx.query("SELECT name, role, password_hash, all_municipalities, active FROM app_user"
                                       " ORDER BY name")]

    def add_scope(self, name: str, municipality: str) -> None:
        self.tx.execute("INSERT INTO user_scope (user_name, municipality_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (name, municipality))

    def remove_scope(self, name: str, municipality: str) -> None:
        self.tx.execute("DELETE FROM user_scope WHERE user_name = ? AND municipality_id = ?", (name, municipality))

    def municipality_exists(self, municipality: str) -> bool:
        return self.tx.one("SELECT 1 AS x FROM municipality WHERE id = ?", (municipality,)) is not None

    def add_session(self, token_hash: str, name: str, *, created_at: float, expires_at: float) -> None:
        self.tx.execute("INSERT INTO auth_session (token_hash, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)",
                        (token_hash, name, created_at, expires_at))

    def get_session(self, token_hash: str) -> tuple[str, float] | None:
        row = self.tx.one("SELECT user_name, expires_at FROM auth_session WHERE token_hash = ?", (token_hash,))
        return None if row is None else (row["user_name"], float(row["expires_at"]))

    def delete_session(self, token_hash: str) -> None:
        self.tx.execute("DELETE FROM auth_session WHERE token_hash = ?", (token_hash,))

    # -- passwords, deactivation ---------------------------------------------------------
    def set_password(self, name: str, password_hash: str, *, at: float) -> None:
        self.tx.execute("UPDATE app_user SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                        (password_hash, at, name))

    def set_active(self, name: str, active: bool) -> None:
        self.tx.execute("UPDATE app_user SET active = ? WHERE name = ?", (active, name))

    def delete_sessions_of(self, name: str) -> int:
        return self.tx.execute("DELETE FROM auth_session WHERE user_name = ?", (name,))

    # -- API tokens ----------------------------------------------------------------------
    @staticmethod
    def _token(r: dict[str, Any] | None) -> ApiTokenRecord | None:
        if r is None:
            return None
        perms = None if r["permissions"] is None else frozenset(json.loads(r["permissions"]))
        munis = None if r["municipalities"] is None else frozenset(json.loads(r["municipalities"]))
        return ApiTokenRecord(int(r["id"]), r["user_name"], r["name"], perms, munis, float(r["created_at"]),
                              r["created_by"], None if r["expires_at"] is None else float(r["expires_at"]),
                              None if r["revoked_at"] is None else float(r["revoked_at"]))

    _TOKEN_COLS = ("SELECT id, user_name, name, permissions, municipalities, created_at, created_by, expires_at, "
                   "revoked_at FROM api_token")

    def add_api_token(self, token_hash: str, user: str, name: str, *, permissions: list[str] | None,
                      municipalities: list[str] | None, at: float, by: str, expires_at: float | None) -> int:
        return int(self.tx.scalar(
            "INSERT INTO api_token (token_hash, user_name, name, permissions, municipalities, created_at, created_by,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (token_hash, user, name, None if permissions is None else json.dumps(sorted(permissions)),
             None if municipalities is None else json.dumps(sorted(municipalities)), at, by, expires_at)))

    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return self._token(self.tx.one(self._TOKEN_COLS + " WHERE token_hash = ?", (token_hash,)))

    def api_token(self, token_id: int) -> ApiTokenRecord | None:
        return self._token(self.tx.one(self._TOKEN_COLS + " WHERE id = ?", (token_id,)))

    def api_tokens(self, *, user: str | None = None) -> list[ApiTokenRecord]:
        if user is None:
            rows = self.tx.query(self._TOKEN_COLS + " ORDER BY id")
        else:
            rows = self.tx.query(self._TOKEN_COLS + " WHERE user_name = ? ORDER BY id", (user,))
        return [t for t in map(self._token, rows) if t is not None]

    def revoke_api_token(self, token_id: int, *, at: float) -> None:
        self.tx.execute("UPDATE api_token SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, token_id))

    def revoke_api_tokens_of(self, name: str, *, at: float) -> int:
        return self.tx.execute("UPDATE api_token SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
                               (at, name))

    # -- login throttling ------------------------------------------------------------------
    def throttle(self, key: str) -> ThrottleState | None:
        r = self.tx.one("SELECT failures, first_at, locked_until FROM auth_throttle WHERE key = ?", (key,))
        if r is None:
            return None
        return ThrottleState(int(r["failures"]), float(r["first_at"]),
                             None if r["locked_until"] is None else float(r["locked_until"]))

    def throttle_fail(self, key: str, *, at: float, window_start: float) -> int:
        return int(self.tx.scalar(
            "INSERT INTO auth_throttle (key, failures, first_at, locked_until) VALUES (?, 1, ?, NULL) "
            "ON CONFLICT (key) DO UPDATE SET "
            "failures = CASE WHEN auth_throttle.first_at < ? THEN 1 ELSE auth_throttle.failures + 1 END, "
            "first_at = CASE WHEN auth_throttle.first_at < ? THEN excluded.first_at ELSE auth_throttle.first_at END "
            "RETURNING failures", (key, at, window_start, window_start)))

    def throttle_lock(self, key: str, until: float) -> None:
        self.tx.execute("UPDATE auth_throttle SET locked_until = ? WHERE key = ?", (until, key))

    def throttle_clear(self, key: str) -> None:
        self.tx.execute("DELETE FROM auth_throttle WHERE key = ?", (key,))

    def throttle_expire(self, before: float) -> None:
        self.tx.execute("DELETE FROM auth_throttle WHERE first_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                        (before, before))
