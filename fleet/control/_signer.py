"""The fleet's control key and signer: every config push and command leaves the fleet in a
``wt.signed/1`` envelope (contracts/control.py; docs/mqtt.md "Signed control messages").

The key is an ed25519 private key in a PEM file **outside the database**
(``FLEET_CONTROL_KEY_FILE``, or ``--control-key`` where a command takes it; mode 0600,
readable by the fleet service user only). A database dump therefore cannot sign for the
fleet; the public half goes to every gateway at enrolment as its ``[trust] fleet_key``
(``fleet control-key show``).

The sequence: :class:`SeqSource`. In the fleet it is the database (one row per gateway,
fleet/control/_sql.py: ``seq = max(seq + 1, now in µs)`` updated atomically, so strictly
increasing per gateway across every worker that signs). :class:`MemorySeq` is the same rule
in one process, for a signer without a database (the emulated fleet in tests, benches).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.control import (CMD_TTL_S, CONFIG_TTL_S, ControlKeyError, generate_key, key_id, load_private_file,
                               next_seq, public_pem, seal, seal_cmd, seal_config)
from contracts.payloads import CMD_SCHEMA, CONFIG_SCHEMA
from fleet.errors import FleetError

ENV_KEY_FILE = "FLEET_CONTROL_KEY_FILE"


class ControlKeyMissing(FleetError, ControlKeyError):
    """No usable control key: the message says how to provide one."""

    code = "control_key"
    exit_code = 2


class SeqSource(Protocol):
    def next_seq(self, gateway_id: str, now: float) -> int:
        """The next sequence number for ``gateway_id`` (strictly above every one handed out before)."""


class MemorySeq:
    """:func:`contracts.control.next_seq` over a counter per gateway in this process."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_seq(self, gateway_id: str, now: float) -> int:
        with self._lock:
            s = next_seq(self._last.get(gateway_id, 0), now)
            self._last[gateway_id] = s
            return s


class ControlSigner:
    """Signs ``wt.cmd/1`` and ``wt.config/1`` for one gateway at a time."""

    def __init__(self, key: Ed25519PrivateKey, seq: SeqSource | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.seq = seq if seq is not None else MemorySeq()
        self._clock = clock

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], seq: SeqSource | None = None, *,
                  clock: Callable[[], float] = time.time) -> "ControlSigner":
        try:
            return cls(load_private_file(path), seq, clock=clock)
        except ControlKeyError as exc:
            raise ControlKeyMissing(f"control key {path}: {exc}; create one with `fleet control-key generate "
                                    f"{path}` and give every gateway its public half") from None

    @classmethod
    def from_env(cls, seq: SeqSource | None = None, *, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> "ControlSigner":
        """The key named by ``FLEET_CONTROL_KEY_FILE``; :class:`ControlKeyMissing` naming the fix if unset."""
        path = (env if env is not None else os.environ).get(ENV_KEY_FILE, "")
        if not path:
            raise ControlKeyMissing(f"no fleet control key: set {ENV_KEY_FILE} to the control key's PEM file "
                                    "(create it with `fleet control-key generate PATH`); gateways refuse unsigned "
                                    "pushes and commands")
        return cls.from_file(path, seq, clock=clock)

    @property
    def public_pem(self) -> bytes:
        return public_pem(self._key.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self._key.public_key())

    def cmd(self, gateway_id: str, cmd_id: str, cmd: str, args: Mapping[str, Any], *,
            ttl_s: float = CMD_TTL_S) -> bytes:
        now = self._clock()
        return seal_cmd(cmd_id, cmd, args, gateway_id=gateway_id, seq=self.seq.next_seq(gateway_id, now),
                        expires_at=now + ttl_s, key=self._key)

    def config(self, gateway_id: str, *, version: int, config: Mapping[str, Any], hash: str | None,
               ttl_s: float = CONFIG_TTL_S) -> bytes:
        now = self._clock()
        return seal_config(version=version, config=config, hash=hash, gateway_id=gateway_id,
                           seq=self.seq.next_seq(gateway_id, now), expires_at=now + ttl_s, key=self._key)

    def wrap(self, gateway_id: str, body: bytes, *, kind: str = CMD_SCHEMA, ttl_s: float | None = None) -> bytes:
        """Sign an encoded ``wt.cmd/1`` (or ``wt.config/1`` with ``kind``) body."""
        now = self._clock()
        ttl = ttl_s if ttl_s is not None else (CONFIG_TTL_S if kind == CONFIG_SCHEMA else CMD_TTL_S)
        return seal(body, kind=kind, gateway_id=gateway_id, seq=self.seq.next_seq(gateway_id, now),
                    expires_at=now + ttl, key=self._key)


def generate_key_files(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new control key: ``path`` (private, 0600, refused if it exists) and ``path``.pub."""
    p = Path(path)
    priv, pub = generate_key()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv)
    pp = p.with_name(p.name + ".pub") if p.suffix != ".key" else p.with_suffix(".pub")
    pp.write_bytes(pub)
    return p, pp
