"""``wt.config/1`` (fleet -> gateway, retained desired configuration) and
``wt.config-applied/1`` (gateway -> fleet, retained outcome), docs/fleet-config.md.

The ``config`` object itself is a layer of the gateway configuration schema; this module
only carries it (validation is the receiver's business).
"""
from __future__ import annotations

import enum
import json
from typing import Any, Mapping, NamedTuple

from contracts.payloads._common import Rejected, dumps, load

CONFIG_SCHEMA = "wt.config/1"
APPLIED_SCHEMA = "wt.config-applied/1"


class AppliedStatus(enum.Enum):
    APPLIED = "applied"
    REJECTED = "rejected"


class ConfigDoc(NamedTuple):
    """A decoded ``wt.config/1``. ``hash`` is an additive field (docs/fleet-config.md)."""

    version: int
    config: dict[str, Any]
    hash: str | None = None


def encode_config(*, version: int, config: Mapping[str, Any], hash: str | None) -> bytes:
    """Canonical (sorted keys, compact): the same desired config is the same retained bytes."""
    return json.dumps({"schema": CONFIG_SCHEMA, "version": version, "hash": hash, "config": config},
                      sort_keys=True, separators=(",", ":")).encode()


def decode_config(payload: bytes) -> ConfigDoc | Rejected:
    doc = load(payload, CONFIG_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    version, config, h = doc.get("version"), doc.get("config"), doc.get("hash")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return Rejected(f"version {version!r} is not a non-negative integer", CONFIG_SCHEMA, "version")
    if not isinstance(config, dict):
        return Rejected("'config' is not an object", CONFIG_SCHEMA, "config")
    return ConfigDoc(version, config, h if isinstance(h, str) else None)


class ConfigApplied(NamedTuple):
    """A decoded ``wt.config-applied/1``: the version the gateway applied or rejected."""

    version: int
    status: AppliedStatus
    error: str | None
    hash: str | None = None


def applied_doc(*, version: int, status: AppliedStatus | str, error: str | None,
                hash: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": APPLIED_SCHEMA, "version": version, "status": AppliedStatus(status).value,
                           "error": error}
    if hash is not None:
        out["hash"] = hash
    return out


def encode_applied(*, version: int, status: AppliedStatus | str, error: str | None,
                   hash: str | None = None) -> bytes:
    return dumps(applied_doc(version=version, status=status, error=error, hash=hash))


def decode_applied(payload: bytes) -> ConfigApplied | Rejected:
    doc = load(payload, APPLIED_SCHEMA)
    if isinstance(doc, Rejected):
        return doc
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return Rejected(f"version {version!r} is not a non-negative integer", APPLIED_SCHEMA, "version")
    try:
        status = AppliedStatus(doc.get("status"))
    except (ValueError, TypeError):
        return Rejected(f"status {doc.get('status')!r} is not applied/rejected", APPLIED_SCHEMA, "status")
    error, h = doc.get("error"), doc.get("hash")
    return ConfigApplied(version, status, error if isinstance(error, str) else None, h if isinstance(h, str) else None)
