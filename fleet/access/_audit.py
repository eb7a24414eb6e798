"""The audit log: every change and every read of personal data, append-only."""
from __future__ import annotations

import json
from typing import Any

from ..store import Tx
from ._roles import Actor


def audit(tx: Tx, actor: Actor, action: str, entity: str, entity_id: Any = None, *, at: float,
          municipality: str | None = None, personal: bool = False,
          detail: dict[str, Any] | None = None) -> None:
    """Append one audit record inside the caller's transaction (so it commits with the change).

    ``detail`` must not contain personal data itself (names of changed fields are fine).
    """
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, municipality_id, personal, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, actor.name, action, entity, None if entity_id is None else str(entity_id), municipality,
         personal, json.dumps(detail, sort_keys=True, default=str) if detail else None),
    )


def audit_entries(tx: Tx, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
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
    rows = tx.query(f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                    (*params, limit))
    for r in rows:
        r["personal"] = bool(r["personal"])
        r["detail"] = json.loads(r["detail"]) if r["detail"] else None
    return rows
