"""What the configuration cannot check: directories writable, the status port free."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.daemon._errors import DaemonError


def preflight(cfg: GatewayConfig) -> None:
    """Check what the config cannot: directories writable, status port free. Opens nothing
    that stays open; raises DaemonError naming the resource and the fix."""
    data_dir = Path(cfg.gateway.data_dir)
    for d, key in ((data_dir, "gateway.data_dir"), (cfg.journal_path.parent, "journal.path")):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DaemonError(f"{key}: cannot create {d} ({exc.strerror}); create it or point {key} elsewhere",
                              what=key) from None
        if not os.access(d, os.W_OK):
            raise DaemonError(f"{key}: {d} is not writable by this user; fix the permissions or change {key}",
                              what=key)
    if cfg.status.enabled and cfg.status.port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((cfg.status.host, cfg.status.port))
            except OSError as exc:
                raise DaemonError(f"status.port: {cfg.status.host}:{cfg.status.port} is not available ({exc.strerror}); "
                                  "is another gateway running? set status.port = 0 to pick a free port",
                                  what="status.port") from None
