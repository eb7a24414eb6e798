"""Users, municipality scopes, password login sessions and actor resolution."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import NotAuthenticated, NotFound, ValidationError
from ..store import Store, Tx
from ._audit import audit
from ._roles import Actor, Role

SESSION_TTL_S = 8 * 3600
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_b64, digest_b64 = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_actor(tx: Tx, name: str) -> Actor:
    row = tx.one("SELECT name, role, all_municipalities, active FROM app_user WHERE name = ?", (name,))
    if row is None or not row["active"]:
        raise NotAuthenticated(f"no active user {name!r}; ask an admin to create it (fleet user add)", user=name)
    scope: frozenset[str] | None = None
    if not row["all_municipalities"]:
        scope = frozenset(r["municipality_id"] for r in
                          tx.query("SELECT municipality_id FROM user_scope WHERE user_name = ?", (name,)))
    return Actor(row["name"], Role(row["role"]), scope)


def create_user(tx: Tx, by: Actor, name: str, role: Role | str, *, municipalities: list[str] | None = None,
                password: str | None = None, at: float) -> Actor:
    """``municipalities=None`` means all municipalities (admins, auditors, central support)."""
    if not _NAME.match(name):
        raise ValidationError(f"user name {name!r} is not allowed; use 2-32 lower-case letters, digits, '.', '_' "
                              "or '-' starting with a letter (an initials-style login, not a full name)", field="name")
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
                              field="role") from None
    if tx.one("SELECT 1 AS x FROM app_user WHERE name = ?", (name,)):
        raise ValidationError(f"user {name!r} already exists", field="name")
    tx.execute("INSERT INTO app_user (name, role, password_hash, all_municipalities, active, created_at)"
               " VALUES (?, ?, ?, ?, ?, ?)",
               (name, role.value, hash_password(password) if password else None, municipalities is None, True, at))
    for m in municipalities or []:
        if not tx.one("SELECT 1 AS x FROM municipality WHERE id = ?", (m,)):
            raise ValidationError(f"unknown municipality {m!r}; list them with `fleet location municipalities`",
                                  field="municipalities")
        tx.execute("INSERT INTO user_scope (user_name, municipality_id) VALUES (?, ?)", (name, m))
    audit(tx, by, "user.create", "user", name, at=at,
          detail={"role": role.value, "municipalities": municipalities or "all"})
    return load_actor(tx, name)


def set_scope(tx: Tx, by: Actor, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = (),
              at: float) -> Actor:
    load_actor(tx, name)
    for m in add:
        tx.execute("INSERT INTO user_scope (user_name, municipality_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, m))
    for m in remove:
        tx.execute("DELETE FROM user_scope WHERE user_name = ? AND municipality_id = ?", (name, m))
    audit(tx, by, "user.scope", "user", name, at=at, detail={"add": list(add), "remove": list(remove)})
    return load_actor(tx, name)


def list_users(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.query("SELECT name, role, all_municipalities, active FROM app_user ORDER BY name")
    scopes: dict[str, list[str]] = {}
    for r in tx.query("SELECT user_name, municipality_id FROM user_scope ORDER BY municipality_id"):
        scopes.setdefault(r["user_name"], []).append(r["municipality_id"])
    return [{"name": r["name"], "role": r["role"], "active": bool(r["active"]),
             "municipalities": "all" if r["all_municipalities"] else ",".join(scopes.get(r["name"], []))}
            for r in rows]


def issue_token(tx: Tx, name: str, *, at: float, ttl_s: float = SESSION_TTL_S) -> tuple[str, float]:
    token = "flt_" + secrets.token_urlsafe(32)
    expires = at + ttl_s
    tx.execute("INSERT INTO auth_session (token_hash, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)",
               (_token_hash(token), name, at, expires))
    return token, expires


def login(store: Store, name: str, password: str, *, at: float, ttl_s: float = SESSION_TTL_S) -> tuple[str, float]:
    with store.transaction() as tx:
        row = tx.one("SELECT password_hash, active FROM app_user WHERE name = ?", (name,))
        ok = row is not None and bool(row["active"]) and verify_password(password, row["password_hash"])
        actor = Actor(name, Role.AUDITOR)  # for the audit record only
        audit(tx, actor, "auth.login" if ok else "auth.login_failed", "user", name, at=at)
        if not ok:
            failed = NotAuthenticated("wrong user name or password", user=name)
    if not ok:
        raise failed
    with store.transaction() as tx:
        return issue_token(tx, name, at=at, ttl_s=ttl_s)


def revoke(store: Store, token: str) -> None:
    with store.transaction() as tx:
        tx.execute("DELETE FROM auth_session WHERE token_hash = ?", (_token_hash(token),))


def actor_for_token(tx: Tx, token: str, *, at: float) -> Actor:
    row = tx.one("SELECT user_name, expires_at FROM auth_session WHERE token_hash = ?", (_token_hash(token),))
    if row is None:
        raise NotAuthenticated("session token not recognised; run `fleet login USER` again")
    if row["expires_at"] <= at:
        raise NotAuthenticated("session expired; run `fleet login USER` again")
    return load_actor(tx, row["user_name"])


def read_session_file(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_session_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


def resolve_actor(store: Store, cfg: Any, *, clock: Callable[[], float] | None = None) -> Actor:
    """Who is running this command: FLEET_TOKEN, then FLEET_USER (SQLite only), then `fleet login`."""
    now = (clock or cfg.clock)()
    with store.transaction(write=False) as tx:
        if cfg.token:
            return actor_for_token(tx, cfg.token, at=now)
        if cfg.user:
            if not store.dialect.is_sqlite:
                raise NotAuthenticated(
                    "FLEET_USER is trusted only on a local SQLite store; on PostgreSQL use `fleet login USER` "
                    "or FLEET_TOKEN from `fleet user token USER`")
            return load_actor(tx, cfg.user)
        data = read_session_file(cfg.session_file)
        if data and data.get("db") == store.url and data.get("token"):
            return actor_for_token(tx, data["token"], at=now)
    raise NotAuthenticated("not logged in; run `fleet login USER` (or set FLEET_TOKEN / FLEET_USER for scripts)")
