"""Access control: roles scoped to municipalities, login sessions, and the audit log.

Service over a repository port (the fleet/config pattern): :class:`AccessService` over an
:class:`AccessRepo`; SQL adapter in :mod:`fleet.access._sql`, in-memory fake
:class:`MemoryAccessRepo`. :class:`AuditLog` is the port every fleet repository implements.
"""
from ._audit import audit
from ._memory import MemoryAccessRepo, MemoryAuditLog
from ._model import AccessRepo, AuditEntry, AuditLog, UserRecord
from ._roles import ROLE_PERMISSIONS, Actor, Permission, Role, system_actor
from ._service import SESSION_TTL_S, AccessService, hash_password, login, token_hash, verify_password
from ._session_file import read_session_file, write_session_file

__all__ = [
    "AccessRepo", "AccessService", "Actor", "AuditEntry", "AuditLog", "MemoryAccessRepo", "MemoryAuditLog",
    "Permission", "ROLE_PERMISSIONS", "Role", "SESSION_TTL_S", "UserRecord", "audit", "hash_password", "login",
    "read_session_file", "system_actor", "token_hash", "verify_password", "write_session_file",
]
