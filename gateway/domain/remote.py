"""Remote commands from the fleet (``wt.cmd/1`` on the gateway's ``…/cmd`` topic, docs/mqtt.md).

Pure domain: parses a command, applies it, and returns the ``wt.cmd-result/1`` payload
for the daemon to publish on ``…/cmd/result``. Commands are idempotent by ``cmd_id``
(a re-delivered command gets the same result again, without being applied twice).

Supported:

- ``ping`` → ``ok`` with the gateway version;
- ``test_mode`` ``{"devices": [...], "enabled": bool, "duration_s": 1800}`` → events of
  those devices are marked ``test: true`` with ``data.test_mode_until`` (commissioning: the
  platform still receives every alarm, clearly marked, docs/mqtt.md "Test mode") until
  disabled or the duration runs out. The duration is part of the signed command and at
  most :data:`MAX_TEST_MODE_S` (60 min; above is refused, nothing applied). It is never
  renewed by the same command delivered again (answered from ``cmd_id``, and the control
  gate drops a repeated command envelope): only a new signed command extends it. Test mode
  lives in memory: a restart ends it (the safe direction);
- ``pair`` ``{"device": ..., "role": ...}`` → ``ok`` if the device is in the gateway
  configuration with a key (pairing data arrives with the configuration), else ``error``
  naming what is missing.

``ota`` and ``update`` never get here: the daemon hands them to gateway/daemon/_upgrades.py
(gateway.adapters.upgrade, docs/upgrades.md) first. Anything else answers ``error`` ("not supported
by this gateway").
"""
from __future__ import annotations

import collections
import logging
import math
import re
from typing import Any, Callable

from contracts.payloads import Command, Rejected, cmd_result_doc, decode_cmd, rfc3339
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.domain.remote")

DEVICE_RE = re.compile(r"^[0-9a-f]{12}$")
MAX_TEST_MODE_S = 3600.0          # the longest test mode one signed command can set
DEFAULT_TEST_MODE_S = 1800.0


class RemoteCommands:
    def __init__(self, gateway_id: str, version: str, clock: Clock, *,
                 paired: Callable[[str], bool], known_role: Callable[[str], str | None] | None = None,
                 remember: int = 256) -> None:
        self.gateway_id = gateway_id
        self.version = version
        self.clock = clock
        self._paired = paired
        self._known_role = known_role
        self._remember = remember
        self._results: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._test_until: dict[str, float] = {}      # device -> monotonic expiry
        self.handled = 0
        self.rejected = 0

    # ------------------------------------------------------------ queries
    def is_test(self, device_id: str) -> bool:
        until = self._test_until.get(device_id)
        if until is None:
            return False
        if self.clock.monotonic() >= until:
            del self._test_until[device_id]
            log.info("test mode for %s expired", device_id)
            return False
        return True

    def test_devices(self) -> list[str]:
        return sorted(d for d in list(self._test_until) if self.is_test(d))

    def _until_wall(self, device_id: str) -> float:
        return self.clock.time() + (self._test_until[device_id] - self.clock.monotonic())

    def test_mark(self, device_id: str) -> dict[str, Any]:
        """What marks an event of ``device_id`` as a test (``{}`` when it is live): merged into its data."""
        if not self.is_test(device_id):
            return {}
        return {"test_mode_until": rfc3339(self._until_wall(device_id))}

    def test_mode_status(self) -> dict[str, Any]:
        """``test_mode`` in the status snapshot and ``wt.health/1``: active, until (the latest end), devices."""
        devices = {d: rfc3339(self._until_wall(d)) for d in self.test_devices()}
        return {"active": bool(devices), "until": max(devices.values()) if devices else None, "devices": devices,
                "max_s": MAX_TEST_MODE_S}

    # ------------------------------------------------------------ commands
    def handle(self, payload: bytes) -> dict[str, Any] | None:
        """Apply one ``wt.cmd/1``; returns the ``wt.cmd-result/1`` to publish (None: unusable)."""
        cmd = decode_cmd(payload)
        if isinstance(cmd, Rejected):
            if cmd.ref is None:                     # no cmd_id to answer to
                self.rejected += 1
                log.warning("wt.cmd: %s; ignored", cmd.reason)
                return None
            cmd_id = cmd.ref
        else:
            cmd_id = cmd.cmd_id
        if cmd_id in self._results:
            return self._results[cmd_id]           # re-delivery: same answer, not applied twice
        if isinstance(cmd, Rejected):               # cmd/args malformed: answer an error for this id
            result = self._result(cmd_id, "error", {"error": cmd.reason})
        else:
            handler = getattr(self, f"_cmd_{cmd.cmd}", None)
            if handler is None:
                result = self._result(cmd_id, "error", {"error": f"command {cmd.cmd!r} is not supported by this "
                                                                  f"gateway (version {self.version})"})
            else:
                status, detail = handler(cmd.args)
                result = self._result(cmd_id, status, detail)
        self.handled += 1
        self._results[cmd_id] = result
        while len(self._results) > self._remember:
            self._results.popitem(last=False)
        log.info("wt.cmd %s %s -> %s", cmd_id, cmd.cmd if isinstance(cmd, Command) else None, result["status"])
        return result

    def _result(self, cmd_id: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
        return cmd_result_doc(cmd_id, status, detail)

    def _cmd_ping(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "ok", {"gateway": self.gateway_id, "version": self.version}

    def _cmd_test_mode(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        devices = args.get("devices")
        enabled = args.get("enabled")
        duration = args.get("duration_s", DEFAULT_TEST_MODE_S)
        if not isinstance(devices, list) or not all(isinstance(d, str) and DEVICE_RE.fullmatch(d) for d in devices):
            return "error", {"error": "args.devices must be a list of 12-hex-digit device ids"}
        if not isinstance(enabled, bool):
            return "error", {"error": "args.enabled must be true or false"}
        if (isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration)
                or not 0 < duration <= MAX_TEST_MODE_S):
            return "error", {"error": f"args.duration_s must be a number of seconds in (0, {MAX_TEST_MODE_S:.0f}] "
                                      "(test mode lasts at most 60 min; send a new command to extend it)"}
        now = self.clock.monotonic()
        for d in devices:
            if enabled:
                self._test_until[d] = now + float(duration)
            else:
                self._test_until.pop(d, None)
        unknown = [d for d in devices if not self._paired(d)]
        detail: dict[str, Any] = {"enabled": enabled, "devices": sorted(devices), "test_devices": self.test_devices()}
        if enabled:
            detail["duration_s"] = float(duration)
            detail["until"] = rfc3339(self.clock.time() + float(duration))
        if unknown:
            detail["not_paired"] = sorted(unknown)
        return "ok", detail

    def _cmd_pair(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        dev = args.get("device")
        if not isinstance(dev, str) or not DEVICE_RE.fullmatch(dev):
            return "error", {"error": "args.device must be a 12-hex-digit device id"}
        if not self._paired(dev):
            return "error", {"device": dev, "error": "device is not in this gateway's configuration with a key; "
                                                     "push a configuration with [devices.<id>] role and key first"}
        role = self._known_role(dev) if self._known_role else None
        want = args.get("role")
        if isinstance(want, str) and role is not None and want != role:
            return "error", {"device": dev, "error": f"configured role is {role!r}, not {want!r}"}
        return "ok", {"device": dev, "role": role, "paired": True}
