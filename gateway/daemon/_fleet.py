"""Fleet control of a running gateway: ``wt.config/1`` pushes and ``wt.cmd/1`` commands.

A mixin of :class:`gateway.daemon._runtime.GatewayRuntime` (it uses the runtime's routes,
config and remote-command handler); the decisions themselves are pure
(gateway/domain/config_push.py, gateway/domain/remote.py).
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable

from gateway.config import GatewayConfig
from gateway.domain.config_push import ConfigPush, applied_payload, decide, decode_push
from gateway.domain.payload import Topics
from gateway.domain.uplink_errors import UplinkError

if TYPE_CHECKING:
    import asyncio

    from gateway.domain.remote import RemoteCommands
    from gateway.domain.uplink_ports import Publisher

log = logging.getLogger("gateway.daemon")


class FleetControl:
    cfg: GatewayConfig
    primary: "Publisher"
    fallback: "Publisher | None"
    remote: "RemoteCommands"
    stats: dict[str, int]
    config_loader: Callable[[dict[str, Any]], GatewayConfig] | None
    applied_push: ConfigPush | None
    pending_report: tuple[ConfigPush, str, str | None] | None
    reload_request: tuple[GatewayConfig, ConfigPush] | None
    reload_event: "asyncio.Event"
    failed_pushes: dict[tuple[int, str | None], str]
    upgrade_command: Callable[[bytes], bool]

    def on_config_message(self, topic: str, payload: bytes) -> None:
        """``wt.config/1`` from the fleet: validate; apply by re-bootstrapping, or reject."""
        push = decode_push(payload)
        if isinstance(push, str):
            log.warning("wt.config ignored: %s", push)
            return
        if self.config_loader is None:
            self._report_config(push, "rejected", "this gateway was started without a reloadable configuration")
            return
        if self.reload_request is not None:
            return   # already re-bootstrapping; the retained message comes back after it
        failed = self.failed_pushes.get((push.version, push.hash))
        if failed is not None:   # tried and could not start: never re-apply it (no restart loop)
            self._report_config(push, "rejected", failed)
            return
        d = decide(push, self.cfg, self.applied_push, self.config_loader)
        if d.action == "ignore":
            log.info("wt.config version %d ignored (applied version is %d)", push.version,
                     self.applied_push.version if self.applied_push else -1)
        elif d.action == "report":
            self._report_config(push, "applied", None)
        elif d.action == "reject":
            log.warning("wt.config version %d rejected: %s", push.version, d.error)
            self._report_config(push, "rejected", d.error)
        else:
            assert d.config is not None
            log.info("wt.config version %d valid: applying (re-bootstrap)", push.version)
            self.reload_request = (d.config, push)
            self.reload_event.set()

    def _report_config(self, push: ConfigPush, status: str, error: str | None) -> bool:
        data = json.dumps(applied_payload(push, status, error)).encode()
        for route in (self.primary, self.fallback):
            if route is not None and route.connected:
                try:
                    route.publish(Topics(self.cfg.gateway.id).config_applied, data, qos=1, retain=True)
                    return True
                except UplinkError as exc:
                    log.warning("config report not published: %s", exc)
        self.pending_report = (push, status, error)   # retried on the next rules tick
        return False

    def _flush_pending_report(self) -> None:
        if self.pending_report is not None and self._report_config(*self.pending_report):
            self.pending_report = None

    def on_cmd_message(self, topic: str, payload: bytes) -> None:
        """``wt.cmd/1`` from the fleet: apply, answer on ``…/cmd/result``."""
        try:
            if self.upgrade_command(payload):   # ota / update (gateway/daemon/_upgrades.py)
                return
            result = self.remote.handle(payload)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("command handling failed")
            return
        if result is None:
            return
        data = json.dumps(result).encode()
        for route in (self.primary, self.fallback):
            if route is not None and route.connected:
                try:
                    route.publish(Topics(self.cfg.gateway.id).cmd_result, data, qos=1)
                    return
                except UplinkError as exc:
                    log.warning("cmd result not published on %s: %s", getattr(route, "route", "?"), exc)

