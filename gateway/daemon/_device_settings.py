"""Device settings in the running gateway: the configuration's settings for each device
(``devices.<id>.placement`` today) sent to it in a CONFIG frame and kept in sync.

The decisions are gateway/domain/device_settings.py's :class:`DeviceSettings`; this wires
them to the device's link: a CONFIG / CONFIG_GET downlink is built by ingress (next
downlink seq, AUTH for a keyed device) and sent on the link the device was last heard on.
The ingest pipeline tells it every device update and uplink message
(gateway/daemon/_ingest.py), the rules tick drives its time-outs, the status snapshot
shows it (``device_settings``). A configuration push re-bootstraps the gateway, which
builds this anew from the new configuration: every device is ``unknown`` again and is
asked for its settings version (CONFIG_GET) at its next frame, so only a device whose
settings changed gets a CONFIG.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from gateway.codec.payloads import Payload
from gateway.daemon._links import LinkTable
from gateway.domain.device_settings import (
    DeviceSettings,
    SettingsState,
    desired_settings,
)
from gateway.domain.ingress import Ingress, UplinkMessage
from gateway.domain.ingress_types import DeviceUpdate
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.daemon")


class SettingsSync:
    """The gateway's :class:`DeviceSettings` over ingress and the link table."""

    def __init__(self, devices: Iterable[Any], *, ingress: Ingress, links: LinkTable, clock: Clock,
                 ack_timeout_s: float = 5.0, retries: int = 4) -> None:
        self._ingress = ingress
        self._links = links
        desired, notes = desired_settings(devices)
        for note in notes:
            log.warning("%s", note)
        self.settings = DeviceSettings(desired, self._send, clock, ack_timeout_s=ack_timeout_s, retries=retries)

    def _send(self, device: str, payload: Payload) -> int | None:
        link = self._ingress.link_for(device)
        if link is None or link not in self._links:
            return None            # its link is gone: re-sent at the time-out like an unanswered frame
        try:
            seq, data = self._ingress.downlink_with_seq(device, payload.TYPE, payload)
        except ValueError as exc:
            log.error("%s for %s not built: %s", payload.TYPE.name, device, exc)
            return None
        self._links.send(link, data)
        return seq

    # ---- what the ingest pipeline tells it -------------------------------------------------------
    def on_update(self, upd: DeviceUpdate) -> None:
        hello = upd.reset_cause is not None       # only a HELLO carries the reset cause (and its version)
        self.settings.heard(upd.device_id, downlink=upd.link in self._links,
                            hello_version=upd.config_version if hello else None)

    def on_message(self, msg: UplinkMessage) -> None:
        self.settings.on_message(msg.device_id, msg.payload)

    def tick(self) -> None:
        self.settings.tick()

    # ---- status --------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.settings.status()

    def state_of(self, device_id: str) -> str | None:
        st = self.settings.state_of(device_id)
        return st.value if isinstance(st, SettingsState) else None
