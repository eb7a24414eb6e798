"""Key-by-key difference between two configurations (pure)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping


class Change(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class DiffEntry:
    key: str
    change: Change
    old: Any = None
    new: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "change": self.change.value, "old": self.old, "new": self.new}

    def render(self) -> str:
        if self.change is Change.ADDED:
            return f"+ {self.key} = {_fmt(self.new)}"
        if self.change is Change.REMOVED:
            return f"- {self.key} = {_fmt(self.old)}"
        return f"~ {self.key}: {_fmt(self.old)} -> {_fmt(self.new)}"


def _fmt(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[DiffEntry]:
    a, b = flatten(old), flatten(new)
    entries: list[DiffEntry] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            entries.append(DiffEntry(key, Change.REMOVED, old=a[key]))
        elif key not in a:
            entries.append(DiffEntry(key, Change.ADDED, new=b[key]))
        elif a[key] != b[key] or type(a[key]) is not type(b[key]):
            entries.append(DiffEntry(key, Change.CHANGED, old=a[key], new=b[key]))
    return entries
