"""Gateway configuration: one frozen, typed schema; the ONLY place defaults live.

``load_config(path, env=..., overrides=...)`` is the one function that applies the
override order **CLI > environment > file > schema defaults**, validates everything and
returns a frozen :class:`GatewayConfig`. Validation collects every problem at once; each
:class:`ConfigIssue` names the key, the bad value and the fix, e.g.::

    rules.bed.max_out_min = -5: must be ≥ 1 minute; set e.g. max_out_min = 30

Environment overrides: ``WT_GW__<SECTION>__<KEY>=value`` (double underscores separate
levels, e.g. ``WT_GW__UPLINK__HOST=broker.local``). CLI overrides: ``--set key=value``
with dotted keys (``uplink.port=8883``). Override values are parsed as TOML values when
they parse (``8883``, ``true``, ``["a", "b"]``), else taken as strings.

Pure domain module: imports no network, serial or BLE library.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import enum
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli

from gateway.model import Role

ENV_PREFIX = "WT_GW__"
GATEWAY_ID_RE = re.compile(r"^[a-z0-9-]{3,64}$")
DEVICE_ID_RE = re.compile(r"^[0-9a-f]{12}$")
ZONE_ID_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
SERVICE_TYPE_RE = re.compile(r"^_[a-z0-9-]{1,15}\._(tcp|udp)\.local\.$")


# ---------------------------------------------------------------- errors
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


def _show(value: Any) -> str | None:
    if value is _MISSING:
        return None
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def meta(*, min: float | None = None, max: float | None = None, unit: str = "",
         example: Any = None, choices: tuple[str, ...] | None = None,
         secret: bool = False, doc: str = "") -> dict[str, Any]:
    """Field metadata used by the validator and by docs (min/max, unit, example, fix)."""
    return {"min": min, "max": max, "unit": unit, "example": example, "choices": choices,
            "secret": secret, "doc": doc}


# ---------------------------------------------------------------- schema
class LogLevel(str, enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class MainsSource(str, enum.Enum):
    NONE = "none"          # no mains input wired: no mains alarms
    FILE = "file"          # a file holding 1/0: sysfs GPIO value or a UPS HAT status file
    EMULATED = "emulated"  # demo/tests: set programmatically


class DeviceLink(str, enum.Enum):
    AUTO = "auto"              # serial frames / BTHome adverts: whatever the device sends
    BLE_GATT = "ble-gatt"      # the gateway connects to the device's WT frame GATT service
    BLE_HEALTH = "ble-health"  # standard GATT health profiles (blood pressure, SpO2, ...)


class ZoneShape(str, enum.Enum):
    CIRCLE = "circle"
    POLYGON = "polygon"


@dataclass(frozen=True)
class GatewaySection:
    id: str = field(default="gw-demo", metadata=meta(example='"gw-0001"', doc="pseudonymous gateway id, [a-z0-9-]{3,64}"))
    data_dir: str = field(default="/var/lib/wt-gateway", metadata=meta(example='"/var/lib/wt-gateway"'))
    timezone: str = field(default="Europe/Oslo", metadata=meta(example='"Europe/Oslo"', doc="IANA zone for rule windows"))
    log_level: LogLevel = field(default=LogLevel.INFO, metadata=meta(example='"info"'))


@dataclass(frozen=True)
class TlsSection:
    enabled: bool = field(default=False, metadata=meta(example="true"))
    ca: str = field(default="", metadata=meta(example='"/etc/wt/ca.pem"', doc="CA bundle; empty = system store"))
    cert: str = field(default="", metadata=meta(example='"/etc/wt/gw.crt"'))
    key: str = field(default="", metadata=meta(example='"/etc/wt/gw.key"', secret=True))
    username: str = field(default="", metadata=meta(example='"gw-0001"'))
    password: str = field(default="", metadata=meta(example='"…"', secret=True))


@dataclass(frozen=True)
class FallbackSection:
    enabled: bool = field(default=False, metadata=meta(example="true"))
    host: str = field(default="", metadata=meta(example='"fallback.example.net"'))
    port: int = field(default=1883, metadata=meta(min=1, max=65535, example=8883))
    tls: TlsSection = field(default_factory=TlsSection)


@dataclass(frozen=True)
class UplinkSection:
    host: str = field(default="127.0.0.1", metadata=meta(example='"broker.example.net"'))
    port: int = field(default=1883, metadata=meta(min=1, max=65535, example=8883))
    tls: TlsSection = field(default_factory=TlsSection)
    keepalive_s: int = field(default=30, metadata=meta(min=5, max=3600, unit="s", example=30))
    ack_timeout_s: float = field(default=30.0, metadata=meta(min=1, max=3600, unit="s", example=30))
    health_interval_s: float = field(default=60.0, metadata=meta(min=1, max=86400, unit="s", example=60))
    fallback: FallbackSection = field(default_factory=FallbackSection)


@dataclass(frozen=True)
class JournalSection:
    path: str = field(default="", metadata=meta(example='"/var/lib/wt-gateway/journal.sqlite"',
                                                doc="empty = <data_dir>/journal.sqlite"))
    max_telemetry_mb: float = field(default=64.0, metadata=meta(min=1, max=100000, unit="MB", example=64))


@dataclass(frozen=True)
class SerialSection:
    ports: tuple[str, ...] = field(default=(), metadata=meta(example='["/dev/ttyUSB0"]'))
    baud: int = field(default=115200, metadata=meta(min=1200, max=4000000, example=115200))
    reconnect_s: float = field(default=2.0, metadata=meta(min=0.1, max=300, unit="s", example=2))


@dataclass(frozen=True)
class BleSection:
    enabled: bool = field(default=False, metadata=meta(example="true"))
    adapter: str = field(default="hci0", metadata=meta(example='"hci0"'))
    allow_unencrypted_alarms: bool = field(default=False, metadata=meta(example="false"))


@dataclass(frozen=True)
class DiscoverySection:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    service_type: str = field(default="_wt-gateway._tcp.local.", metadata=meta(example='"_wt-gateway._tcp.local."'))
    interfaces: tuple[str, ...] = field(default=(), metadata=meta(example='["127.0.0.1"]',
                                                                   doc="empty = all interfaces"))


@dataclass(frozen=True)
class StatusSection:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    host: str = field(default="127.0.0.1", metadata=meta(example='"127.0.0.1"'))
    port: int = field(default=8787, metadata=meta(min=0, max=65535, example=8787, doc="0 = pick a free port"))


@dataclass(frozen=True)
class MainsSection:
    source: MainsSource = field(default=MainsSource.NONE, metadata=meta(example='"file"'))
    path: str = field(default="", metadata=meta(example='"/sys/class/gpio/gpio17/value"'))
    on_value: str = field(default="1", metadata=meta(example='"1"', doc="file content meaning 'on mains'"))
    debounce_s: float = field(default=5.0, metadata=meta(min=0, max=3600, unit="s", example=5))


@dataclass(frozen=True)
class DeviceSection:
    """One paired device. Pseudonymous by design: no names, addresses or persons."""

    id: str
    role: Role = field(metadata=meta(example='"button"'))
    key: bytes | None = field(default=None, metadata=meta(example='"00112233445566778899aabbccddeeff"', secret=True))
    silent_after_s: float = field(default=0.0, metadata=meta(min=0, max=604800, unit="s", example=180,
                                                             doc="0 = use supervision.silent_after_s"))
    supervised: bool = field(default=True, metadata=meta(example="true"))
    link: DeviceLink = field(default=DeviceLink.AUTO, metadata=meta(
        example='"ble-gatt"', doc="ble-gatt / ble-health: the gateway keeps a GATT connection (needs [ble] enabled)"))


@dataclass(frozen=True)
class BedRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    window_start: _dt.time = field(default=_dt.time(20, 30), metadata=meta(example='"20:30"'))
    window_end: _dt.time = field(default=_dt.time(6, 0), metadata=meta(example='"06:00"'))
    max_out_min: float = field(default=30.0, metadata=meta(min=1, max=720, unit="minute", example=30))


@dataclass(frozen=True)
class DoorRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    window_start: _dt.time = field(default=_dt.time(23, 0), metadata=meta(example='"23:00"'))
    window_end: _dt.time = field(default=_dt.time(6, 0), metadata=meta(example='"06:00"'))
    repeat_after_min: float = field(default=5.0, metadata=meta(min=0, max=720, unit="minute", example=5,
                                                               doc="one alarm per device per this many minutes"))


@dataclass(frozen=True)
class DoseRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    delay_min: float = field(default=30.0, metadata=meta(min=1, max=1440, unit="minute", example=30))


@dataclass(frozen=True)
class Zone:
    id: str
    shape: ZoneShape = field(default=ZoneShape.CIRCLE, metadata=meta(example='"circle"'))
    lat: float = field(default=0.0, metadata=meta(min=-90, max=90, unit="°", example=59.91))
    lon: float = field(default=0.0, metadata=meta(min=-180, max=180, unit="°", example=10.75))
    radius_m: float = field(default=0.0, metadata=meta(min=0, max=100000, unit="m", example=300))
    points: tuple[tuple[float, float], ...] = field(default=(), metadata=meta(
        example="[[59.91, 10.75], [59.92, 10.75], [59.92, 10.76]]"))
    devices: tuple[str, ...] = field(default=(), metadata=meta(example='["a4c1380a1b2c"]',
                                                               doc="empty = every GPS device"))


@dataclass(frozen=True)
class GeofenceRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    zones: tuple[Zone, ...] = field(default=())


@dataclass(frozen=True)
class BatteryRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    low_pct: int = field(default=20, metadata=meta(min=1, max=99, unit="%", example=20))
    rearm_pct: int = field(default=30, metadata=meta(min=2, max=100, unit="%", example=30,
                                                     doc="alarm again only after the battery rose above this"))


@dataclass(frozen=True)
class RulesSection:
    bed: BedRule = field(default_factory=BedRule)
    door: DoorRule = field(default_factory=DoorRule)
    dose: DoseRule = field(default_factory=DoseRule)
    geofence: GeofenceRule = field(default_factory=GeofenceRule)
    battery: BatteryRule = field(default_factory=BatteryRule)


@dataclass(frozen=True)
class SupervisionSection:
    silent_after_s: float = field(default=180.0, metadata=meta(min=10, max=604800, unit="s", example=180,
                                                               doc="no frame/advert for this long → device_silent"))
    tick_s: float = field(default=5.0, metadata=meta(min=0.05, max=60, unit="s", example=5))
    uplink_lost_after_s: float = field(default=60.0, metadata=meta(min=1, max=86400, unit="s", example=60))


@dataclass(frozen=True)
class GatewayConfig:
    gateway: GatewaySection = field(default_factory=GatewaySection)
    uplink: UplinkSection = field(default_factory=UplinkSection)
    journal: JournalSection = field(default_factory=JournalSection)
    serial: SerialSection = field(default_factory=SerialSection)
    ble: BleSection = field(default_factory=BleSection)
    discovery: DiscoverySection = field(default_factory=DiscoverySection)
    status: StatusSection = field(default_factory=StatusSection)
    mains: MainsSection = field(default_factory=MainsSection)
    devices: tuple[DeviceSection, ...] = field(default=())
    rules: RulesSection = field(default_factory=RulesSection)
    supervision: SupervisionSection = field(default_factory=SupervisionSection)

    # derived views (no defaults live here)
    @property
    def journal_path(self) -> Path:
        return Path(self.journal.path) if self.journal.path else Path(self.gateway.data_dir) / "journal.sqlite"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.gateway.timezone)

    @property
    def device_keys(self) -> dict[str, bytes]:
        return {d.id: d.key for d in self.devices if d.key is not None}

    def device(self, device_id: str) -> DeviceSection | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        return _to_plain(self, redact=redact)

    def to_json(self, *, redact: bool = True) -> str:
        return json.dumps(self.to_dict(redact=redact), indent=2, sort_keys=False)


# ---------------------------------------------------------------- loading
def load_config(path: str | os.PathLike[str] | None = None, *,
                env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | list[str] | None = None,
                fleet: Mapping[str, Any] | None = None) -> GatewayConfig:
    """Build the config: schema defaults < file < fleet-pushed layer < environment < CLI.

    This is the only function that merges sources. ``fleet`` is the ``config`` object of
    the last applied ``wt.config/1`` (nested tables, like the file). Tables merge key by
    key; a value replaces. Raises :class:`ConfigError` listing every issue; never returns
    a half-valid config.
    """
    source = str(path) if path is not None else None
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigIssue(str(p), _MISSING, f"cannot read the file ({exc.strerror})",
                                           "check the path, or run without --config to use the defaults")],
                              source) from None
        try:
            data = tomli.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError([ConfigIssue(str(p), _MISSING, "not UTF-8 text", "save the file as UTF-8")], source) from None
        except tomli.TOMLDecodeError as exc:
            raise ConfigError([ConfigIssue(str(p), _MISSING, f"TOML syntax error: {exc}",
                                           "fix the syntax (strings need quotes, e.g. host = \"broker\")")],
                              source) from None
    issues: list[ConfigIssue] = []
    if fleet:
        for key, value in fleet.items():
            _set_dotted(data, key, value, issues, origin="fleet config")
    for key, value in _env_overrides(env if env is not None else os.environ).items():
        _set_dotted(data, key, value, issues, origin="environment")
    if overrides:
        items = overrides.items() if isinstance(overrides, Mapping) else _parse_set_args(overrides, issues)
        for key, value in items:
            _set_dotted(data, key, value, issues, origin="--set")
    cfg = _build(GatewayConfig, data, "", issues)
    if cfg is not None:
        _cross_check(cfg, issues)
    if issues:
        raise ConfigError(issues, source)
    assert cfg is not None
    return cfg


def parse_override_value(text: str) -> Any:
    try:
        return tomli.loads(f"v = {text}")["v"]
    except tomli.TOMLDecodeError:
        return text


def _parse_set_args(items: list[str], issues: list[ConfigIssue]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            issues.append(ConfigIssue("--set", item, "expected KEY=VALUE", "write e.g. --set uplink.port=8883"))
            continue
        out.append((key.strip(), parse_override_value(value.strip())))
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            key = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
            out[key] = parse_override_value(value)
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any, issues: list[ConfigIssue], origin: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            issues.append(ConfigIssue(key, value, f"{origin} override goes below a non-table value",
                                      "override the whole value instead"))
            return
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), dict):
        for k, v in value.items():   # tables merge key by key
            _set_dotted(node[last], k, v, issues, origin)
    else:
        node[last] = dict(value) if isinstance(value, Mapping) else value


# ---------------------------------------------------------------- generic validator
_NoneType = type(None)


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


def _cross_check(cfg: GatewayConfig, issues: list[ConfigIssue]) -> None:
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
    fb = cfg.uplink.fallback
    if fb.enabled and not fb.host:
        issues.append(ConfigIssue("uplink.fallback.host", "", "required when the fallback is enabled",
                                  'set e.g. host = "fallback.example.net"'))
    if not SERVICE_TYPE_RE.fullmatch(cfg.discovery.service_type):
        issues.append(ConfigIssue("discovery.service_type", cfg.discovery.service_type,
                                  "must look like _name._tcp.local.", 'set e.g. service_type = "_wt-gateway._tcp.local."'))
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


# ---------------------------------------------------------------- output
def _to_plain(obj: Any, *, redact: bool, secret: bool = False) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            out[f.name] = _to_plain(v, redact=redact, secret=bool(f.metadata.get("secret")) if f.metadata else False)
        if isinstance(obj, GatewayConfig):
            out["devices"] = {d["id"]: {k: v for k, v in d.items() if k != "id"} for d in out["devices"]}
        return out
    if secret and obj not in (None, "", b""):
        return "<redacted>" if redact else (obj.hex() if isinstance(obj, bytes) else obj)
    if isinstance(obj, enum.Enum):
        return obj.name.lower() if isinstance(obj, Role) else obj.value
    if isinstance(obj, _dt.time):
        return obj.strftime("%H:%M")
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, tuple):
        return [_to_plain(v, redact=redact) for v in obj]
    return obj


def to_toml(cfg: GatewayConfig) -> str:
    """Render the (redacted) config as TOML for `gateway config check`."""
    plain = cfg.to_dict(redact=True)
    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if v is None:
            return '""'
        return json.dumps(v)

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items()
                   if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {val(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict) and k not in scalars:
                table(f"{name}.{k}", v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{name}.{k}]]")
                    lines.extend(f"{ik} = {val(iv)}" for ik, iv in item.items())
                    lines.append("")

    for section, body in plain.items():
        if section == "devices":
            for dev_id, dev in body.items():
                table(f"devices.{dev_id}", dev)
        else:
            table(section, body)
    return "\n".join(lines)
