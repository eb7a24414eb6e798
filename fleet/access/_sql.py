"""AccessRepo on the fleet database (fleet.store Tx; tables from migration 0101).

:class:`SqlAuditLog` is also the base of the other packages' SQL repositories, so every
change and its audit record go through one object in one transaction.
"""
from __future__ import annotations

import json
from typing import Any

from ..store import Tx
from ._model import AuditEntry, UserRecord
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
                      since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        for col, val in (("entity", entity), ("entity_id", entity_id), ("actor", actor)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
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
