"""The guard of :meth:`fleet.store.Store.reading`: only plain SELECTs."""
from __future__ import annotations

import re
from functools import lru_cache

from ..errors import StoreError

_LOCKING = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _plain_select(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT" and not _LOCKING.search(sql)


def refuse_unless_select(sql: str) -> None:
    if not _plain_select(sql):           # the statements are constants: checked once each
        raise StoreError("a read-only block (Store.reading) ran a statement that writes or locks; "
                         "use store.transaction()", sql=sql.strip()[:200])


def refuse(what: str) -> None:
    raise StoreError(f"a read-only block (Store.reading) cannot {what}; use store.transaction()")
