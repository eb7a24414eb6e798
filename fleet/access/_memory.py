"""In-memory AuditLog and AccessRepo: the fakes for unit tests (same contract as the SQL adapter)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import IntegrityViolation
from ._model import ApiTokenRecord, AuditEntry, ThrottleState, UserRecord
from ._roles import Role


@dataclass
class MemoryAuditLog:
    audit_log: list[dict[str, Any]] = field(default_factory=list)

    def append_audit(self, entry: AuditEntry) -> None:
        self.audit_log.append({
            "id": len(self.audit_log) + 1, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "entity": entry.entity, "entity_id": entry.entity_id, "municipality_id": entry.municipality,
            "personal": entry.personal,
            # stored as the database stores it: JSON text (so non-JSON values become strings)
            "detail": json.dumps(entry.detail, sort_keys=True, default=str) if entry.detail else None})

    def audit_entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                      since: float | None = None, limit: int = 200, municipality: str | None = None,
                      scope: frozenset[str] | None = None, before_id: int | None = None) -> list[dict[str, Any]]:
        out = []
        for r in reversed(self.audit_log):
            if ((entity is not None and r["entity"] != entity) or (entity_id is not None and r["entity_id"] != entity_id)
                    or (actor is not None and r["actor"] != actor) or (since is not None and r["at"] < since)
                    or (municipality is not None and r["municipality_id"] != municipality)
                    or (scope is not None and r["municipality_id"] not in scope)
                    or (before_id is not None and r["id"] >= before_id)):
                continue
            out.append({**r, "detail": json.loads(r["detail"]) if r["detail"] else None})
            if len(out) >= limit:
                break
        return out


@dataclass
class MemoryAccessRepo(MemoryAuditLog):
    municipality_names: dict[str, str] = field(default_factory=dict)   # id -> name (shared with the inventory fake)
    user_rows: dict[str, UserRecord] = field(default_factory=dict)
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)
    token_rows: dict[int, tuple[str, ApiTokenRecord]] = field(default_factory=dict)   # id -> (hash, record)
    throttles: dict[str, ThrottleState] = field(default_factory=dict)

    def get_user(self, name: str) -> UserRecord | None:
        return self.user_rows.get(name)

    def add_user(self, name: str, role: Role, *, password_hash: str | None, all_municipalities: bool,
                 at: float) -> None:
        if name in self.user_rows:
            raise AssertionError(f"duplicate user {name}: the service must check first")
        self.user_rows[name] = UserRecord(name, role, all_municipalities, True, password_hash, frozenset())

    def user_count(self) -> int:
        return len(self.user_rows)

    def users(self) -> list[UserRecord]:
        return [self.user_rows[n] for n in sorted(self.user_rows)]

    def add_scope(self, name: str, municipality: str) -> None:
        if municipality not in self.municipality_names:
            raise IntegrityViolation(f"no municipality {municipality!r}", constraint="user_scope_municipality_id_fkey")
        u = self.user_rows[name]
        self.user_rows[name] = replace(u, municipalities=u.municipalities | {municipality})

    def remove_scope(self, name: str, municipality: str) -> None:
        u = self.user_rows[name]
        self.user_rows[name] = replace(u, municipalities=u.municipalities - {municipality})

    def municipality_exists(self, municipality: str) -> bool:
        return municipality in self.municipality_names

    def add_session(self, token_hash: str, name: str, *, created_at: float, expires_at: float) -> None:
        self.sessions[token_hash] = (name, expires_at)

    def get_session(self, token_hash: str) -> tuple[str, float] | None:
        return self.sessions.get(token_hash)

    def delete_session(self, token_hash: str) -> None:
        self.sessions.pop(token_hash, None)

    def set_password(self, name: str, password_hash: str, *, at: float) -> None:
        self.user_rows[name] = replace(self.user_rows[name], password_hash=password_hash)

    def set_active(self, name: str, active: bool) -> None:
        self.user_rows[name] = replace(self.user_rows[name], active=active)

    def delete_sessions_of(self, name: str) -> int:
        gone = [h for h, (n, _) in self.sessions.items() if n == name]
        for h in gone:
            del self.sessions[h]
        return len(gone)

    def add_api_token(self, token_hash: str, user: str, name: str, *, permissions: list[str] | None,
                      municipalities: list[str] | None, at: float, by: str, expires_at: float | None) -> int:
        if user not in self.user_rows:
            raise IntegrityViolation(f"no user {user!r}", constraint="api_token_user_name_fkey")
        tid = len(self.token_rows) + 1
        self.token_rows[tid] = (token_hash, ApiTokenRecord(
            tid, user, name, None if permissions is None else frozenset(permissions),
            None if municipalities is None else frozenset(municipalities), at, by, expires_at, None))
        return tid

    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return next((rec for h, rec in self.token_rows.values() if h == token_hash), None)

    def api_token(self, token_id: int) -> ApiTokenRecord | None:
        got = self.token_rows.get(token_id)
        return got[1] if got else None

    def api_tokens(self, *, user: str | None = None) -> list[ApiTokenRecord]:
        return [rec for _, (_, rec) in sorted(self.token_rows.items()) if user is None or rec.user == user]

    def revoke_api_token(self, token_id: int, *, at: float) -> None:
        h, rec = self.token_rows[token_id]
        if rec.revoked_at is None:
            self.token_rows[token_id] = (h, replace(rec, revoked_at=at))

    def revoke_api_tokens_of(self, name: str, *, at: float) -> int:
        ids = [t.id for t in self.api_tokens(user=name) if t.revoked_at is None]
        for tid in ids:
            self.revoke_api_token(tid, at=at)
        return len(ids)

    def throttle(self, key: str) -> ThrottleState | None:
        return self.throttles.get(key)

    def throttle_fail(self, key: str, *, at: float, window_start: float) -> int:
        cur = self.throttles.get(key)
        if cur is None or cur.first_at < window_start:
            new = ThrottleState(1, at, None if cur is None else cur.locked_until)
        else:
            new = replace(cur, failures=cur.failures + 1)
        self.throttles[key] = new
        return new.failures

    def throttle_lock(self, key: str, until: float) -> None:
        if key in self.throttles:
            self.throttles[key] = replace(self.throttles[key], locked_until=until)

    def throttle_clear(self, key: str) -> None:
        self.throttles.pop(key, None)

    def throttle_expire(self, before: float) -> None:
        for k, st in list(self.throttles.items()):
            if st.first_at < before and (st.locked_until is None or st.locked_until < before):
                del self.throttles[k]
