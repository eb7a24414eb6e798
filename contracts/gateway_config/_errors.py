"""ConfigIssue / ConfigError: every problem names the key, the bad value and the fix."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    value: Any
    problem: str
    fix: str

    def __str__(self) -> str:
        shown = _show(self.value)
        head = f"{self.key} = {shown}" if shown is not None else self.key
        return f"{head}: {self.problem}; {self.fix}"


class ConfigError(Exception):
    """The configuration is invalid. ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {i}" for i in self.issues)
        super().__init__(f"{len(self.issues)} configuration error(s){where}:\n{lines}")


_MISSING = object()
NO_VALUE = _MISSING   # ConfigIssue.value when there is no value to show (a missing key, an unreadable file)


def _show(value: Any) -> str | None:
    if value is _MISSING:
        return None
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

