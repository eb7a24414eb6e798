"""Validation of effective configurations before they are pushed.

There is one gateway configuration schema, :mod:`contracts.gateway_config`, and the
gateway builds every push with it. :func:`validate` runs the fleet's effective config
through the same code on the schema defaults — exactly how the gateway builds the fleet
layer of its configuration — so the fleet refuses what the gateway would refuse: types
and ranges, ``HH:MM`` windows, unknown keys with "did you mean" (a misspelt key would
silently fall back to a default on the gateway, exactly the failure we must not push to a
home), pseudonymous ``[devices.<id>]`` tables and the cross-field checks. The keys
:data:`contracts.gateway_config.IMMUTABLE` lists (identity, stored data, trust anchors), which
the gateway will not take from a push, are flagged too. Every issue becomes a :class:`Problem` (key, value, reason, fix).
Non-finite numbers (``NaN``, ``Infinity``, ``1e999``, which ``fleet config set`` parses as
JSON the way Python does) are refused for every numeric key by the schema itself, so neither
a template nor a push can carry one to a gateway.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from contracts.gateway_config import ConfigIssue, build, immutable_key
from fleet.config._diff import flatten
from fleet.config._errors import Problem

_PLAIN = (str, int, float, bool, list, dict)


def _problem(issue: ConfigIssue) -> Problem:
    value = issue.value if isinstance(issue.value, _PLAIN) else None
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)        # "nan" / "inf": JSON (the CLI's --json, the audit detail) has no NaN
    return Problem(issue.key, value, issue.problem, issue.fix)


def validate(config: Mapping[str, Any]) -> list[Problem]:
    """Every problem of an effective configuration (empty list = the gateway will accept it)."""
    flat = flatten(config)
    problems = []
    for key in sorted(flat):
        anchor = immutable_key(key)
        if anchor is not None:
            why = ("it is a trust anchor, set only on the gateway itself" if anchor.startswith(("trust", "upgrades."))
                   else "it identifies the gateway or its stored data")
            problems.append(Problem(key, flat[key], f"cannot be changed remotely ({why})",
                                    "remove it from the fleet templates"))
    issues: list[ConfigIssue] = []
    build(config, issues)
    return problems + [_problem(i) for i in issues]
