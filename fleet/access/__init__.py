"""Access control: roles scoped to municipalities, login sessions, and the audit log."""
from ._audit import audit, audit_entries
from ._roles import ROLE_PERMISSIONS, Actor, Permission, Role, system_actor
from ._users import (SESSION_TTL_S, actor_for_token, create_user, hash_password, issue_token, list_users,
                     load_actor, login, read_session_file, resolve_actor, revoke, set_scope, verify_password,
                     write_session_file)

__all__ = [
    "Actor", "Permission", "ROLE_PERMISSIONS", "Role", "SESSION_TTL_S", "actor_for_token", "audit",
    "audit_entries", "create_user", "hash_password", "issue_token", "list_users", "load_actor", "login",
    "read_session_file", "resolve_actor", "revoke", "set_scope", "system_actor", "verify_password",
    "write_session_file",
]
