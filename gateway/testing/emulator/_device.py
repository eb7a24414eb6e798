"""Emulated device bases speaking the real protocol (codec encoders/decoders).

``FrameDevice``: a serial / GATT-frame device. Keeps every EVENT in an outbox until an
authenticated downlink ``ACK`` (STORED or DUPLICATE) for its seq arrives, re-sends after
``retry_s`` with the age field updated (as the firmware does), sends HELLO and periodic
HEARTBEAT. ``AdvertDevice``: a BTHome v2 advertiser with AES-CCM encryption and a replay
counter, repeating each event advert a few times.

Both record what they emitted (``emitted``) so the demo and tests can check that every
event reached the platform exactly once in the receiver's view.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.codec import (Ack, AckStatus, Feedback, Heartbeat, Hello, PowerFlag, ResetCause,
                           StreamDecoder, decode_payload, encode_advert, encode_payload_frame)
from gateway.codec.bthome import BATTERY, DEVICE_TYPE, FIRMWARE_U24, PACKET_ID, RAW
from gateway.codec.events import EventPayload, encode_event_data
from gateway.codec.frame import Frame
from gateway.domain.model import EventCode, Role, is_alarm
from gateway.domain.ports import Clock
from gateway.testing.stimuli import event_frame


@dataclass
class Emitted:
    event_id: str
    device_id: str
    code: EventCode
    at: float            # wall clock (the shared injected clock)
    at_mono: float
    acked_at: float | None = None
    ack_status: str | None = None


@dataclass
class _Pending:
    seq: int
    payload: EventPayload
    created_mono: float
    last_sent_mono: float
    attempts: int = 1
    record: Emitted | None = None


class FrameDevice:
    role: Role = Role.BUTTON
    fw_version = "1.0.0"

    def __init__(self, device_id: str, key: bytes, clock: Clock, *, heartbeat_s: float = 30.0,
                 retry_s: float = 2.0, battery_pct: int | None = 90, rssi: int | None = -55,
                 on_emit: Callable[[Emitted], None] | None = None) -> None:
        self.device_id = device_id
        self.key = key
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.retry_s = retry_s
        self.battery_pct = battery_pct
        self.rssi = rssi
        self.on_emit = on_emit
        self.seq = 0
        self.outbox: dict[int, _Pending] = {}
        self.emitted: list[Emitted] = []
        self.feedback: list[tuple[int, int]] = []
        self.acks: list[tuple[int, AckStatus]] = []
        self.rejected_downlinks = 0
        self.write: Callable[[bytes], Any] | None = None
        self._decoder = StreamDecoder()
        self._next_heartbeat = 0.0
        self._booted = clock.monotonic()

    # wiring -------------------------------------------------------------
    def attach(self, link: Any) -> None:
        """Attach to the device side of an EmulatedLink (or anything with device_write)."""
        self.write = link.device_write
        link.on_device_bytes = self.on_bytes

    # protocol -----------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _send(self, wire: bytes) -> None:
        if self.write is not None:
            self.write(wire)

    def hello(self) -> None:
        p = Hello(role=self.role, reset_cause=ResetCause.POWER_ON, config_version=0, fw_version=self.fw_version)
        self._send(encode_payload_frame(p, self.device_id, self._next_seq(), key=self.key))

    def heartbeat(self) -> None:
        now = self.clock.monotonic()
        flags = PowerFlag(0)
        if self.battery_pct is not None and self.battery_pct < 20:
            flags |= PowerFlag.BATTERY_LOW
        p = Heartbeat(battery_pct=self.battery_pct, battery_mv=3000 + 12 * (self.battery_pct or 0),
                      power_flags=flags, uptime_s=int(now - self._booted), queue_depth=len(self.outbox),
                      rejects=self.rejected_downlinks, rssi=self.rssi)
        self._send(encode_payload_frame(p, self.device_id, self._next_seq(), key=self.key))
        self._next_heartbeat = now + self.heartbeat_s

    def emit(self, code: EventCode, data: dict[str, Any] | None = None) -> Emitted:
        seq = self._next_seq()
        now = self.clock.monotonic()
        rec = Emitted(f"{self.device_id}-{seq:08x}", self.device_id, code, self.clock.time(), now)
        pending = _Pending(seq, EventPayload(code, 0, dict(data or {})), now, now, record=rec)
        self.outbox[seq] = pending
        self.emitted.append(rec)
        if self.on_emit is not None:
            self.on_emit(rec)
        self._transmit(pending)
        return rec

    def _transmit(self, p: _Pending) -> None:
        age_ms = int(max(0.0, self.clock.monotonic() - p.created_mono) * 1000)
        self._send(event_frame(p.seq, p.payload.code, device=self.device_id, key=self.key, age_ms=age_ms,
                               data=p.payload.data))

    def tick(self) -> None:
        """Heartbeat when due; re-send events not acknowledged within retry_s (alarms first)."""
        now = self.clock.monotonic()
        if self.heartbeat_s and now >= self._next_heartbeat:
            self.heartbeat()
        due = [p for p in self.outbox.values() if now - p.last_sent_mono >= self.retry_s]
        due.sort(key=lambda p: (not is_alarm(p.payload.code), p.seq))
        for p in due:
            p.attempts += 1
            p.last_sent_mono = now
            self._transmit(p)

    def on_bytes(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if not isinstance(item, Frame) or item.device_id != self.device_id:
                continue
            if not item.downlink or not item.verify(self.key):
                self.rejected_downlinks += 1
                continue
            payload = decode_payload(item.type, item.payload)
            if isinstance(payload, Ack):
                self.acks.append((payload.acked_seq, payload.status))
                if payload.status in (AckStatus.STORED, AckStatus.DUPLICATE):
                    pending = self.outbox.pop(payload.acked_seq, None)
                    if pending is not None and pending.record is not None:
                        pending.record.acked_at = self.clock.time()
                        pending.record.ack_status = payload.status.name.lower()
            elif isinstance(payload, Feedback):
                self.feedback.append((payload.ref_seq, int(payload.state)))


class AdvertDevice:
    """BTHome v2 advertiser (encrypted). Event id of an event advert is ``<mac>-<counter:08x>``."""

    role: Role = Role.DOOR
    fw_version = "1.0.0"

    def __init__(self, device_id: str, key: bytes | None, clock: Clock, *, heartbeat_s: float = 30.0,
                 repeats: int = 3, repeat_gap_s: float = 0.1, battery_pct: int = 90, rssi: int = -65,
                 on_emit: Callable[[Emitted], None] | None = None) -> None:
        self.device_id = device_id
        self.key = key
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.repeats = repeats
        self.repeat_gap_s = repeat_gap_s
        self.battery_pct = battery_pct
        self.rssi = rssi
        self.on_emit = on_emit
        self.counter = 0
        self.emitted: list[Emitted] = []
        self.air: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_heartbeat = 0.0

    def attach(self, air: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.air = air
        self._loop = loop

    def _advert(self, objects: list[tuple[int, Any]]) -> tuple[int, bytes]:
        self.counter += 1
        objs = [(BATTERY, self.battery_pct), (DEVICE_TYPE, int(self.role)), (FIRMWARE_U24, self.fw_version)] + objects
        if self.key is None:
            objs.append((PACKET_ID, self.counter & 0xFF))
            return self.counter, encode_advert(objs)
        return self.counter, encode_advert(objs, key=self.key, mac=self.device_id, counter=self.counter)

    def _air(self, data: bytes, repeats: int) -> None:
        if self.air is None:
            return
        self.air.advertise(self.device_id, data, self.rssi)
        if self._loop is not None:
            for i in range(1, repeats):
                self._loop.call_later(i * self.repeat_gap_s, self.air.advertise, self.device_id, data, self.rssi)

    def heartbeat(self) -> None:
        _, data = self._advert([])
        self._air(data, 1)
        self._next_heartbeat = self.clock.monotonic() + self.heartbeat_s

    def advertise_event(self, code: EventCode, objects: list[tuple[int, Any]]) -> Emitted:
        counter, data = self._advert(objects)
        rec = Emitted(f"{self.device_id}-{counter:08x}", self.device_id, code, self.clock.time(),
                      self.clock.monotonic())
        self.emitted.append(rec)
        if self.on_emit is not None:
            self.on_emit(rec)
        self._air(data, self.repeats)
        return rec

    def advertise_raw_event(self, code: EventCode, data: dict[str, Any] | None = None) -> Emitted:
        blob = bytes([int(code)]) + encode_event_data(code, data or {})
        return self.advertise_event(code, [(RAW, blob)])

    def tick(self) -> None:
        if self.heartbeat_s and self.clock.monotonic() >= self._next_heartbeat:
            self.heartbeat()
