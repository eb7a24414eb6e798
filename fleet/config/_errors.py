"""Errors of fleet.config (children of the fleet root :class:`fleet.errors.FleetError`)."""
from __future__ import annotations

from fleet.errors import FleetError


class ConfigError(FleetError):
    """A configuration problem: names the key, the bad value and the fix."""

    code = "config_invalid"
    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, value: object = None, fix: str | None = None) -> None:
        super().__init__(message, key=key, value=value, fix=fix)
        self.key = key
        self.value = value
        self.fix = fix


class ConfigValidationError(ConfigError):
    """The configuration breaks the gateway schema; ``problems`` lists each one (nothing stored)."""

    def __init__(self, problems: list["Problem"]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(str(first) + more, key=first.key, value=first.value, fix=first.fix)
        self.details["problems"] = [p.as_dict() for p in problems]


class Problem:
    """One validation failure: ``key: value is wrong; fix``."""

    __slots__ = ("key", "value", "reason", "fix")

    def __init__(self, key: str, value: object, reason: str, fix: str) -> None:
        self.key, self.value, self.reason, self.fix = key, value, reason, fix

    def __str__(self) -> str:
        import json

        head = self.key if self.value is None else f"{self.key} = {json.dumps(self.value, ensure_ascii=False)}"
        return f"{head}: {self.reason}; {self.fix}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "value": self.value, "reason": self.reason, "fix": self.fix}
