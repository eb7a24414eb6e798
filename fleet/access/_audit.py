"""The audit log: every change and every read of personal data, append-only."""
from __future__ import annotations

from typing import Any

from ._model import AuditEntry, AuditLog
from ._roles import Actor


def audit(log: AuditLog, actor: Actor, action: str, entity: str, entity_id: Any = None, *, at: float,
          municipality: str | None = None, personal: bool = False,
          detail: dict[str, Any] | None = None) -> None:
    """Append one audit record through ``log`` — the repository of the change, so both commit together.

    ``detail`` must not contain personal data itself (names of changed fields are fine).
    """
    log.append_audit(AuditEntry(at, actor.name, action, entity, None if entity_id is None else str(entity_id),
                                municipality, personal, detail or None))
