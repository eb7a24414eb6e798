"""Device keys: generated at pairing, sealed at rest, sealed again to the gateway on the way out.

:class:`DeviceKeyService` over a :class:`DeviceKeyRepo` (SQL adapter, in-memory fake):

* :meth:`generate` makes a new random 16-byte key as version n+1 (``pending``) and returns it
  **once**, for the provisioning tool to write into the device (``fleet device provision``);
  nothing else ever returns a key. It is stored sealed under the fleet's key-encryption key
  (the ``FLEET_KEK_FILE`` keyring of :mod:`fleet.config._secrets`, associated data
  ``device_key:<device>:<version>``): without a key file no key can be made.
* :meth:`activate` once the tool has read the key back from the device: the previous active
  version retires, and from now on pushes carry the new key. A re-key makes the gateway start
  the device's replay windows afresh (gateway/domain/ingress.py ``_bind_key``).
* :meth:`sealed_for` is what a push carries: each active key sealed to the gateway's own
  X25519 public key (contracts/device_keys.py), deterministically per (key version, gateway
  key, key-encryption key) so the configuration's content hash stays put between renders.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any

from contracts.device_keys import seal
from fleet.clock import Clock
from fleet.devicekeys._model import DeviceKey, DeviceKeyRepo, KeyEvent, KeyOrigin, KeyState, next_state
from fleet.errors import NotFound, ValidationError

KEY_LEN = 16
DEVICE_ID_RE = re.compile(r"^[0-9a-f]{12}$")


def key_id(key: bytes) -> str:
    """A short public id of a key (a PRF output: tells two keys apart, reveals nothing of them)."""
    return hmac.new(key, b"wt device key id", hashlib.sha256).hexdigest()[:12]


def _where(device_id: str, version: int) -> str:
    return f"device_key:{device_id}:{version}"


@dataclass
class DeviceKeyService:
    repo: DeviceKeyRepo
    clock: Clock
    keyring: Any = None              # fleet.config.Keyring, or None: no key can be made or opened

    def _kek(self) -> Any:
        if self.keyring is None:
            raise ValidationError("device keys are stored encrypted and this fleet has no key-encryption key",
                                  field="FLEET_KEK_FILE",
                                  fix="set FLEET_KEK_FILE to a key file outside the database (docs/fleet-service.md)")
        return self.keyring

    @staticmethod
    def _check_id(device_id: str) -> None:
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise ValidationError(f"device id {device_id!r} is not 12 lower-case hex digits (the board's MAC)",
                                  field="device_id", fix="use the id printed on the device, e.g. a4c1380a1b2c")

    def versions(self, device_id: str) -> list[DeviceKey]:
        self._check_id(device_id)
        return self.repo.versions(device_id)

    def _version(self, device_id: str, version: int) -> DeviceKey:
        for k in self.repo.versions(device_id):
            if k.version == version:
                return k
        raise NotFound(f"device {device_id} has no key version {version}; list them with GET "
                       f"/api/v1/devices/{device_id}/keys", device=device_id, version=version)

    def _new(self, device_id: str, key: bytes, *, by: str, origin: KeyOrigin, state: KeyState) -> DeviceKey:
        kek = self._kek()
        now = self.clock.time()
        version = max((k.version for k in self.repo.versions(device_id)), default=0) + 1
        dk = DeviceKey(device_id, version, state, kek.seal(key.hex(), _where(device_id, version)), key_id(key),
                       origin, now, by, now if state is KeyState.ACTIVE else None)
        self.repo.add(dk)
        return dk

    def generate(self, device_id: str, *, by: str) -> tuple[DeviceKey, bytes]:
        """A new random key as a ``pending`` version; the key itself is returned this once."""
        self._check_id(device_id)
        self._kek()
        for k in self.repo.versions(device_id):
            if k.state is KeyState.PENDING:        # an unfinished provisioning: that key never reached the device
                self.repo.set_state(device_id, k.version, next_state(k.state, KeyEvent.SUPERSEDE, device_id=device_id,
                                                                     version=k.version), at=self.clock.time(), by=by)
        key = os.urandom(KEY_LEN)
        return self._new(device_id, key, by=by, origin=KeyOrigin.GENERATED, state=KeyState.PENDING), key

    def activate(self, device_id: str, version: int, *, by: str) -> DeviceKey:
        """The device holds version ``version`` now: it becomes the key pushed to the gateway."""
        self._check_id(device_id)
        k = self._version(device_id, version)
        new_state = next_state(k.state, KeyEvent.ACTIVATE, device_id=device_id, version=version)
        now = self.clock.time()
        for old in self.repo.versions(device_id):
            if old.state is KeyState.ACTIVE:
                self.repo.set_state(device_id, old.version, KeyState.RETIRED, at=now, by=by)
        self.repo.set_state(device_id, version, new_state, at=now, by=by)
        return self._version(device_id, version)

    def discard(self, device_id: str, version: int, *, by: str) -> DeviceKey:
        k = self._version(device_id, version)
        self.repo.set_state(device_id, version, next_state(k.state, KeyEvent.DISCARD, device_id=device_id,
                                                           version=version), at=self.clock.time(), by=by)
        return self._version(device_id, version)

    def import_key(self, device_id: str, key: bytes, *, by: str) -> DeviceKey:
        """A key typed into a template before keys had a life cycle, moved here (active, origin migrated)."""
        self._check_id(device_id)
        if len(key) != KEY_LEN:
            raise ValidationError(f"the key of device {device_id} is not {KEY_LEN} bytes", field="key",
                                  fix="generate a new one: fleet device provision")
        for old in self.repo.versions(device_id):
            if old.state is KeyState.ACTIVE:
                return old                      # the life-cycle key wins over a leftover template key
        return self._new(device_id, key, by=by, origin=KeyOrigin.MIGRATED, state=KeyState.ACTIVE)

    def open_active(self, device_id: str) -> bytes | None:
        k = self.repo.active([device_id]).get(device_id)
        if k is None:
            return None
        return bytes.fromhex(self._kek().open(k.sealed, _where(device_id, k.version)))

    def sealed_for(self, gateway_id: str, gateway_public: bytes, device_ids: list[str]) -> dict[str, str]:
        """``{device id: x25519:v1:…}`` of every active key among ``device_ids``, sealed to the gateway."""
        active = self.repo.active(device_ids)
        if not active:
            return {}
        kek = self._kek()
        secret = kek.keys[kek.current]
        out = {}
        for dev, k in sorted(active.items()):
            key = bytes.fromhex(kek.open(k.sealed, _where(dev, k.version)))
            seed = hmac.new(secret, b"wt device key seal\0" + gateway_public + f"\0{dev}\0{k.version}\0{k.key_id}".encode(),
                            hashlib.sha256).digest()
            out[dev] = seal(gateway_public, gateway_id, dev, key, ephemeral_seed=seed)
        return out

    def seal_legacy(self, gateway_id: str, gateway_public: bytes, typed: dict[str, str]) -> dict[str, str]:
        """Keys still typed into templates (hex), sealed to the gateway the same way (until migrated)."""
        from contracts.device_keys import is_sealed

        kek = self._kek()
        secret = kek.keys[kek.current]
        out = {}
        for dev, text in sorted(typed.items()):
            if is_sealed(text):
                continue
            try:
                key = bytes.fromhex(text)
            except ValueError:
                continue                              # not a key: the schema check reports it
            seed = hmac.new(secret, b"wt device key seal legacy\0" + gateway_public + f"\0{dev}\0{key_id(key)}".encode(),
                            hashlib.sha256).digest()
            out[dev] = seal(gateway_public, gateway_id, dev, key, ephemeral_seed=seed) if len(key) == KEY_LEN else text
        return out
