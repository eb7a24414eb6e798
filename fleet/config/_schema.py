"""Validation of effective configurations before they are pushed.

The gateway owns its configuration schema (``gateway/config.py``). :func:`validate`
delegates to it, imported lazily: the fleet's config is loaded as the gateway loads a
push, ``gateway.config.load_config(None, env={}, fleet=config)`` (the fleet layer on the
schema defaults), every ``ConfigIssue`` becomes a :class:`Problem` (key, value, problem,
fix), and the keys ``gateway.domain.config_push.IMMUTABLE`` refuses from the fleet are flagged. Only if the
gateway package cannot be imported is the typed subset below used (the same key names
as the gateway schema for the settings the fleet templates most): type and range checks,
and unknown keys rejected with a "did you mean" hint, because a misspelt key silently
falls back to a default on the gateway — exactly the failure we must not push to a home.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fleet.config._errors import Problem

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_DEVICE_ID = re.compile(r"^[0-9a-f]{12}$")
ROLES = ("button", "fall", "bed", "door", "motion", "gps", "dispenser", "health")


@dataclass(frozen=True)
class Field:
    kind: str                 # int | number | bool | str | hhmm | enum | list[str]
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""


SCHEMA: dict[str, Field] = {
    "gateway.timezone": Field("str", doc="IANA zone, e.g. Europe/Oslo"),
    "uplink.host": Field("str"),
    "uplink.port": Field("int", 1, 65535),
    "uplink.tls.enabled": Field("bool"),
    "uplink.keepalive_s": Field("int", 5, 3600),
    "uplink.ack_timeout_s": Field("number", 1, 3600),
    "uplink.health_interval_s": Field("number", 1, 86400),
    "uplink.fallback.enabled": Field("bool"),
    "uplink.fallback.host": Field("str"),
    "uplink.fallback.port": Field("int", 1, 65535),
    "supervision.silent_after_s": Field("number", 10, 604800),
    "rules.bed.enabled": Field("bool"),
    "rules.bed.window_start": Field("hhmm"),
    "rules.bed.window_end": Field("hhmm"),
    "rules.bed.max_out_min": Field("number", 1, 720),
    "rules.door.enabled": Field("bool"),
    "rules.door.window_start": Field("hhmm"),
    "rules.door.window_end": Field("hhmm"),
    "rules.door.repeat_after_min": Field("number", 0, 720),
    "rules.dose.enabled": Field("bool"),
    "rules.dose.delay_min": Field("number", 1, 1440),
    "rules.battery.enabled": Field("bool"),
    "rules.battery.low_pct": Field("int", 1, 99),
}
DEVICE_SCHEMA: dict[str, Field] = {
    "role": Field("enum", choices=ROLES),
    "silent_after_s": Field("number", 0, 604800),
    "supervised": Field("bool"),
}
_SECTIONS = sorted({k.split(".")[0] for k in SCHEMA} | {"devices"})


def _check(key: str, value: Any, f: Field) -> Problem | None:
    if f.kind in ("int", "number"):
        ok_type = isinstance(value, int) if f.kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            want = "a whole number" if f.kind == "int" else "a number"
            return Problem(key, value, f"is not {want}", f"write {want} without quotes, e.g. {int(f.lo or 0) or 1}")
        if f.lo is not None and value < f.lo:
            return Problem(key, value, f"is below {_n(f.lo)}", f"use a value of at least {_n(f.lo)}")
        if f.hi is not None and value > f.hi:
            return Problem(key, value, f"is above {_n(f.hi)}", f"use a value of at most {_n(f.hi)}")
        return None
    if f.kind == "bool":
        if not isinstance(value, bool):
            return Problem(key, value, "is not a boolean", "use true or false (not 0/1 or a string)")
        return None
    if f.kind == "str":
        if not isinstance(value, str) or not value:
            return Problem(key, value, "is not a non-empty string", "quote the value, e.g. \"text\"")
        return None
    if f.kind == "hhmm":
        if not isinstance(value, str) or not _HHMM.match(value):
            return Problem(key, value, "is not a time of day", "write 24-hour HH:MM, e.g. \"20:30\"")
        return None
    if f.kind == "enum":
        if value not in f.choices:
            return Problem(key, value, "is not a known value", "use one of " + ", ".join(f.choices))
        return None
    if f.kind == "dict":
        if not isinstance(value, Mapping):
            return Problem(key, value, "is not a table", "write it as a table of settings")
        return None
    return None


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _unknown(key: str, value: Any, known: list[str]) -> Problem:
    near = difflib.get_close_matches(key, known, n=1)
    fix = f"did you mean {near[0]}?" if near else "remove it (known keys: " + ", ".join(known[:8]) + (", …)" if len(known) > 8 else ")")
    return Problem(key, value, "is not a known setting", fix)


def validate_subset(config: Mapping[str, Any]) -> list[Problem]:
    """Typed-subset validation; returns every problem (empty list = valid)."""
    from fleet.config._diff import flatten

    problems: list[Problem] = []
    devices = config.get("devices", {})
    rest = {k: v for k, v in config.items() if k != "devices"}
    for key, value in flatten(rest).items():
        f = SCHEMA.get(key)
        if f is None:
            problems.append(_unknown(key, value, sorted(SCHEMA)))
            continue
        p = _check(key, value, f)
        if p:
            problems.append(p)
    if not isinstance(devices, Mapping):
        problems.append(Problem("devices", devices, "is not a table", "write devices.<device id>.<setting>"))
        return problems
    for dev, body in devices.items():
        prefix = f"devices.{dev}"
        if not _DEVICE_ID.match(str(dev)):
            problems.append(Problem(prefix, dev, "is not a device id", "use the 12 lower-case hex digits printed on the device"))
        if not isinstance(body, Mapping):
            problems.append(Problem(prefix, body, "is not a table", "write devices.<id>.role = \"bed\" etc."))
            continue
        for key, value in body.items():
            f = DEVICE_SCHEMA.get(key)
            if f is None:
                problems.append(_unknown(f"{prefix}.{key}", value, [f"{prefix}.{k}" for k in sorted(DEVICE_SCHEMA)]))
                continue
            p = _check(f"{prefix}.{key}", value, f)
            if p:
                problems.append(p)
    return problems


def _gateway_validator() -> Callable[[Mapping[str, Any]], list[Problem]] | None:
    try:
        import importlib
        import inspect

        mod = importlib.import_module("gateway.config")
    except ImportError:
        return None
    load, error = getattr(mod, "load_config", None), getattr(mod, "ConfigError", None)
    if not callable(load) or error is None:
        return None
    as_fleet_layer = "fleet" in inspect.signature(load).parameters
    try:
        immutable = tuple(importlib.import_module("gateway.domain.config_push").IMMUTABLE)
    except (ImportError, AttributeError):
        immutable = ()
    from fleet.config._diff import flatten

    def run(cfg: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        flat = flatten(cfg)
        for key in immutable:                       # the gateway refuses these from the fleet
            if key in flat:
                problems.append(Problem(key, flat[key], "cannot be changed remotely (it identifies the gateway "
                                        "or its stored data)", "remove it from the fleet templates"))
        try:
            if as_fleet_layer:                      # exactly the gateway's own path for a push
                load(None, env={}, fleet=dict(cfg))
            else:
                load(None, env={}, overrides=flat)
        except error as exc:
            problems += [Problem(i.key, i.value if isinstance(i.value, (str, int, float, bool, list, dict)) else None,
                                 i.problem, i.fix) for i in getattr(exc, "issues", [])]
        return problems
    return run


def validate(config: Mapping[str, Any]) -> list[Problem]:
    """Validate an effective configuration (gateway's validator when available)."""
    gw = _gateway_validator()
    return gw(config) if gw is not None else validate_subset(config)
