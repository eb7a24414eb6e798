"""The inbound path of the running gateway, and the feedback that goes back to devices.

:class:`IngestPipeline` is what every source feeds (serial and emulated links, the BLE
scanner, GATT links)::

    bytes / advert / GATT value ──► Ingress ──► IngressResult
        .device_updates ──► DeviceRegistry (a HELLO: TIME downlink, OTA session hook),
                            device settings (a HELLO's config_version; CONFIG_GET / CONFIG)
        .messages       ──► OTA session hook, device settings (ACK/ERROR/CONFIG/OTA_STATUS)
        .replies        ──► the link (ACK DUPLICATE, ERROR)
        .events         ──► Forwarder.submit(event, on_stored)
                              on_stored(event, is_new): ACK the device (only now: the
                              event is durable), then the rules see the new event

One bad chunk never stops the gateway: a handler exception is logged and counted in
``stats["handler_errors"]``.

:class:`DeviceFeedback` turns the platform's answer to an alarm (``wt.ack/1``, or an
escalation when it does not come) into a FEEDBACK frame to the device that raised it.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable, Protocol

from gateway.codec.enums import FeedbackState, MsgType
from gateway.codec.payloads import Time
from gateway.daemon._links import LinkTable
from gateway.domain.devices import DeviceRegistry
from gateway.domain.ingress import Ingress, IngressResult, UplinkMessage
from gateway.domain.ingress_types import DeviceUpdate
from gateway.domain.model import Event
from gateway.domain.payload import AckStatus
from gateway.domain.ports import Clock, EventSink
from gateway.adapters.transports import LinkState

log = logging.getLogger("gateway.daemon")


class DeviceUpgradeHooks(Protocol):
    """What a running sensor OTA needs to hear from ingress (gateway/daemon/_upgrades.py)."""

    def on_hello(self, device_id: str, fw_version: str | None) -> None: ...

    def on_message(self, msg: UplinkMessage) -> None: ...


class DeviceSettingsHooks(Protocol):
    """What keeps the devices' settings in sync needs to hear (gateway/daemon/_device_settings.py)."""

    def on_update(self, upd: DeviceUpdate) -> None: ...

    def on_message(self, msg: UplinkMessage) -> None: ...


class IngestPipeline:
    """Sources → ingress → registry, downlinks, forwarder; rules after the journal has it."""

    def __init__(self, *, ingress: Ingress, registry: DeviceRegistry, forwarder: EventSink,
                 on_new_event: Callable[[Event], None], links: LinkTable, upgrades: DeviceUpgradeHooks,
                 is_test: Callable[[str], dict[str, Any]], clock: Clock, stats: dict[str, int],
                 settings: DeviceSettingsHooks | None = None) -> None:
        self._ingress = ingress
        self._registry = registry
        self._forwarder = forwarder
        self._on_new_event = on_new_event     # the rule engine
        self._links = links
        self._upgrades = upgrades
        self.settings = settings              # device settings sync (None: not kept in sync)
        self._is_test = is_test               # commissioning test mode (wt.cmd/1 test_mode): its mark, {} if live
        self._clock = clock
        self._stats = stats
        self._closing = False

    # ------------------------------------------------------------ sources
    def on_link_bytes(self, link_name: str, data: bytes) -> None:
        try:
            self._handle(self._ingress.feed(link_name, data))
        except Exception:  # one bad chunk must never stop the gateway
            self._stats["handler_errors"] += 1
            log.exception("handling bytes from %s failed", link_name)

    def on_advert(self, mac: str, service_data: bytes, rssi: int | None) -> None:
        try:
            self._handle(self._ingress.advert(mac, service_data, rssi))
        except Exception:
            self._stats["handler_errors"] += 1
            log.exception("handling an advert from %s failed", mac)

    def on_gatt_measurement(self, mac: str, uuid16: int, data: bytes) -> None:
        try:
            self._handle(self._ingress.gatt_measurement(mac, uuid16, data))
        except Exception:
            self._stats["handler_errors"] += 1
            log.exception("handling a GATT measurement from %s failed", mac)

    def on_link_state(self, link_name: str, state: LinkState) -> None:
        log.info("link %s is %s", link_name, state.value)
        if state is not LinkState.UP:
            self._ingress.forget_link(link_name)

    def begin_shutdown(self) -> None:
        """The journal is closing: events stored from now on are ACKed but not given to the rules."""
        self._closing = True

    # ------------------------------------------------------------ internals
    def _handle(self, res: IngressResult) -> None:
        mono = self._clock.monotonic()
        for upd in res.device_updates:
            self._registry.apply(upd, mono=mono)
            if upd.reset_cause is not None:   # only a HELLO carries the reset cause
                self._send_time(upd.device_id, upd.link)
                self._upgrades.on_hello(upd.device_id, upd.fw_version)
            if self.settings is not None:     # after TIME: the device has its clock before its settings
                self.settings.on_update(upd)
        for msg in res.messages:
            self._upgrades.on_message(msg)
            if self.settings is not None:
                self.settings.on_message(msg)
        for link_name, data in res.replies:
            self._links.send(link_name, data)
        for event in res.events:
            self._stats["events"] += 1
            if not event.test and (mark := self._is_test(event.device_id)):   # commissioning: marked, with its end
                event = dataclasses.replace(event, test=True, data={**event.data, **mark})
            link = res.event_links.get(event.event_id)
            self._forwarder.submit(event, functools.partial(self._stored, link=link))

    def _stored(self, event: Event, is_new: bool, link: str | None) -> None:
        """The event is durable: ACK the device (only now), then let the rules see it."""
        if link is not None and link in self._links and event.seq is not None:   # adverts get no ACK
            try:
                self._links.send(link, self._ingress.ack_frame(event, duplicate=not is_new))
                self._stats["acks_sent"] += 1
            except ValueError:
                log.exception("cannot build the ACK for %s", event.event_id)
        if not is_new:
            self._stats["duplicates"] += 1
            return
        if self._closing:
            log.warning("event %s stored during shutdown; rules not applied to it", event.event_id)
            return
        self._on_new_event(event)

    def _send_time(self, device_id: str, link_name: str) -> None:
        """Answer a HELLO with TIME (authenticated for a keyed device): the device gets wall
        time, and a device on a new OTA image confirms it only after hearing from us."""
        if link_name not in self._links:
            return
        try:
            self._links.send(link_name, self._ingress.downlink(device_id, MsgType.TIME,
                                                               Time(int(self._clock.time()))))
            self._stats["time_sent"] += 1
        except (ValueError, OSError) as exc:
            log.warning("TIME to %s on %s not sent: %s", device_id, link_name, exc)


class DeviceFeedback:
    """Platform ack / escalation of a device's alarm → FEEDBACK frame to that device."""

    def __init__(self, *, gateway_id: str, ingress: Ingress, links: LinkTable, stats: dict[str, int]) -> None:
        self._gateway_id = gateway_id
        self._ingress = ingress
        self._links = links
        self._stats = stats

    def on_platform_ack(self, event_id: str, status: AckStatus, event: Event | None) -> None:
        state = {AckStatus.RECEIVED: FeedbackState.RECEIVED, AckStatus.ACCEPTED: FeedbackState.ACCEPTED}.get(status)
        if state is not None and event is not None:
            self._feedback(event, state)

    def on_alarm_escalated(self, event: Event, step: int) -> None:
        self._feedback(event, FeedbackState.DELIVERY_FAILING)

    def _feedback(self, event: Event, state: FeedbackState) -> None:
        if event.seq is None or event.device_id == self._gateway_id:
            return
        link = self._ingress.link_for(event.device_id)
        if link is None or link not in self._links:
            return
        self._links.send(link, self._ingress.feedback_frame(event.device_id, event.seq, state))
        self._stats["feedback_sent"] += 1
