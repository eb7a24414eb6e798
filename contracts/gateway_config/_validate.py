"""Typed conversion of TOML values into the schema, ranges, and cross-field checks.

Collects every issue instead of stopping at the first; never raises on user input except
through :func:`validate`, which raises one :class:`ConfigError` listing them all.

Numbers must be finite. TOML (``nan``, ``inf``), JSON as Python reads it (``NaN``,
``Infinity``, ``1e999``) and ``float()`` of an override string all produce non-finite
floats, and every comparison with NaN is false: ``max_out_min = nan`` would pass both range
checks and then silence the bed alarm. So every int/float field (and every number inside a
list, such as zone points) refuses NaN and ±infinity before its range is looked at.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import enum
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contracts.discovery import SERVICE_TYPE
from contracts.gateway_config._errors import _MISSING, ConfigError, ConfigIssue
from contracts.gateway_config._scaip import route_issues
from contracts.gateway_config._transport import resolve_tls, transport_issues
from contracts.device_keys import SealedDeviceKey, is_sealed
from contracts.gateway_config._schema import (DEVICE_ID_RE, GATEWAY_ID_RE, SERVICE_TYPE_RE, ZONE_ID_RE, DeviceLink,
                                    DeviceSection, GatewayConfig, MainsSource, ZoneShape)
from contracts.roles import Role

_NoneType = type(None)


def build(data: Mapping[str, Any], issues: list[ConfigIssue]) -> GatewayConfig | None:
    """The config built from nested tables (as TOML gives them) on the schema defaults.

    Appends every problem to ``issues``; returns None when the config cannot be built at all.
    A returned config is valid only if no issue was added.
    """
    cfg = _build(GatewayConfig, dict(data), "", issues)
    if cfg is not None:
        cfg = resolve_tls(cfg, data)     # TLS unless left unset towards a loopback broker (_transport)
        cross: list[ConfigIssue] = []
        _cross_check(cfg, cross)
        # a key whose value (or part of it, points[0][1]) was refused is checked on its
        # default: say nothing more about it
        refused = {i.key for i in issues}
        issues.extend(i for i in cross
                      if not any(r == i.key or r.startswith((i.key + "[", i.key + ".")) for r in refused))
    return cfg


def validate(data: Mapping[str, Any], *, source: str | None = None) -> GatewayConfig:
    """The frozen config for ``data`` on the schema defaults, or :class:`ConfigError` listing every issue."""
    issues: list[ConfigIssue] = []
    cfg = build(data, issues)
    if issues or cfg is None:
        raise ConfigError(issues, source)
    return cfg


def _build_generic(cls: type, data: Any, prefix: str, issues: list[ConfigIssue]) -> Any:
    if not isinstance(data, dict):
        issues.append(ConfigIssue(prefix.rstrip(".") or "<root>", data, "must be a table",
                                  f"write it as [{prefix.rstrip('.')}] with key = value lines"))
        return None
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in fields}
    for key in data:
        if key not in names:
            issues.append(_unknown_key(prefix, key, data[key], sorted(names), cls))
    kwargs: dict[str, Any] = {}
    ok = True
    for f in fields:
        key = prefix + f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                ex = f.metadata.get("example") if f.metadata else None
                issues.append(ConfigIssue(key, _MISSING, "is required",
                                          f"add {f.name} = {ex}" if ex else f"add {f.name}"))
                ok = False
            continue
        value = _convert(hints[f.name], data[f.name], key, f, issues)
        if value is _INVALID:
            # keep going with the default so cross-field checks still report their issues
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                ok = False
            continue
        kwargs[f.name] = value
    if not ok:
        return None
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - schema bug
        issues.append(ConfigIssue(prefix or "<root>", _MISSING, str(exc), "report this as a bug"))
        return None


_INVALID = object()


def _unknown_key(prefix: str, key: str, value: Any, names: list[str], cls: type) -> ConfigIssue:
    if cls is DeviceSection and key in ("name", "resident", "person", "address", "room_name"):
        return ConfigIssue(prefix + key, value, "devices are pseudonymous: personal names or addresses "
                           "do not belong in the gateway config", f"remove {key}; the fleet maps device ids to people")
    close = difflib.get_close_matches(key, names, n=1)
    fix = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(names)}"
    return ConfigIssue(prefix + key, value, "unknown key", fix)


def _bad(key: str, value: Any, problem: str, f: dataclasses.Field | None, issues: list[ConfigIssue]) -> object:
    name = key.rsplit(".", 1)[-1]
    ex = f.metadata.get("example") if f is not None and f.metadata else None
    issues.append(ConfigIssue(key, value, problem, f"set e.g. {name} = {ex}" if ex is not None else "fix the value"))
    return _INVALID


def _convert(tp: Any, value: Any, key: str, f: dataclasses.Field | None, issues: list[ConfigIssue]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    m = f.metadata if f is not None and f.metadata else {}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not _NoneType]
        if value is None or value == "":
            return None
        return _convert(inner[0], value, key, f, issues)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        built = _build(tp, value, key + ".", issues)
        return _INVALID if built is None else built
    if tp is bool:
        if not isinstance(value, bool):
            return _bad(key, value, "must be true or false (TOML booleans, no quotes, not 0/1)", f, issues)
        return value
    if tp in (int, float):
        if _non_finite(value):
            issues.append(ConfigIssue(key, value, "not a finite number", _finite_fix(tp, m)))
            return _INVALID
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and not isinstance(value, int)):
            kind = "a whole number" if tp is int else "a number"
            return _bad(key, value, f"must be {kind}", f, issues)
        lo, hi, unit = m.get("min"), m.get("max"), m.get("unit", "")
        u = f" {unit}" if unit else ""
        if lo is not None and value < lo:
            return _bad(key, value, f"must be ≥ {_num(lo)}{u}", f, issues)
        if hi is not None and value > hi:
            return _bad(key, value, f"must be ≤ {_num(hi)}{u}", f, issues)
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            return _bad(key, value, "must be a string (in quotes)", f, issues)
        return value
    if tp is bytes:
        if is_sealed(value):          # a device key sealed to the gateway (contracts/device_keys.py):
            return SealedDeviceKey(value)   # the gateway's loader opens it before building its config
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            return _bad(key, "<redacted>" if m.get("secret") else value,
                        "must be 32 hex digits (a 16-byte key)", f, issues)
        return bytes.fromhex(value)
    if tp is _dt.time:
        if not isinstance(value, (str, _dt.time)):
            return _bad(key, value, 'must be a time of day "HH:MM"', f, issues)
        if isinstance(value, _dt.time):
            return value
        mt = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not mt or int(mt.group(1)) > 23 or int(mt.group(2)) > 59:
            return _bad(key, value, 'must be a time of day "HH:MM" (00:00–23:59)', f, issues)
        return _dt.time(int(mt.group(1)), int(mt.group(2)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        names = [e.name.lower() for e in tp] if tp is Role else [e.value for e in tp]
        if isinstance(value, str) and value.lower() in names:
            return tp[value.upper()] if tp is Role else tp(value.lower())
        name = key.rsplit(".", 1)[-1]
        issues.append(ConfigIssue(key, value, f"must be one of {', '.join(names)}", f'set e.g. {name} = "{names[0]}"'))
        return _INVALID
    if origin is tuple:
        if not isinstance(value, list):
            return _bad(key, value, "must be a list [ … ]", f, issues)
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(value) != len(args):
            return _bad(key, value, f"must be a list of {len(args)} values", f, issues)
        out = []
        bad = False
        for i, v in enumerate(value):
            elem = args[i] if fixed else args[0]
            c = _convert(elem, v, f"{key}[{i}]", None if dataclasses.is_dataclass(elem) else f, issues)
            if c is _INVALID:
                bad = True
            out.append(c)
        return _INVALID if bad else tuple(out)
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # pragma: no cover - schema bug


_UNIT_WORDS = {"s": "seconds", "minute": "minutes", "h": "hours", "day": "days", "%": "percent", "MB": "megabytes",
               "m": "metres", "°": "degrees"}


def _non_finite(value: Any) -> bool:
    """NaN or ±infinity: a float, or a string ``float()`` reads as one (an override such as ``NaN``)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        try:
            return not math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _finite_fix(tp: type, m: Mapping[str, Any]) -> str:
    """``set a number of minutes such as 30`` (kind, unit and example from the field's metadata)."""
    kind = "a whole number" if tp is int else "a number"
    unit = m.get("unit", "")
    words = f" of {_UNIT_WORDS.get(unit, unit)}" if unit else ""
    ex = m.get("example")
    such = f" such as {ex}" if isinstance(ex, (int, float)) and not isinstance(ex, bool) else ""
    return f"set {kind}{words}{such}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _build(cls: type, data: Any, prefix: str, issues: list[ConfigIssue]) -> Any:
    """Reshape the device tables ([devices.<id>] keyed by id) for the generic builder."""
    if cls is GatewayConfig and isinstance(data, dict) and "devices" in data:
        devs = data["devices"]
        data = dict(data)
        if isinstance(devs, dict):
            rows = []
            for dev_id, body in devs.items():
                if not isinstance(body, dict):
                    issues.append(ConfigIssue(f"devices.{dev_id}", body, "must be a table",
                                              f'write [devices.{dev_id}] then role = "button"'))
                    continue
                rows.append({"id": dev_id, **body})
            data["devices"] = rows
        else:
            issues.append(ConfigIssue("devices", devs, "must be tables [devices.<12-hex-id>]",
                                      'write [devices.a4c1380a1b2c] then role = "button"'))
            data.pop("devices")
    if cls is DeviceSection and isinstance(data, dict):
        dev_id = data.get("id", "")
        if not (isinstance(dev_id, str) and DEVICE_ID_RE.fullmatch(dev_id)):
            issues.append(ConfigIssue(f"devices.{dev_id}", _MISSING,
                                      "device id must be 12 lower-case hex digits (the BLE MAC / efuse MAC)",
                                      "rename the table, e.g. [devices.a4c1380a1b2c]"))
            return None
        prefix = f"devices.{dev_id}."
    return _build_generic(cls, data, prefix, issues)


def _trust_issues(cfg: GatewayConfig, issues: list[ConfigIssue]) -> None:
    """[trust]: the anchors are local files; a broker CA anchor leaves no room for another CA."""
    t = cfg.trust
    for key, path in (("trust.fleet_key", t.fleet_key), ("trust.broker_ca", t.broker_ca),
                      *((f"trust.release_keys[{i}]", p) for i, p in enumerate(t.release_keys))):
        if path and not Path(path).is_file():
            issues.append(ConfigIssue(key, path, "file not found",
                                      "give the path of a PEM file on the gateway (written by `gateway enrol`)"))
    if t.broker_ca:
        for name, tls in (("uplink.tls.ca", cfg.uplink.tls), ("uplink.fallback.tls.ca", cfg.uplink.fallback.tls)):
            if tls.ca and tls.ca != t.broker_ca:
                issues.append(ConfigIssue(name, tls.ca, "differs from the broker CA trust anchor trust.broker_ca",
                                          f'leave it empty (trust.broker_ca = "{t.broker_ca}" is used)'))


def _cross_check(cfg: GatewayConfig, issues: list[ConfigIssue]) -> None:
    issues.extend(route_issues(cfg))     # [scaip], and which routes carry alarms
    issues.extend(transport_issues(cfg))  # no password over plain MQTT to another machine
    g = cfg.gateway
    if not GATEWAY_ID_RE.fullmatch(g.id):
        issues.append(ConfigIssue("gateway.id", g.id, "must match [a-z0-9-]{3,64} (lower case, digits, dashes)",
                                  'set e.g. id = "gw-0001"'))
    try:
        ZoneInfo(g.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        issues.append(ConfigIssue("gateway.timezone", g.timezone, "unknown IANA time zone",
                                  'set e.g. timezone = "Europe/Oslo"'))
    if not g.data_dir:
        issues.append(ConfigIssue("gateway.data_dir", g.data_dir, "must not be empty",
                                  'set e.g. data_dir = "/var/lib/wt-gateway"'))
    if not cfg.uplink.host:
        issues.append(ConfigIssue("uplink.host", "", "must not be empty", 'set e.g. host = "broker.example.net"'))
    for name, tls in (("uplink.tls", cfg.uplink.tls), ("uplink.fallback.tls", cfg.uplink.fallback.tls)):
        if bool(tls.cert) != bool(tls.key):
            issues.append(ConfigIssue(f"{name}.cert", tls.cert or "", "cert and key must be given together",
                                      "set both cert and key, or neither"))
        if (tls.cert or tls.ca) and not tls.enabled:
            issues.append(ConfigIssue(f"{name}.enabled", False, "certificates are set but TLS is off",
                                      "set enabled = true"))
        for attr in ("ca", "cert", "key"):
            p = getattr(tls, attr)
            if p and not Path(p).is_file():
                issues.append(ConfigIssue(f"{name}.{attr}", p, "file not found", "give the path of an existing PEM file"))
        if bool(tls.username) != bool(tls.password) and tls.password:
            issues.append(ConfigIssue(f"{name}.username", "", "password without username", "set username too"))
    _trust_issues(cfg, issues)
    fb = cfg.uplink.fallback
    if fb.enabled and not fb.host:
        issues.append(ConfigIssue("uplink.fallback.host", "", "required when the fallback is enabled",
                                  'set e.g. host = "fallback.example.net"'))
    if not SERVICE_TYPE_RE.fullmatch(cfg.discovery.service_type):
        issues.append(ConfigIssue("discovery.service_type", cfg.discovery.service_type,
                                  "must look like _name._tcp.local.", f'set e.g. service_type = "{SERVICE_TYPE}"'))
    m = cfg.mains
    if m.source is MainsSource.FILE and not m.path:
        issues.append(ConfigIssue("mains.path", "", 'required when source = "file"',
                                  'set e.g. path = "/sys/class/gpio/gpio17/value"'))
    seen: set[str] = set()
    for d in cfg.devices:
        if d.id in seen:  # pragma: no cover - TOML tables cannot repeat
            issues.append(ConfigIssue(f"devices.{d.id}", _MISSING, "duplicate device", "keep one table per device"))
        seen.add(d.id)
        if d.link is not DeviceLink.AUTO and not cfg.ble.enabled:
            issues.append(ConfigIssue(f"devices.{d.id}.link", d.link.value, "needs BLE, but [ble] enabled = false",
                                      "set enabled = true in [ble], or link = \"auto\""))
        if d.role is Role.GATEWAY:
            issues.append(ConfigIssue(f"devices.{d.id}.role", "gateway", "is reserved for the gateway itself",
                                      'set e.g. role = "button"'))
    r = cfg.rules
    for rname, rule in (("bed", r.bed), ("door", r.door)):
        if rule.window_start == rule.window_end:
            issues.append(ConfigIssue(f"rules.{rname}.window_end", rule.window_end.strftime("%H:%M"),
                                      "equals window_start (an empty window)",
                                      'set e.g. window_start = "20:30", window_end = "06:00"'))
    if r.battery.rearm_pct <= r.battery.low_pct:
        issues.append(ConfigIssue("rules.battery.rearm_pct", r.battery.rearm_pct,
                                  f"must be above low_pct ({r.battery.low_pct})",
                                  f"set e.g. rearm_pct = {min(100, r.battery.low_pct + 10)}"))
    zone_ids: set[str] = set()
    for i, z in enumerate(r.geofence.zones):
        key = f"rules.geofence.zones[{i}]"
        if not ZONE_ID_RE.fullmatch(z.id):
            issues.append(ConfigIssue(f"{key}.id", z.id, "must match [a-z0-9_-]{1,32}", 'set e.g. id = "home"'))
        if z.id in zone_ids:
            issues.append(ConfigIssue(f"{key}.id", z.id, "duplicate zone id", "give each zone its own id"))
        zone_ids.add(z.id)
        if z.shape is ZoneShape.CIRCLE and z.radius_m <= 0:
            issues.append(ConfigIssue(f"{key}.radius_m", z.radius_m, "a circle zone needs radius_m > 0",
                                      "set e.g. radius_m = 300"))
        if z.shape is ZoneShape.POLYGON:
            if len(z.points) < 3:
                issues.append(ConfigIssue(f"{key}.points", len(z.points), "a polygon needs at least 3 points",
                                          "set e.g. points = [[59.91, 10.75], [59.92, 10.75], [59.92, 10.76]]"))
            for j, (la, lo) in enumerate(z.points):
                if not (-90 <= la <= 90 and -180 <= lo <= 180):
                    issues.append(ConfigIssue(f"{key}.points[{j}]", [la, lo], "latitude/longitude out of range",
                                              "use [lat, lon] in degrees"))
        for dev in z.devices:
            if not DEVICE_ID_RE.fullmatch(dev):
                issues.append(ConfigIssue(f"{key}.devices", dev, "must be 12 lower-case hex digits",
                                          'set e.g. devices = ["a4c1380a1b2c"]'))


