"""Remote commands (``wt.cmd/1`` on the gateway's ``…/cmd`` topic) in the running gateway.

Every command arrives inside the fleet's signed envelope (``wt.signed/1``) and passes the
:class:`~gateway.daemon._control.ControlGate` first (signature, target gateway, expiry,
sequence, recorded durably): an unsigned, forged, expired, replayed or other gateway's
command never reaches a handler; it is counted by reason and logged.

Then ``ota`` and ``update`` go to the :class:`~gateway.daemon._upgrades.UpgradeController`
(which answers on ``…/cmd/result`` itself, with progress); every other command to the
pure :class:`~gateway.domain.remote.RemoteCommands` (``ping``, ``test_mode``, ``pair``),
whose ``wt.cmd-result/1`` is published here on the first connected command route.
A handler exception is logged and counted, never raised into the MQTT adapter.
"""
from __future__ import annotations

import logging

from contracts.control import Opened
from contracts.payloads import CMD_SCHEMA, dumps
from contracts.topics import Topics
from gateway.daemon._control import ControlGate
from gateway.daemon._routes import Routes
from gateway.daemon._upgrades import UpgradeController
from gateway.domain.remote import RemoteCommands

log = logging.getLogger("gateway.daemon")


class CommandHandler:
    def __init__(self, *, gateway_id: str, upgrades: UpgradeController, remote: RemoteCommands, routes: Routes,
                 stats: dict[str, int], gate: ControlGate) -> None:
        self._upgrades = upgrades
        self._remote = remote
        self._routes = routes
        self._stats = stats
        self._gate = gate
        self.topic = Topics(gateway_id).cmd
        self._result_topic = Topics(gateway_id).cmd_result

    def on_cmd_message(self, topic: str, payload: bytes) -> None:
        """A signed ``wt.cmd/1`` from the fleet: checked by the gate, then applied (in order)."""
        try:
            self._gate.submit(CMD_SCHEMA, topic, payload, self._on_verified)
        except Exception:
            self._stats["handler_errors"] += 1
            log.exception("command handling failed")

    def _on_verified(self, msg: Opened, repeat: bool) -> bool:
        """The fleet's command (signature, target, expiry and seq checked): apply, answer on ``…/cmd/result``."""
        try:
            if self._upgrades.handle_command(msg.body):
                return True
            result = self._remote.handle(msg.body)
        except Exception:
            self._stats["handler_errors"] += 1
            log.exception("command handling failed")
            return True
        if result is not None:
            self._routes.reply(self._result_topic, dumps(result), what="cmd result")
        return result is not None
