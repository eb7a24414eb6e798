"""Device keys that arrive sealed to this gateway (``x25519:v1:…``, contracts/device_keys.py).

The fleet never sends a device key in clear: in a ``wt.config/1`` push, ``devices.<id>.key`` is
the key sealed to the gateway's X25519 public key. :func:`open_sealed_keys` runs inside
:func:`gateway.config.load_config`, after every source is merged and before the schema builds
the frozen config: it reads the private key named by ``gateway.identity_key`` (a local file
made by ``gateway enrol``; no push can change the key) and replaces each sealed value by the
key's 32 hex digits. So the ingress gets plain keys, while the pushed layer stored on disk
(``fleet-config.json``) and the retained MQTT message hold only sealed ones.

A sealed key that does not open is a configuration issue naming the device, why and what to
do — the whole configuration is refused (a push is reported ``rejected``), never half applied
and never run with that device silently unkeyed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from contracts.device_keys import SealedKeyError, fingerprint, is_sealed, open_key
from contracts.gateway_config import ConfigIssue

_REDACTED = "<sealed>"


def _sealed_entries(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    devices = data.get("devices")
    if not isinstance(devices, dict):
        return []
    return [(dev, body) for dev, body in devices.items() if isinstance(body, dict) and is_sealed(body.get("key"))]


def load_identity_key(path: str | os.PathLike[str]):  # noqa: ANN201 - X25519PrivateKey
    """The X25519 private key in the PEM file ``path`` (OSError / ValueError if unreadable)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError("not an X25519 private key")
    return key


def open_sealed_keys(data: dict[str, Any], issues: list[ConfigIssue]) -> None:
    """Replace every sealed ``devices.<id>.key`` in the merged ``data`` by its hex key, in place."""
    entries = _sealed_entries(data)
    if not entries:
        return
    section = data.get("gateway")
    gw: dict[str, Any] = section if isinstance(section, dict) else {}
    path, gateway_id = gw.get("identity_key", ""), gw.get("id", "")
    if not isinstance(path, str) or not path:
        for dev, _ in entries:
            issues.append(ConfigIssue(f"devices.{dev}.key", _REDACTED,
                                      "is sealed to a gateway key, but gateway.identity_key is not set",
                                      "enrol this gateway (gateway enrol --fleet URL --code CODE), which makes its key "
                                      "and sets gateway.identity_key"))
        return
    try:
        private = load_identity_key(path)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        for dev, _ in entries:
            issues.append(ConfigIssue(f"devices.{dev}.key", _REDACTED,
                                      f"cannot be opened: the identity key {path} is unusable ({why})",
                                      "restore the file from the backup of /etc/wt-gateway, or enrol the gateway "
                                      "again and have the fleet push its configuration"))
        return
    for dev, body in entries:
        try:
            opened = open_key(private, str(gateway_id), dev, body["key"]).hex()
            # new dicts, never the caller's: the pushed layer it came from stays sealed
            data["devices"] = {**data["devices"], dev: {**body, "key": opened}}
        except SealedKeyError as exc:
            from cryptography.hazmat.primitives import serialization

            pub = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            issues.append(ConfigIssue(f"devices.{dev}.key", _REDACTED, exc.problem,
                                      f"the fleet must seal it to this gateway's key {fingerprint(pub)}: check "
                                      "`fleet gateway enrolment show` and push the configuration again"))
