"""Sources of the configuration and their order (CLI > environment > fleet > file > defaults).

The schema, its defaults and its validation are :mod:`contracts.gateway_config`; this module
only reads the file (standard-library ``tomllib``), the environment and ``--set`` values and
merges them, in :func:`load_config`, before the schema builds the frozen config.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from contracts import gateway_config as _contract
from contracts.gateway_config import NO_VALUE, ConfigIssue, GatewayConfig, build
from gateway.config._device_keys import open_sealed_keys
from gateway.errors import GatewayError

ENV_PREFIX = "WT_GW__"


class ConfigError(_contract.ConfigError, GatewayError):
    """The contract's ConfigError (``issues``, ``source``) as the gateway raises it: rooted in GatewayError."""


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
            raise ConfigError([ConfigIssue(str(p), NO_VALUE, f"cannot read the file ({exc.strerror})",
                                           "check the path, or run without --config to use the defaults")],
                              source) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError([ConfigIssue(str(p), NO_VALUE, "not UTF-8 text", "save the file as UTF-8")], source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([ConfigIssue(str(p), NO_VALUE, f"TOML syntax error: {exc}",
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
    open_sealed_keys(data, issues)     # device keys sealed to this gateway's identity key (_device_keys)
    cfg = build(data, issues)
    if issues or cfg is None:
        raise ConfigError(issues, source)
    return cfg


def parse_override_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
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


