"""CLI settings: the one frozen object every ``cmd_x(args, cfg)`` receives.

Override order (CLI > environment > default) lives in :func:`resolve` only.
(Named ``settings`` because ``fleet/config/`` is the configuration-management package.)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping


def _default_config_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".config")
    return Path(base) / "fleet"


@dataclass(frozen=True)
class CliConfig:
    db_url: str                        # sqlite:///path or postgresql://... (embedded app; local workers)
    server: str | None = None          # --server / FLEET_SERVER: the fleet service; None = the app in process
    db_given: bool = False             # --db or FLEET_DB was set (not the default file)
    json: bool = False                 # machine-readable output on reads
    user: str | None = None            # FLEET_USER (scripted use; see docs/fleet.md)
    token: str | None = None           # FLEET_TOKEN (scripted use with a minted token)
    config_dir: Path = Path("~/.config/fleet")   # holds the `fleet login` session file
    progress: bool = True              # progress bars on stderr for long operations
    kek_file: str | None = None        # FLEET_KEK_FILE: config secrets, for the embedded app (the server has its own)
    clock: Callable[[], float] = field(default=time.time, compare=False)

    @property
    def session_file(self) -> Path:
        return self.config_dir / "session.json"

    def open_store(self, *, migrate: bool = True):
        from .store import open_store

        return open_store(self.db_url, migrate=migrate)


def resolve(*, db: str | None, json_output: bool, progress: bool | None, server: str | None = None,
            env: Mapping[str, str] | None = None, clock: Callable[[], float] | None = None) -> CliConfig:
    env = os.environ if env is None else env
    from .store._factory import default_url

    server_url = server or env.get("FLEET_SERVER") or None
    if server_url:
        from .client import normalise_server

        server_url = normalise_server(server_url)

    if db:
        db_url = db
    elif env.get("FLEET_DB"):
        db_url = env["FLEET_DB"]
    else:
        db_url = default_url()
    return CliConfig(
        db_url=db_url,
        server=server_url,
        db_given=bool(db or env.get("FLEET_DB")),
        json=json_output,
        user=env.get("FLEET_USER") or None,
        token=env.get("FLEET_TOKEN") or None,
        config_dir=Path(env["FLEET_CONFIG_DIR"]) if env.get("FLEET_CONFIG_DIR") else _default_config_dir(env),
        progress=progress if progress is not None else True,
        kek_file=env.get("FLEET_KEK_FILE") or None,
        clock=clock or time.time,
    )
