"""Configuration pushed by the fleet (``wt.config/1``, retained, on ``Topics(gw).config``, contracts/topics.py).

The pushed ``config`` object is a layer of the gateway schema (docs/gateway-config.md):
it sits between the TOML file and the environment in :func:`gateway.config.load_config`.
This module decides what to do with a push (pure, except the small layer file it keeps):

- decode the payload with the contract's decoder (never raises; a garbage payload is ignored
  with a log line). A push whose envelope is sound but whose ``config`` carries a non-finite
  number (``NaN``, ``Infinity``, ``1e999``: JSON has none, Python's reader accepts them) is
  not garbage: it is kept as ``refused`` and answered ``rejected`` naming the key, like any
  other invalid value — never applied, never saved;
- a version at or below the applied one is not applied again (the retained message comes
  back on every reconnect) — the ``wt.config-applied/1`` report is simply repeated;
- validate the whole effective configuration; an invalid push is ``rejected`` with the
  key, value and fix of every issue, and the running configuration stays;
- ``gateway.id``, ``gateway.data_dir`` and ``journal.path`` (they identify the gateway and
  its stored data) and the trust anchors (``[trust]``: the fleet's control key, the release
  keys, the broker CA; and ``upgrades.trusted_keys``) cannot be changed remotely
  (``contracts.gateway_config.IMMUTABLE``, which the fleet checks too): a push that so much
  as mentions one is rejected whole, before anything else, the reason naming the key. A
  stored layer holding one (written before this rule) is refused at start-up the same way;
- a valid push is written atomically to ``<data_dir>/fleet-config.json`` as *pending* and
  the daemon re-bootstraps with it; it is committed (and reported ``applied``) only once
  the uplink is back and a health report was acknowledged, else the previous configuration
  comes back (gateway/daemon/_config_push.py).

Only pushes that passed the control gate (signed by the fleet, gateway/daemon/_control.py)
get here.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from contracts.gateway_config import IMMUTABLE, immutable_key  # the keys a push may not change: shared with the fleet
from contracts.payloads import CONFIG_SCHEMA, NOT_FINITE, ConfigDoc, decode_config
from gateway.config import ConfigError, GatewayConfig

log = logging.getLogger("gateway.domain.config_push")

LAYER_FILE = "fleet-config.json"


@dataclass(frozen=True)
class ConfigPush:
    version: int
    config: dict[str, Any]
    hash: str | None = None
    refused: str | None = None        # why the decoder refused the content (a non-finite number): never applied
    pending: bool = False             # on disk: saved, not yet committed (uplink + acknowledged health)


@dataclass(frozen=True)
class Decision:
    action: str                       # "apply" | "reject" | "report" (already applied) | "ignore" (stale)
    push: ConfigPush
    config: GatewayConfig | None = None
    error: str | None = None


def decode_push(payload: bytes) -> ConfigPush | str:
    """The push, or the reason it is unusable (never raises).

    A non-finite number inside ``config`` gives a push with ``refused`` set (its version and
    hash still read, its config with the NaN/inf as Python reads it) so that :func:`decide`
    answers it ``rejected`` with the key, value and fix; anywhere else it is unusable.
    """
    doc = decode_config(payload)
    if isinstance(doc, ConfigDoc):
        return ConfigPush(doc.version, doc.config, doc.hash)
    if doc.field is not None and doc.field.startswith("config.") and NOT_FINITE in doc.reason:
        salvaged = _envelope(payload)
        if salvaged is not None:
            return ConfigPush(*salvaged, refused=doc.reason)
    if doc.field is None or doc.field in doc.reason:
        return doc.reason
    return f"{doc.field}: {doc.reason}"


def _envelope(payload: bytes) -> tuple[int, dict[str, Any], str | None] | None:
    """Version, config and hash of a push the strict decoder refused for a non-finite number."""
    try:
        obj = json.loads(payload.decode("utf-8"))          # lenient: NaN/Infinity become floats
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("schema") != CONFIG_SCHEMA:
        return None
    version, config, h = obj.get("version"), obj.get("config"), obj.get("hash")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0 or not isinstance(config, dict):
        return None
    return version, config, h if isinstance(h, str) else None


def applied_payload(push: ConfigPush, status: str, error: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": "wt.config-applied/1", "version": push.version, "status": status,
                           "error": error}
    if push.hash is not None:
        out["hash"] = push.hash
    return out


def _get(cfg: GatewayConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _pushed(config: dict[str, Any], dotted: str, current: Any) -> bool:
    """True if the push sets ``dotted`` to something other than ``current``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node != current


def _flat_keys(config: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the values in ``config`` (an empty table sets nothing: no key)."""
    if not isinstance(config, dict):
        return [prefix.rstrip(".")] if prefix else []
    out: list[str] = []
    for k, v in config.items():
        out += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def immutable_problems(config: dict[str, Any]) -> list[str]:
    """One line per key of ``config`` that no push may carry (identity, stored data, trust anchors)."""
    out = []
    for key in _flat_keys(config):
        anchor = immutable_key(key)
        if anchor is None:
            continue
        if anchor.startswith("trust") or anchor == "upgrades.trusted_keys":
            out.append(f"{key} cannot be changed remotely: it is a trust anchor, set only on the gateway "
                       "(`gateway enrol` or a technician); remove it from the fleet configuration")
        else:
            out.append(f"{key} cannot be changed remotely (it identifies the gateway or its stored data); "
                       "remove it from the fleet configuration")
    return out


def decide(push: ConfigPush, current: GatewayConfig, applied: ConfigPush | None,
           load: Callable[[dict[str, Any]], GatewayConfig]) -> Decision:
    """``load(fleet_layer)`` builds the effective config (file/env/CLI fixed by the caller).

    A ``refused`` push (a non-finite number) is never applied: it is validated only so the
    rejection names every key, value and fix the schema finds.
    """
    if applied is not None and push.version < applied.version:
        return Decision("ignore", push)
    if applied is not None and push.version == applied.version and push.refused is None:
        if push.hash is not None and applied.hash is not None and push.hash != applied.hash:
            return Decision("reject", push, error=f"version {push.version} was already applied with another "
                                                  "content (hash differs); push a new version")
        return Decision("report", push)
    anchors = immutable_problems(push.config)
    if anchors:                      # before anything else: not even validated against the local files
        return Decision("reject", push, error="; ".join(anchors))
    try:
        cfg = load(push.config)
    except ConfigError as exc:
        return Decision("reject", push, error="; ".join(str(i) for i in exc.issues))
    if push.refused is not None:     # the schema found nothing: still never apply what the decoder refused
        return Decision("reject", push, error=push.refused)
    changed = [k for k in IMMUTABLE
               if _get(cfg, k) != _get(current, k) or _pushed(push.config, k, _get(current, k))]
    if changed:
        return Decision("reject", push, error="; ".join(
            f"{k} cannot be changed remotely (it identifies the gateway or its stored data); remove it from the "
            "fleet configuration" for k in changed))
    return Decision("apply", push, config=cfg)


def layer_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / LAYER_FILE


def read_layer(data_dir: str | os.PathLike[str]) -> ConfigPush | None:
    """The last applied push, or None (missing or unreadable: logged, treated as none)."""
    p = layer_path(data_dir)
    try:
        obj = json.loads(p.read_text())
        return ConfigPush(int(obj["version"]), dict(obj["config"]), obj.get("hash"), pending=obj.get("pending") is True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring unreadable %s (%s); running without the fleet layer", p, exc)
        return None


def write_layer(data_dir: str | os.PathLike[str], push: ConfigPush | None) -> None:
    """Atomically replace (or with None remove) the layer file."""
    p = layer_path(data_dir)
    if push is None:
        p.unlink(missing_ok=True)
        return
    tmp = p.with_suffix(".tmp")
    with open(tmp, "w") as f:
        doc = {"version": push.version, "hash": push.hash, "config": push.config}
        if push.pending:
            doc["pending"] = True
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
