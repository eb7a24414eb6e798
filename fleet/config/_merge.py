"""Template layers, deep merge with documented precedence, canonical content hash.

Precedence (lowest first): municipality -> group -> gateway -> device. A later layer
wins key by key: mappings merge recursively, every other value (scalars, lists)
replaces the earlier one, and ``null`` in a later layer removes the key. Device layers
apply under ``devices.<device_id>`` of the effective configuration; settings the device's
installation records (:func:`installed_layers`) go just below its device template.
"""
from __future__ import annotations

import copy
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


class Scope(enum.Enum):
    """Template scope; the declaration order is the merge order (later wins)."""

    MUNICIPALITY = "municipality"
    GROUP = "group"
    GATEWAY = "gateway"
    DEVICE = "device"

    @property
    def rank(self) -> int:
        return list(Scope).index(self)


@dataclass(frozen=True)
class Layer:
    """One template: the settings a scope (e.g. group ``oslo-night``) sets."""

    scope: Scope
    scope_id: str
    body: Mapping[str, Any]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new mapping: ``over`` merged onto ``base`` (inputs are not modified)."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = deep_merge({}, value)  # drops nested nulls too
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_config(layers: Iterable[Layer]) -> dict[str, Any]:
    """Merge layers in precedence order (stable for layers of the same scope)."""
    result: dict[str, Any] = {}
    for layer in sorted(layers, key=lambda l: l.scope.rank):
        if layer.scope is Scope.DEVICE:
            result = deep_merge(result, {"devices": {layer.scope_id: dict(layer.body)}})
        else:
            result = deep_merge(result, layer.body)
    return result


def installed_layers(installed: Mapping[str, Mapping[str, Any]], templates: Iterable[Layer]) -> list[Layer]:
    """Device layers of the settings an installation records for its devices (``installed``:
    device id -> ``role`` and settings, e.g. where a fall sensor is worn). A device gets them
    only if the templates configure it with that role (a bare setting is no device); they go
    below its device template, which still overrides them."""
    configured = effective_config(templates).get("devices") or {}
    out = []
    for dev, doc in sorted(installed.items()):
        conf = configured.get(dev)
        if isinstance(conf, Mapping) and conf.get("role") == doc.get("role"):
            out.append(Layer(Scope.DEVICE, dev, {k: v for k, v in doc.items() if k != "role"}))
    return out


def canonical_json(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(config: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON (key order and whitespace do not matter)."""
    return "sha256:" + hashlib.sha256(canonical_json(config).encode()).hexdigest()


def set_path(body: Mapping[str, Any], dotted_key: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``body`` with ``a.b.c`` set to ``value`` (None removes it)."""
    parts = dotted_key.split(".")
    if not all(parts):
        from fleet.config._errors import ConfigError

        raise ConfigError(f"{dotted_key!r} is not a dotted key", key=dotted_key,
                          fix="write keys like uplink.ack_timeout_s (no empty parts)")
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    return deep_merge(body, nested)


def parse_value(text: str) -> Any:
    """CLI value: JSON if it parses (numbers, true/false, null, lists, objects), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text
