"""Secrets in configuration (device keys, MQTT passwords, TLS key paths): encrypted at rest,
never shown by a read.

Which values are secret is the gateway schema's business (``meta(secret=True)`` in
:mod:`contracts.gateway_config`): ``uplink.tls.key``, ``uplink.tls.password``, the same under
``uplink.fallback.tls``, and ``devices.<id>.key``. The SQL adapter seals them on write and
opens them on read, so the services work on plain values while the database holds only

    enc:v1:<key id>:<fingerprint>:<base64(nonce || AES-256-GCM ciphertext)>

with the template's scope, id and key path as associated data (a ciphertext moved to another
template or key does not open). The key-encryption keys (KEK) live outside the database, in
the file named by ``FLEET_KEK_FILE``: one ``<key id>:<base64 of 32 bytes>`` per line, the
first line is the key new secrets are sealed with, later lines still open older ones
(rotation: docs/fleet-service.md). The fingerprint is an HMAC of the value under the sealing
key, so a read can say "set" and which value without decrypting or revealing it.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from fleet.config._errors import ConfigError

PREFIX = "enc:v1:"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _secret_fields(cls: type, prefix: str = "") -> Iterator[str]:
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.metadata and f.metadata.get("secret"):
            yield prefix + f.name
        elif dataclasses.is_dataclass(tp):
            yield from _secret_fields(tp, prefix + f.name + ".")


def secret_paths() -> tuple[frozenset[str], frozenset[str]]:
    """(dotted paths of secrets in a gateway-level config, secret keys of a device section)."""
    from contracts.gateway_config import DeviceSection, GatewayConfig

    return frozenset(_secret_fields(GatewayConfig)), frozenset(_secret_fields(DeviceSection))


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class Keyring:
    """Key-encryption keys by id; the first is the one new secrets are sealed with."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError("the key-encryption key file has no key", key="FLEET_KEK_FILE",
                              fix="add a line <key id>:<base64 of 32 random bytes> (see docs/fleet-service.md)")
        self.current = keys[0][0]
        self.keys = dict(keys)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Keyring":
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the key-encryption key file {path}: {exc}", key="FLEET_KEK_FILE",
                              fix="point FLEET_KEK_FILE at a readable file (mode 0600, outside the database)") from None
        keys = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kid, _, b64 = line.partition(":")
            try:
                key = base64.b64decode(b64, validate=True)
            except ValueError:
                key = b""
            if not _KID.match(kid) or len(key) != 32:
                raise ConfigError(f"line {n} of {path} is not '<key id>:<base64 of 32 bytes>'", key="FLEET_KEK_FILE",
                                  fix="generate one with: fleet serve --new-kek (or python -c 'import os,base64;"
                                      "print(\"k1:\"+base64.b64encode(os.urandom(32)).decode())')")
            keys.append((kid, key))
        return cls(keys)

    @staticmethod
    def new_line(kid: str) -> str:
        return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"

    def fingerprint(self, value: str) -> str:
        return hmac.new(self.keys[self.current], b"fleet-secret-fp\0" + value.encode(), hashlib.sha256).hexdigest()[:12]

    def seal(self, value: str, where: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        ct = AESGCM(self.keys[self.current]).encrypt(nonce, value.encode(), where.encode())
        return f"{PREFIX}{self.current}:{self.fingerprint(value)}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, where: str) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            kid, _fp, b64 = sealed[len(PREFIX):].split(":", 2)
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ConfigError(f"the stored secret at {where} is damaged", key=where,
                              fix="set the secret again") from None
        key = self.keys.get(kid)
        if key is None:
            raise ConfigError(f"the secret at {where} was sealed with key {kid!r}, which FLEET_KEK_FILE does not hold",
                              key=where, fix=f"add key {kid} back to the key file (rotation keeps old keys until "
                                             "every secret is re-sealed)")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], where.encode()).decode()
        except InvalidTag:
            raise ConfigError(f"the secret at {where} does not open (wrong key or moved ciphertext)", key=where,
                              fix="set the secret again") from None


def fingerprint_of(sealed: str) -> str | None:
    parts = sealed[len(PREFIX):].split(":", 2)
    return parts[1] if len(parts) == 3 else None


def _walk(body: Mapping[str, Any], paths: frozenset[str], device_keys: frozenset[str], *, device_scope: bool,
          fn, where: str, prefix: str = "") -> dict[str, Any]:
    """A copy of ``body`` with ``fn(value, path)`` applied to every secret value."""
    out: dict[str, Any] = {}
    for k, v in body.items():
        path = prefix + k
        in_devices = prefix.startswith("devices.") and prefix.count(".") == 2
        secret = (k in device_keys) if (device_scope and not prefix) or in_devices else path in paths
        if secret and v is not None and not isinstance(v, Mapping):
            out[k] = fn(v, f"{where}:{path}")
        elif isinstance(v, Mapping):
            out[k] = _walk(v, paths, device_keys, device_scope=device_scope, fn=fn, where=where, prefix=path + ".")
        else:
            out[k] = v
    return out


def transform(body: Mapping[str, Any], fn, *, where: str, device_scope: bool = False) -> dict[str, Any]:
    """Apply ``fn(value, location)`` to each secret of a template body or an effective config."""
    paths, device_keys = secret_paths()
    return _walk(body, paths, device_keys, device_scope=device_scope, fn=fn, where=where)


def redact(body: Mapping[str, Any], *, device_scope: bool = False, keyring: Keyring | None = None) -> dict[str, Any]:
    """For reads: each secret becomes ``{"secret": "set", "fingerprint": ...}`` (never the value).
    A plain (opened) value gets its fingerprint from ``keyring`` if one is given."""
    def shown(v: Any, _where: str) -> Any:
        if v in ("", b""):
            return {"secret": "not set", "fingerprint": None}
        if is_sealed(v):
            return {"secret": "set", "fingerprint": fingerprint_of(v)}
        return {"secret": "set", "fingerprint": keyring.fingerprint(str(v)) if keyring else None}

    return transform(body, shown, where="", device_scope=device_scope)


class SecretCodec:
    """Seals and opens the secrets of bodies for the SQL adapter. ``keyring=None`` (no
    FLEET_KEK_FILE): non-secret configuration works, storing or using a secret is refused."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring

    def _need(self, where: str) -> Keyring:
        if self.keyring is None:
            raise ConfigError(f"{where.split(':')[-1]} is a secret and this fleet has no key-encryption key",
                              key=where.split(":")[-1],
                              fix="set FLEET_KEK_FILE to a key file outside the database (docs/fleet-service.md)")
        return self.keyring

    def seal(self, body: Mapping[str, Any], where: str, *, device_scope: bool = False,
             fresh: bool = False) -> dict[str, Any]:
        """Seal plain secrets (``fresh``: the caller opened every value first, so seal them all)."""
        def seal_one(v: Any, loc: str) -> Any:
            if (is_sealed(v) and not fresh) or v == "":
                return v
            if not isinstance(v, str):
                return v          # a wrong type is the validator's to report
            return self._need(loc).seal(v, loc)

        return transform(body, seal_one, where=where, device_scope=device_scope)

    def open(self, body: Mapping[str, Any], where: str, *, device_scope: bool = False) -> dict[str, Any]:
        def open_one(v: Any, loc: str) -> Any:
            return self._need(loc).open(v, loc) if is_sealed(v) else v

        return transform(body, open_one, where=where, device_scope=device_scope)

    def has_sealed(self, body: Mapping[str, Any], *, device_scope: bool = False) -> bool:
        found = []
        transform(body, lambda v, loc: found.append(is_sealed(v)) or v, where="", device_scope=device_scope)
        return any(found)


def keyring_from_env(env: Mapping[str, str] | None = None) -> Keyring | None:
    env = os.environ if env is None else env
    path = env.get("FLEET_KEK_FILE")
    return Keyring.load(path) if path else None
