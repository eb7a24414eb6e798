"""Device settings: the gateway configuration's settings for a device, sent to the device
in a CONFIG frame and kept in sync (pure; no I/O).

What a device should hold comes from its table in the gateway configuration
(:data:`SETTINGS`: today ``devices.<id>.placement`` → the fall sensor's ``placement``,
which selects its detector; docs/fall-detection.md). The device side is
firmware/lib/cfgtool.py: a CONFIG set ``(config_version, json)`` is validated strictly,
saved with that version, applied to the role and answered with ACK (the frame's downlink
seq, status STORED) — or ERROR 6 naming the key; CONFIG_GET is answered with a CONFIG
report ``(config_version, json)``; HELLO carries the version of the settings it holds.

The settings version is the CRC-32 of the settings' canonical JSON (sorted keys, no
spaces: what the gateway puts on the wire), never 0 (a device nobody configured reports
0). Equal versions mean the device holds what the configuration says; nothing is sent.

Per device, a small state machine (:class:`SettingsState`)::

    unknown ──HELLO v──────────────► v == ours: synced   else: CONFIG ─► sending
       │    ──any other frame──────► CONFIG_GET ─► querying ──CONFIG report v──► (as HELLO)
       │    ──BLE advert only──────► no_downlink (never configured: no way to send)
    sending ──ACK of that seq──────► synced
            ──ERROR 6──────────────► refused (reason kept; not retried until the settings change)
            ──no answer────────────► the same again after ack_timeout_s × backoff^n, ``retries`` times,
                                      then failed (tried again at the device's next HELLO)
    querying──no answer────────────► as sending (CONFIG_GET again, then failed)
    synced / failed ──HELLO v != ours──► CONFIG (the device was re-flashed, or a new try)

An ACK naming another seq (an event's ACK is the gateway's, not the device's; an OTA
frame's ACK) is ignored; so is an ERROR other than 6 (the timeout re-sends). A change of
the desired settings (:meth:`DeviceSettings.set_desired`) puts the devices whose settings
changed back to ``unknown``: they are queried at their next frame.
"""
from __future__ import annotations

import enum
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.codec.enums import AckStatus, ErrorCode
from gateway.codec.payloads import Ack, Config, ConfigGet, Error, Payload
from gateway.domain.model import Role
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.domain.device_settings")

MAX_SETTINGS_JSON = 240 - 4      # one CONFIG frame: config_version u32 + the JSON


@dataclass(frozen=True)
class Setting:
    """A device setting the gateway configuration carries: ``key`` on the device (its
    firmware schema), ``attr`` of ``devices.<id>`` in the configuration, the roles it
    applies to (a setting for another role is not sent: the firmware would refuse it)."""

    key: str
    attr: str
    roles: tuple[Role, ...]


# to add a setting: a field of DeviceSection (contracts/gateway_config/_schema.py) and a line here
SETTINGS: tuple[Setting, ...] = (
    Setting("placement", "placement", (Role.FALL,)),     # firmware/lib/fall_schema.py
)


def _wire_value(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def desired_settings(devices: Iterable[Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per device id, the settings the configuration gives it (devices with none are left
    out), and a note per setting left out because it does not apply to the device's role.
    ``devices``: the configuration's ``DeviceSection`` items (duck-typed: id, role, attrs)."""
    desired: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for dev in devices:
        role = getattr(dev, "role", None)
        for s in SETTINGS:
            value = getattr(dev, s.attr, None)
            if value is None:
                continue
            if role not in s.roles:
                notes.append(f"devices.{dev.id}.{s.attr} is not sent: it is a setting of "
                             f"{'/'.join(r.name.lower() for r in s.roles)} devices, this one is "
                             f"{role.name.lower() if isinstance(role, Role) else role}")
                continue
            desired.setdefault(dev.id, {})[s.key] = _wire_value(value)
    return desired, notes


def canonical_json(settings: Mapping[str, Any]) -> bytes:
    """The settings as the CONFIG frame carries them (gateway/codec/payloads.py encodes the same way)."""
    return json.dumps(dict(settings), separators=(",", ":"), sort_keys=True).encode()


def settings_version(settings: Mapping[str, Any]) -> int:
    """CRC-32 of the canonical JSON, u32, never 0 (0 = a device nobody configured)."""
    return zlib.crc32(canonical_json(settings)) or 0xFFFFFFFF


class SettingsState(enum.Enum):
    UNKNOWN = "unknown"            # not heard on a downlink-capable link since the start / the change
    NO_DOWNLINK = "no_downlink"    # heard only on BLE adverts: nothing can be sent to it
    QUERYING = "querying"          # CONFIG_GET sent, waiting for the device's CONFIG report
    SENDING = "sending"            # CONFIG sent, waiting for the ACK naming its seq
    SYNCED = "synced"              # the device holds this version
    REFUSED = "refused"            # ERROR 6: not retried until the settings change
    FAILED = "failed"              # no answer after every try: again at the device's next HELLO


_WAITING = (SettingsState.QUERYING, SettingsState.SENDING)

Send = Callable[[str, Payload], "int | None"]     # (device, payload) -> the downlink seq used; None: not sent


@dataclass
class _Device:
    device_id: str
    settings: dict[str, Any]
    version: int
    state: SettingsState = SettingsState.UNKNOWN
    reported_version: int | None = None
    await_seq: int | None = None
    sent_at: float = 0.0
    tries: int = 0                 # re-sends of the frame awaited now
    reason: str | None = None      # why refused / failed
    last_error: str | None = None  # the device's last ERROR other than 6 while we waited
    changed_at: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"state": self.state.value, "settings": dict(self.settings), "version": self.version,
                "reported_version": self.reported_version, "reason": self.reason, "last_error": self.last_error,
                "tries": self.tries, "since_s": round(now - self.changed_at, 1), **self.counts}


COUNTERS = ("sent", "queried", "resent", "acked", "refused", "failed")


class DeviceSettings:
    """The settings of every configured device with settings, kept in sync (module docstring).

    ``send(device, payload)`` builds and sends one downlink (CONFIG or CONFIG_GET) on the
    device's link and returns its downlink seq (None when it could not be sent: it is then
    re-sent like an unanswered one). Call :meth:`heard` for every accepted frame or advert
    of a device, :meth:`on_message` for its ACK / ERROR / CONFIG frames, :meth:`tick`
    periodically."""

    def __init__(self, desired: Mapping[str, Mapping[str, Any]], send: Send, clock: Clock, *,
                 ack_timeout_s: float = 5.0, retries: int = 4, backoff: float = 2.0,
                 max_timeout_s: float = 60.0) -> None:
        self._send = send
        self._clock = clock
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.backoff = backoff
        self.max_timeout_s = max_timeout_s
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._devices: dict[str, _Device] = {}
        self.set_desired(desired)

    # ---- configuration --------------------------------------------------------------------
    def set_desired(self, desired: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """New desired settings: devices whose settings changed go back to ``unknown`` (queried
        at their next frame); devices without settings are forgotten. Returns the changed ids."""
        now = self._clock.monotonic()
        changed = []
        for dev in list(self._devices):
            if dev not in desired:
                del self._devices[dev]
        for dev, settings in desired.items():
            settings = dict(settings)
            version = settings_version(settings)
            d = self._devices.get(dev)
            if d is not None and d.version == version:
                continue
            changed.append(dev)
            if d is None:
                d = self._devices[dev] = _Device(dev, settings, version, changed_at=now)
            else:
                d.settings, d.version = settings, version
                self._set(d, SettingsState.UNKNOWN, now)
            if len(canonical_json(settings)) > MAX_SETTINGS_JSON:
                self._set(d, SettingsState.REFUSED, now,
                          reason=f"gateway: the settings take {len(canonical_json(settings))} bytes, "
                                 f"more than one CONFIG frame holds ({MAX_SETTINGS_JSON})")
        return changed

    def managed(self, device_id: str) -> bool:
        return device_id in self._devices

    def state_of(self, device_id: str) -> SettingsState | None:
        d = self._devices.get(device_id)
        return d.state if d is not None else None

    # ---- what the device tells us ------------------------------------------------------------------
    def heard(self, device_id: str, *, downlink: bool, hello_version: int | None = None) -> None:
        """An accepted frame or advert of the device. ``downlink``: on a link the gateway can
        send on (serial, GATT; not BLE adverts). ``hello_version``: the HELLO's config_version."""
        d = self._devices.get(device_id)
        if d is None:
            return
        now = self._clock.monotonic()
        if not downlink:
            if d.state is SettingsState.UNKNOWN:
                self._set(d, SettingsState.NO_DOWNLINK, now,
                          reason="heard only on BLE adverts: the gateway cannot send to it")
            return
        if hello_version is not None:
            self._reported(d, hello_version, now, hello=True)
        elif d.state in (SettingsState.UNKNOWN, SettingsState.NO_DOWNLINK):
            self._transmit(d, SettingsState.QUERYING, now, new=True)

    def on_message(self, device_id: str, payload: Payload) -> None:
        """An accepted ACK / ERROR / CONFIG frame of the device (others are ignored)."""
        d = self._devices.get(device_id)
        if d is None:
            return
        now = self._clock.monotonic()
        if isinstance(payload, Config):
            self._reported(d, payload.config_version, now, hello=False)
        elif isinstance(payload, Ack):
            if d.state is not SettingsState.SENDING or payload.acked_seq != d.await_seq:
                return
            if payload.status in (AckStatus.STORED, AckStatus.DUPLICATE):
                d.reported_version = d.version
                self._count(d, "acked")
                self._set(d, SettingsState.SYNCED, now)
                log.info("settings of %s in sync: %s (version %08x)", device_id,
                         canonical_json(d.settings).decode(), d.version)
            else:                                    # BUSY / REJECTED: a later try
                d.last_error = f"ACK {payload.status.name}"
        elif isinstance(payload, Error):
            if d.state is not SettingsState.SENDING:
                return
            text = f"ERROR {int(payload.code)} {payload.msg}"
            if payload.code == ErrorCode.BAD_CONFIG:
                self._count(d, "refused")
                self._set(d, SettingsState.REFUSED, now, reason=payload.msg)
                log.warning("device %s refused its settings %s (version %08x): %s; not sent again until the "
                            "configuration changes", device_id, canonical_json(d.settings).decode(), d.version, text)
            else:
                d.last_error = text      # e.g. ERROR 10 (config not saved): the timeout re-sends

    def _reported(self, d: _Device, version: int, now: float, *, hello: bool) -> None:
        d.reported_version = version
        if version == d.version:
            if d.state is not SettingsState.SYNCED:
                self._set(d, SettingsState.SYNCED, now)
            return
        if d.state is SettingsState.REFUSED:
            return                                   # until the settings change
        if d.state is SettingsState.SENDING and not hello:
            return                                   # a report while our CONFIG is on its way
        self._transmit(d, SettingsState.SENDING, now, new=True)

    # ---- sending ----------------------------------------------------------------------------------
    def _transmit(self, d: _Device, state: SettingsState, now: float, *, new: bool) -> None:
        if new:
            d.tries = 0
            d.last_error = None
            self._set(d, state, now)
        else:
            d.tries += 1
            self._count(d, "resent")
        if state is SettingsState.SENDING:
            payload: Payload = Config(d.version, dict(d.settings))
            if new:
                self._count(d, "sent")
        else:
            payload = ConfigGet()
            if new:
                self._count(d, "queried")
        d.await_seq = self._send(d.device_id, payload)
        d.sent_at = now

    def _timeout(self, d: _Device) -> float:
        return min(self.max_timeout_s, self.ack_timeout_s * self.backoff ** d.tries)

    def tick(self) -> None:
        now = self._clock.monotonic()
        for d in list(self._devices.values()):
            if d.state not in _WAITING or now - d.sent_at < self._timeout(d):
                continue
            if d.tries >= self.retries:
                what = "CONFIG" if d.state is SettingsState.SENDING else "CONFIG_GET"
                reason = f"no answer to {what} after {d.tries + 1} tries" + (f" (last: {d.last_error})"
                                                                               if d.last_error else "")
                self._count(d, "failed")
                self._set(d, SettingsState.FAILED, now, reason=reason)
                log.warning("settings of %s not delivered: %s; tried again at its next HELLO", d.device_id, reason)
                continue
            self._transmit(d, d.state, now, new=False)

    # ---- bookkeeping ------------------------------------------------------------------------------
    def _set(self, d: _Device, state: SettingsState, now: float, *, reason: str | None = None) -> None:
        if state is not d.state:
            d.changed_at = now
        d.state = state
        d.reason = reason
        if state not in _WAITING:
            d.await_seq = None

    def _count(self, d: _Device, name: str) -> None:
        d.counts[name] += 1
        self.counters[name] += 1

    def status(self) -> dict[str, Any]:
        """``device_settings`` of the status snapshot: counters and each device's state."""
        now = self._clock.monotonic()
        return {"counters": dict(self.counters),
                "devices": {dev: d.as_dict(now) for dev, d in sorted(self._devices.items())}}
