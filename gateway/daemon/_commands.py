"""Remote commands (``wt.cmd/1`` on the gateway's ``…/cmd`` topic) in the running gateway.

``ota`` and ``update`` go to the :class:`~gateway.daemon._upgrades.UpgradeController`
(which answers on ``…/cmd/result`` itself, with progress); every other command to the
pure :class:`~gateway.domain.remote.RemoteCommands` (``ping``, ``test_mode``, ``pair``),
whose ``wt.cmd-result/1`` is published here on the first connected command route.
A handler exception is logged and counted, never raised into the MQTT adapter.
"""
from __future__ import annotations

import logging

from contracts.payloads import dumps
from contracts.topics import Topics
from gateway.daemon._routes import Routes
from gateway.daemon._upgrades import UpgradeController
from gateway.domain.remote import RemoteCommands

log = logging.getLogger("gateway.daemon")


class CommandHandler:
    def __init__(self, *, gateway_id: str, upgrades: UpgradeController, remote: RemoteCommands, routes: Routes,
                 stats: dict[str, int]) -> None:
        self._upgrades = upgrades
        self._remote = remote
        self._routes = routes
        self._stats = stats
        self.topic = Topics(gateway_id).cmd
        self._result_topic = Topics(gateway_id).cmd_result

    def on_cmd_message(self, topic: str, payload: bytes) -> None:
        """``wt.cmd/1`` from the fleet: apply, answer on ``…/cmd/result``."""
        try:
            if self._upgrades.handle_command(payload):
                return
            result = self._remote.handle(payload)
        except Exception:
            self._stats["handler_errors"] += 1
            log.exception("command handling failed")
            return
        if result is not None:
            self._routes.reply(self._result_topic, dumps(result), what="cmd result")
