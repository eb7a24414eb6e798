"""Technical rules: device supervision, low battery, mains power, uplink, BLE receiver.

Durations (supervision silence, mains debounce, uplink-lost threshold, the ``down_s`` /
``silent_s`` they report) are measured on ``clock.monotonic()``; the alarms' timestamps are
wall time (gateway/domain/rules/_base.py, "Time").
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from gateway.config import BatteryRule
from gateway.domain.devices import DeviceRegistry
from gateway.adapters.mains import MainsInput, MainsState
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import Clock
from gateway.domain.rules._base import Raised


class SupervisionRule:
    """No frame or advert from a supervised device for its ``silent_after_s`` →
    DEVICE_SILENT (technical); the next sign of life → DEVICE_RECOVERED.

    A device never seen since the gateway started counts from the start time. Detection
    latency is ``silent_after_s`` + at most one tick. Quiet time is measured on the
    monotonic clock (a wall-clock step must not make every device look silent).
    """

    name = "supervision"

    def __init__(self, registry: DeviceRegistry, clock: Clock) -> None:
        self.registry = registry
        self.clock = clock
        self._silent_mono: dict[str, float] = {}     # device -> monotonic time it was found silent

    def on_event(self, event: Event) -> Iterable[Raised]:
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        mono = self.clock.monotonic()
        out = []
        for st in self.registry:
            if not st.supervised:
                continue
            limit = self.registry.silent_after_s(st)
            ref = st.last_seen_mono if st.last_seen_mono is not None else self.registry.started_at
            quiet = mono - ref
            if not st.silent and quiet >= limit:
                st.silent = True
                st.silent_since = now
                self._silent_mono[st.device_id] = mono
                out.append(Raised(EventCode.DEVICE_SILENT, st.device_id, now, {
                    "last_seen": st.last_seen, "silent_for_s": round(quiet, 1), "limit_s": limit}, st.role))
            elif st.silent and quiet < limit:
                since = self._silent_mono.pop(st.device_id, None)
                if since is not None:
                    silent_s = mono - since
                else:     # found silent before this rule was built (a re-bootstrap): the wall stamp is all there is
                    silent_s = max(0.0, now - st.silent_since) if st.silent_since is not None else 0.0
                st.silent = False
                st.silent_since = None
                out.append(Raised(EventCode.DEVICE_RECOVERED, st.device_id, now, {
                    "last_seen": st.last_seen, "silent_s": round(silent_s, 1)}, st.role))
        return out


class LowBatteryRule:
    """Battery reported (heartbeat / advert) below ``low_pct`` → LOW_BATTERY (technical),
    once until it rises above ``rearm_pct``. The device's own ``low_battery`` event counts
    as the alarm (no second one)."""

    name = "battery"

    def __init__(self, cfg: BatteryRule, registry: DeviceRegistry) -> None:
        self.cfg = cfg
        self.registry = registry
        self._alarmed: set[str] = set()

    def on_event(self, event: Event) -> Iterable[Raised]:
        if event.code is EventCode.LOW_BATTERY:
            self._alarmed.add(event.device_id)
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        out = []
        for st in self.registry:
            pct = st.battery_pct
            if pct is None:
                continue
            if st.device_id in self._alarmed:
                if pct >= self.cfg.rearm_pct:
                    self._alarmed.discard(st.device_id)
                continue
            if pct < self.cfg.low_pct:
                self._alarmed.add(st.device_id)
                out.append(Raised(EventCode.LOW_BATTERY, st.device_id, now, {
                    "battery_pct": pct, "threshold_pct": self.cfg.low_pct, "source": "gateway"}, st.role))
        return out


class MainsRule:
    """Mains input (GPIO / UPS) OFF for ``debounce_s`` → MAINS_LOST; back ON → MAINS_RESTORED.
    Starting up on battery is reported too; UNKNOWN readings change nothing."""

    name = "mains"

    def __init__(self, gateway_id: str, source: MainsInput, debounce_s: float, clock: Clock) -> None:
        self.gateway_id = gateway_id
        self.source = source
        self.debounce_s = debounce_s
        self.clock = clock
        self.reported: MainsState | None = None
        self._candidate: MainsState | None = None
        self._since = 0.0                        # wall time the candidate state was first read (reported)
        self._since_mono = 0.0
        self._lost_mono: float | None = None

    def on_event(self, event: Event) -> Iterable[Raised]:
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        state = self.source.read()
        if state is MainsState.UNKNOWN:
            return ()
        mono = self.clock.monotonic()
        if state is not self._candidate:
            self._candidate, self._since, self._since_mono = state, now, mono
        if state is self.reported or mono - self._since_mono < self.debounce_s:
            return ()
        previous, self.reported = self.reported, state
        if state is MainsState.OFF:
            self._lost_mono = self._since_mono
            return (Raised(EventCode.MAINS_LOST, self.gateway_id, self._since, {"since": self._since}, Role.GATEWAY),)
        if previous is MainsState.OFF:
            lost = self._lost_mono
            self._lost_mono = None
            return (Raised(EventCode.MAINS_RESTORED, self.gateway_id, self._since,
                           {"down_s": round(self._since_mono - lost, 1) if lost is not None else None},
                           Role.GATEWAY),)
        return ()


class UplinkRule:
    """Uplink not connected for ``lost_after_s`` → UPLINK_LOST; connected again →
    UPLINK_RESTORED (both journaled; the platform receives them once the link is back)."""

    name = "uplink"

    def __init__(self, gateway_id: str, connected: Callable[[], bool], lost_after_s: float, clock: Clock) -> None:
        self.gateway_id = gateway_id
        self.connected = connected
        self.lost_after_s = lost_after_s
        self.clock = clock
        self._down_since: float | None = None      # wall time (reported)
        self._down_mono = 0.0
        self._lost = False

    def on_event(self, event: Event) -> Iterable[Raised]:
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        mono = self.clock.monotonic()
        if self.connected():
            if self._lost:
                down = self._down_mono
                self._lost, self._down_since = False, None
                return (Raised(EventCode.UPLINK_RESTORED, self.gateway_id, now,
                               {"down_s": round(mono - down, 1)}, Role.GATEWAY),)
            self._down_since = None
            return ()
        if self._down_since is None:
            self._down_since, self._down_mono = now, mono
        if not self._lost and mono - self._down_mono >= self.lost_after_s:
            self._lost = True
            return (Raised(EventCode.UPLINK_LOST, self.gateway_id, self._down_since,
                           {"since": self._down_since}, Role.GATEWAY),)
        return ()


class BleReceiverRule:
    """The BLE watchdog reports ``degraded`` (adapter silent or its calls failing, recovery
    in progress) → BLE_RECEIVER_FAULT (technical) once per episode; not degraded any more →
    BLE_RECEIVER_RESTORED. ``status`` returns the watchdog's status (``degraded``,
    ``last_hang``, ``last_error``, ``scanner_restarts``, ``adapter_power_cycles``) or None
    while BLE is not running."""

    name = "ble_receiver"

    def __init__(self, gateway_id: str, status: Callable[[], Any], clock: Clock) -> None:
        self.gateway_id = gateway_id
        self.status = status
        self.clock = clock
        self._since: float | None = None      # monotonic start of the episode

    def on_event(self, event: Event) -> Iterable[Raised]:
        return ()

    def tick(self, now: float) -> Iterable[Raised]:
        st = self.status()
        degraded = bool(st is not None and st.degraded)
        mono = self.clock.monotonic()
        if degraded and self._since is None:
            self._since = mono
            hang = getattr(st, "last_hang", None)
            return (Raised(EventCode.BLE_RECEIVER_FAULT, self.gateway_id, now, {
                "hang": getattr(hang, "value", hang), "error": getattr(st, "last_error", ""),
                "scanner_restarts": getattr(st, "scanner_restarts", 0),
                "adapter_power_cycles": getattr(st, "adapter_power_cycles", 0)}, Role.GATEWAY),)
        if not degraded and self._since is not None:
            since, self._since = self._since, None
            return (Raised(EventCode.BLE_RECEIVER_RESTORED, self.gateway_id, now,
                           {"down_s": round(mono - since, 1)}, Role.GATEWAY),)
        return ()
