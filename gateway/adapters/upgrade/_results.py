"""Final results of sensor ``ota`` commands, kept across gateway restarts.

A fleet that re-sends a command (QoS 1 redelivery, a re-run rollout) after the gateway
restarted must get the result the OTA really had — not a fresh transfer, and not an
``already`` from the device's current version that hides a rollback. The file is
``<data_dir>/ota-results.json`` ({cmd_id: [status, detail]}, the newest
:data:`MAX_RESULTS`), replaced atomically on every final result (a few per day at most).
A file that cannot be read is set aside (``.corrupt``) and started afresh: the worst case
is the old behaviour (the command runs again).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway.launch import write_atomic

MAX_RESULTS = 256
log = logging.getLogger("gateway.adapters.upgrade")


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._results: dict[str, list[Any]] = self._load()

    def _load(self) -> dict[str, list[Any]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("OTA results %s unreadable (%s); set aside, starting afresh", self.path, exc)
            try:
                self.path.rename(self.path.with_name(self.path.name + ".corrupt"))
            except OSError as rename_exc:
                log.warning("cannot set %s aside: %s", self.path, rename_exc)
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: v for k, v in doc.items() if isinstance(v, list) and len(v) == 2 and isinstance(v[1], dict)}

    def get(self, cmd_id: str) -> tuple[str, dict[str, Any]] | None:
        r = self._results.get(cmd_id)
        return (str(r[0]), dict(r[1])) if r else None

    def put(self, cmd_id: str, status: str, detail: dict[str, Any]) -> None:
        self._results.pop(cmd_id, None)
        self._results[cmd_id] = [status, detail]
        while len(self._results) > MAX_RESULTS:
            self._results.pop(next(iter(self._results)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(self._results, sort_keys=False).encode())
        except OSError as exc:        # a full disk: the result is still answered until the next restart
            log.warning("OTA result %s not saved in %s: %s", cmd_id, self.path, exc)


__all__ = ["MAX_RESULTS", "ResultStore"]
