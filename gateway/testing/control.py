"""The fleet's control key in the test kit: signs what tests, benches and the demo send to a
gateway (``wt.signed/1``, contracts/control.py), as the fleet does in production.

    fleet = FleetKey.create(tmp_path)                     # key pair; fleet.public_path for [trust]
    cfg_toml += fleet.trust_toml()                        # '[trust]\\nfleet_key = "…"\\n'
    client.publish(Topics(gw).cmd, fleet.cmd(gw, "c1", "ping", {}), qos=1)
    client.publish(Topics(gw).config, fleet.config(gw, 3, {...}, "sha256:…"), qos=1, retain=True)

The sequence is :func:`contracts.control.next_seq` over a per-gateway counter in this
object (the fleet keeps it in its database); ``now`` defaults to the wall clock — pass the
gateway's clock (a ``FakeClock``) when it runs on another time.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from contracts.control import (CMD_TTL_S, CONFIG_TTL_S, generate_key, load_private, next_seq, seal, seal_cmd,
                               seal_config)

ENV_KEY_FILE = "FLEET_CONTROL_KEY_FILE"     # what the fleet CLI reads (fleet/control)


class FleetKey:
    """A control key pair on disk and a signer over it."""

    def __init__(self, private_pem: bytes, public_pem: bytes, *, private_path: Path | None = None,
                 public_path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.private_pem = private_pem
        self.public_pem = public_pem
        self.private_path = private_path
        self.public_path = public_path
        self._key = load_private(private_pem)
        self._clock = clock
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, name: str = "fleet-control",
               clock: Callable[[], float] = time.time) -> "FleetKey":
        """A new key pair written to ``<directory>/<name>.key`` (0600) and ``<name>.pub``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        priv, pub = generate_key()
        kp, pp = d / f"{name}.key", d / f"{name}.pub"
        kp.write_bytes(priv)
        kp.chmod(0o600)
        pp.write_bytes(pub)
        return cls(priv, pub, private_path=kp, public_path=pp, clock=clock)

    def trust_toml(self) -> str:
        """The gateway's ``[trust]`` section naming this key (append to a test's gateway.toml)."""
        return f'[trust]\nfleet_key = "{self.public_path}"\n'

    def env(self) -> dict[str, str]:
        """Environment for a fleet CLI subprocess that must sign with this key."""
        return {ENV_KEY_FILE: str(self.private_path)}

    def seq(self, gateway_id: str, now: float | None = None) -> int:
        with self._lock:
            s = next_seq(self._last.get(gateway_id, 0), self._clock() if now is None else now)
            self._last[gateway_id] = s
            return s

    # ------------------------------------------------------------ signing
    def cmd(self, gateway_id: str, cmd_id: str, cmd: str, args: Mapping[str, Any], *, now: float | None = None,
            ttl_s: float = CMD_TTL_S, seq: int | None = None) -> bytes:
        t = self._clock() if now is None else now
        return seal_cmd(cmd_id, cmd, args, gateway_id=gateway_id, seq=seq or self.seq(gateway_id, t),
                        expires_at=t + ttl_s, key=self._key)

    def config(self, gateway_id: str, version: int, config: Mapping[str, Any], hash: str | None = None, *,
               now: float | None = None, ttl_s: float = CONFIG_TTL_S, seq: int | None = None) -> bytes:
        t = self._clock() if now is None else now
        return seal_config(version=version, config=config, hash=hash, gateway_id=gateway_id,
                           seq=seq or self.seq(gateway_id, t), expires_at=t + ttl_s, key=self._key)

    def wrap(self, gateway_id: str, kind: str, body: bytes, *, now: float | None = None,
             ttl_s: float | None = None, seq: int | None = None) -> bytes:
        """Sign an already encoded ``wt.cmd/1`` / ``wt.config/1`` body (``kind`` is its schema)."""
        t = self._clock() if now is None else now
        ttl = ttl_s if ttl_s is not None else (CONFIG_TTL_S if kind.startswith("wt.config") else CMD_TTL_S)
        return seal(body, kind=kind, gateway_id=gateway_id, seq=seq or self.seq(gateway_id, t), expires_at=t + ttl,
                    key=self._key)
