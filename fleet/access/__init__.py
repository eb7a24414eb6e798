"""Access control: roles scoped to municipalities, login sessions with back-off, scoped API
tokens, and the audit log.

Service over a repository port (the fleet/config pattern): :class:`AccessService` over an
:class:`AccessRepo`; SQL adapter in :mod:`fleet.access._sql`, in-memory fake
:class:`MemoryAccessRepo`. :class:`AuditLog` is the port every fleet repository implements.
"""
from ._audit import audit
from ._memory import MemoryAccessRepo, MemoryAuditLog
from ._login import LoginPolicy, LoginThrottled, login
from ._model import AccessRepo, ApiTokenRecord, AuditEntry, AuditLog, ThrottleState, UserRecord
from ._passwords import MIN_PASSWORD_LEN, check_password_rule, hash_password, token_hash, verify_password
from ._roles import ROLE_PERMISSIONS, Actor, Permission, Role, system_actor
from ._service import API_TOKEN_PREFIX, SESSION_TTL_S, AccessService, token_view
from ._session_file import read_session_file, write_session_file

__all__ = [
    "API_TOKEN_PREFIX", "AccessRepo", "AccessService", "Actor", "ApiTokenRecord", "AuditEntry", "AuditLog",
    "LoginPolicy", "LoginThrottled", "MIN_PASSWORD_LEN", "MemoryAccessRepo", "MemoryAuditLog", "Permission",
    "ROLE_PERMISSIONS", "Role", "SESSION_TTL_S", "ThrottleState", "UserRecord", "audit", "check_password_rule",
    "hash_password", "login", "read_session_file", "system_actor", "token_hash", "token_view", "verify_password",
    "write_session_file",
]
