"""Ingress: link bytes, BTHome adverts and GATT health values -> domain events.

Pure domain (no I/O libraries). The daemon feeds it from its transports and acts on the
returned :class:`IngressResult`:

- ``events`` go to ``EventSink.submit``; the device is ACKed (``ack_frame``) only from
  ``on_stored`` — never before the event is durable;
- ``replies`` are sent at once on the named link (``ACK DUPLICATE`` for a retransmit that
  is already journaled, ``ERROR`` for an authenticated frame with a bad payload);
- ``device_updates`` feed the device registry (any valid frame or advert means "seen");
- ``rejects`` were already counted and logged (rate-limited) here.

Security rules (docs/protocol.md §1 "Authentication and replay protection", §3):

- a device with a key must authenticate every uplink frame (``unauthenticated`` /
  ``bad_auth`` otherwise) and must encrypt its adverts;
- a device without a key may send telemetry; its alarms are accepted only with
  ``allow_unencrypted_alarms``;
- replay windows (64-entry, per device and channel) are persisted in the journal state
  after every accepted frame, so a restart does not reopen old sequence numbers. In the
  daemon this is the journal writer's queued ``set_state``: the event loop does not wait
  for the fsync, and because the write is queued BEFORE the frame's event is appended
  (same FIFO writer), it is committed in the same transaction as the event or an earlier
  one — so when ``on_stored`` lets the device be ACKed, the window is durable too;
- an EVENT whose seq the window has already seen is answered ``ACK DUPLICATE`` if the
  journal has it, ignored while its first copy is still being stored, and re-emitted
  (same event id; the journal de-duplicates) if it was seen but never stored, e.g. the
  gateway crashed between the window update and the journal commit. Anything else
  already seen is a ``replay``; an EVENT or HELLO below the window that is not in the
  journal is answered ``ERROR 3 "seq=S highest=H"`` so the device renumbers above ``H``;
- replay state is bound to the device's key (fingerprint in ``replay_key/<dev>``): after
  a re-key the frame window's seqs up to the old highest (the *floor*) stay refused and
  are always answered ERROR 3 (never DUPLICATE: they were other events, under the old
  key), the BTHome window starts empty (docs/protocol.md "Re-keying and re-flashing").
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import struct
from typing import Any, Collection, Mapping

from gateway.codec import bthome
from gateway.codec._result import CodecError, RejectCounters, Rejection
from gateway.codec.auth import KEY_LEN, ReplayWindow
from gateway.codec.bthome import Advert, advert_events, decode_advert
from gateway.codec.enums import AckStatus, ErrorCode, FeedbackState, MsgType, RejectReason
from gateway.codec.events import EventPayload
from gateway.codec.frame import Frame, encode_frame, normalise_device_id
from gateway.codec.gatt import decode_gatt
from gateway.codec.payloads import Ack, Error, Feedback, Heartbeat, Hello, Payload
from gateway.codec.stream import StreamDecoder
from gateway.domain.device_seqs import DOWNLINK_SEQ_BLOCK, DeviceSeqs
from gateway.domain.model import Event, EventCode, Role, is_alarm
from gateway.domain.ingress_types import DeviceUpdate, IngressResult, IngressStore, RejectLog, UplinkMessage
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.domain.ingress")


__all__ = ["BLE_LINK", "DOWNLINK_SEQ_BLOCK", "SYNTHETIC_SEQ_BASE", "Ingress", "IngressResult", "RejectLog"]
SYNTHETIC_SEQ_BASE = 0x80000000  # event ids of unencrypted adverts / GATT values: top bit set
BLE_LINK = "ble"

_ERROR_FOR: dict[RejectReason, ErrorCode] = {
    RejectReason.BAD_PAYLOAD: ErrorCode.BAD_PAYLOAD,
    RejectReason.UNKNOWN_CODE: ErrorCode.BAD_PAYLOAD,
}


class Ingress:
    def __init__(self, gateway_id: str, keys: Mapping[str, bytes], journal: IngressStore, clock: Clock,
                 counters: RejectCounters | None = None, allow_unencrypted_alarms: bool = False,
                 known_devices: Collection[str] | None = None, *, log_interval_s: float = 60.0,
                 repeat_window_s: float = 30.0, pending_timeout_s: float = 30.0) -> None:
        self.gateway_id = gateway_id
        self._keys: dict[str, bytes] = {}
        for dev, key in keys.items():
            if len(key) != KEY_LEN:
                raise CodecError(f"key for device {dev} is {len(key)} bytes; device keys are {KEY_LEN} bytes (32 hex digits)",
                                 field=f"keys.{dev}", value=len(key))
            self._keys[normalise_device_id(dev)] = bytes(key)
        self._journal = journal
        self._clock = clock
        self.counters = counters if counters is not None else RejectCounters()
        self.allow_unencrypted_alarms = allow_unencrypted_alarms
        self._known = None if known_devices is None else {normalise_device_id(d) for d in known_devices}
        self._reject_log = RejectLog(clock, log_interval_s)
        self._repeat_window_s = repeat_window_s
        self._pending_timeout_s = pending_timeout_s
        self._decoders: dict[str, StreamDecoder] = {}
        self._windows: dict[tuple[str, str], ReplayWindow] = {}
        self._floors: dict[str, int] = {}
        self._roles: dict[str, Role] = {}
        self._links: dict[str, str] = {}
        self._pending: dict[str, float] = {}
        self._recent_counters: dict[tuple[str, int], float] = {}
        self._recent_plain: dict[str, tuple[bytes, float]] = {}
        self._seqs = DeviceSeqs(journal, clock, self._keys.__contains__)   # downlink seqs, durable marks (F13)
        self.duplicates = 0
        self.window_persist_failures = 0

    # ------------------------------------------------------------------ public API

    def feed(self, link_name: str, data: bytes) -> IngressResult:
        """Bytes received on a serial / GATT-frame link (any chunking)."""
        result = IngressResult()
        decoder = self._decoders.setdefault(link_name, StreamDecoder())
        for item in decoder.feed(data):
            if isinstance(item, Rejection):
                self._reject(result, item, link_name)
                continue
            try:
                self._frame(link_name, item, result)
            except Exception:  # noqa: BLE001 - one bad frame must never stop the link
                log.exception("ingress failed on a frame from %s on %s", item.device_id, link_name)
                self._reject(result, Rejection(RejectReason.BAD_PAYLOAD, "internal error (logged)", item.device_id), link_name)
        return result

    def advert(self, mac: str, service_data: bytes, rssi: int | None) -> IngressResult:
        """BTHome v2 service data (UUID 0xFCD2) of one advertisement report."""
        result = IngressResult()
        try:
            self._advert(mac, bytes(service_data), rssi, result)
        except Exception:  # noqa: BLE001
            log.exception("ingress failed on an advert from %s", mac)
            self._reject(result, Rejection(RejectReason.BAD_PAYLOAD, "internal error (logged)"), BLE_LINK)
        return result

    on_ble_advert = advert  # the BLE transport's callback name

    def gatt_measurement(self, mac: str, uuid16: int, data: bytes) -> IngressResult:
        """One notified/indicated value of a GATT health characteristic -> a ``measurement`` event."""
        result = IngressResult()
        device = self._device(mac, result, BLE_LINK)
        if device is None:
            return result
        reading = decode_gatt(uuid16, data)
        if isinstance(reading, Rejection):
            self._reject(result, Rejection(reading.reason, reading.detail, device), BLE_LINK)
            return result
        now = self._clock.time()
        seq = self._synthetic_seq(device)
        role = self._roles.get(device, Role.HEALTH)
        result.events.append(Event(f"{device}-{seq:08x}", device, EventCode.MEASUREMENT, now, now, role, seq,
                                   reading.to_json()))
        result.device_updates.append(DeviceUpdate(device, now, BLE_LINK, role=role))
        return result

    on_gatt_measurement = gatt_measurement

    def ack_frame(self, event: Event, duplicate: bool = False) -> bytes:
        """Encoded, COBS-framed downlink ACK for a stored event (call from ``on_stored``)."""
        if event.seq is None:
            raise CodecError(f"event {event.event_id} has no device seq to acknowledge", field="seq", value=None)
        self._pending.pop(event.event_id, None)
        status = AckStatus.DUPLICATE if duplicate else AckStatus.STORED
        return self.downlink(event.device_id, MsgType.ACK, Ack(event.seq, status))

    def feedback_frame(self, device_id: str, ref_seq: int, state: FeedbackState | int) -> bytes:
        return self.downlink(device_id, MsgType.FEEDBACK, Feedback(ref_seq, FeedbackState(state)))

    def downlink(self, device_id: str, msg_type: MsgType, payload: bytes | Payload) -> bytes:
        """Any gateway -> device frame: DOWNLINK flag, next persisted downlink seq, AUTH if keyed."""
        return self.downlink_with_seq(device_id, msg_type, payload)[1]

    def downlink_with_seq(self, device_id: str, msg_type: MsgType, payload: bytes | Payload) -> tuple[int, bytes]:
        """:meth:`downlink` and the seq it used (what the device's ACK or ERROR will name)."""
        device = normalise_device_id(device_id)
        seq = self._seqs.next(device)
        return seq, encode_frame(msg_type, device, seq, payload, key=self._keys.get(device), downlink=True)

    def link_for(self, device_id: str) -> str | None:
        """The link a device was last heard on (where to send its downlinks)."""
        return self._links.get(normalise_device_id(device_id))

    def forget_link(self, link_name: str) -> None:
        """Drop a link's partial frame (e.g. on disconnect)."""
        self._decoders.pop(link_name, None)

    # ------------------------------------------------------------------ frames

    def _frame(self, link: str, frame: Frame, result: IngressResult) -> None:
        device = frame.device_id
        if frame.downlink:
            self._reject(result, Rejection(RejectReason.DIRECTION, f"{frame.type.name} with the DOWNLINK flag arrived from a device", device), link)
            return
        if self._known is not None and device not in self._known:
            self._reject(result, Rejection(RejectReason.UNKNOWN_DEVICE, "device id is not in this gateway's configuration", device), link)
            return
        key = self._keys.get(device)
        if key is not None and not frame.authenticated:
            self._reject(result, Rejection(RejectReason.UNAUTHENTICATED, f"{frame.type.name} without AUTH from a device that has a key", device), link)
            return
        if key is not None and not frame.verify(key):
            self._reject(result, Rejection(RejectReason.BAD_AUTH, f"{frame.type.name} seq {frame.seq}: tag does not verify", device), link)
            return
        if key is None and frame.authenticated:
            self._reject(result, Rejection(RejectReason.BAD_AUTH, "AUTH set but this gateway has no key for the device; pair it (fleet) first", device), link)
            return
        self._seqs.load(device)   # downlink seq block queued before any event of this frame
        payload = frame.decode_payload()
        window = self._window(device, "frame")
        now = self._clock.time()
        if isinstance(payload, Rejection):
            rej = Rejection(payload.reason, payload.detail, device)
            self._reject(result, rej, link)
            if window.check(frame.seq):
                self._accept_seq(device, "frame", window, frame.seq)
                self._links[device] = link
                code = _ERROR_FOR.get(payload.reason, ErrorCode.BAD_PAYLOAD)
                result.replies.append((link, self.downlink(device, MsgType.ERROR, Error(code, payload.detail.encode()[:64].decode("utf-8", "ignore")))))
            return
        if isinstance(payload, EventPayload):
            if not frame.authenticated and is_alarm(payload.code) and not self.allow_unencrypted_alarms:
                self._reject(result, Rejection(RejectReason.UNAUTHENTICATED,
                             f"unauthenticated {payload.code.type_name} alarm; provision a key or set allow_unencrypted_alarms", device), link)
                return
            self._event_frame(link, frame, payload, window, now, result)
            return
        if not window.check(frame.seq):
            self._reject(result, Rejection(RejectReason.REPLAY, f"{frame.type.name} seq {frame.seq} already seen or older than the window (highest {window.highest})", device), link)
            if isinstance(payload, Hello):   # a device that restarted its counter learns the floor
                self._replay_error(link, device, frame.seq, window, result)
            return
        self._accept_seq(device, "frame", window, frame.seq)
        self._links[device] = link
        result.device_updates.append(self._update_from(device, now, link, payload))
        if not isinstance(payload, (Heartbeat, Hello)):
            result.messages.append(UplinkMessage(link, device, frame.seq, payload))

    def _event_frame(self, link: str, frame: Frame, payload: EventPayload, window: ReplayWindow, now: float,
                     result: IngressResult) -> None:
        device = frame.device_id
        event_id = f"{device}-{frame.seq:08x}"
        if not window.check(frame.seq):
            if frame.seq <= self._floors.get(device, 0):   # an id of the old key's events: renumber
                self._reject(result, Rejection(RejectReason.REPLAY, f"EVENT seq {frame.seq} is at or below the re-key floor", device), link)
                self._replay_error(link, device, frame.seq, window, result)
                return
            if self._journal.contains(event_id):
                self.duplicates += 1
                self._links[device] = link
                result.replies.append((link, self.downlink(device, MsgType.ACK, Ack(frame.seq, AckStatus.DUPLICATE))))
                result.device_updates.append(DeviceUpdate(device, now, link, role=self._roles.get(device)))
                return
            pending_since = self._pending.get(event_id)
            if pending_since is not None and self._clock.monotonic() - pending_since < self._pending_timeout_s:
                # first copy still on its way to the journal; its ACK will follow
                result.device_updates.append(DeviceUpdate(device, now, link, role=self._roles.get(device)))
                return
            if not window.seen(frame.seq):
                self._reject(result, Rejection(RejectReason.REPLAY, f"EVENT seq {frame.seq} is older than the window (highest {window.highest})", device), link)
                self._replay_error(link, device, frame.seq, window, result)
                return
            log.warning("re-emitting %s: seen by the replay window but not in the journal", event_id)
        else:
            self._accept_seq(device, "frame", window, frame.seq)
        self._links[device] = link
        age_s = (payload.age_ms or 0) / 1000.0
        role = self._roles.get(device)
        event = Event(event_id, device, payload.code, now - age_s, now, role, frame.seq, dict(payload.data))
        self._pending[event_id] = self._clock.monotonic()
        self._expire_pending()
        result.events.append(event)
        result.event_links[event_id] = link
        result.device_updates.append(DeviceUpdate(device, now, link, role=role))

    def _update_from(self, device: str, now: float, link: str, payload: Payload) -> DeviceUpdate:
        if isinstance(payload, Heartbeat):
            return DeviceUpdate(device, now, link, role=self._roles.get(device), battery_pct=payload.battery_pct,
                                battery_mv=payload.battery_mv, power_flags=int(payload.power_flags), rssi=payload.rssi,
                                queue_depth=payload.queue_depth, device_rejects=payload.rejects, uptime_s=payload.uptime_s)
        if isinstance(payload, Hello):
            role = payload.role if isinstance(payload.role, Role) else None
            if role is not None:
                self._roles[device] = role
            return DeviceUpdate(device, now, link, role=role, fw_version=payload.fw_version,
                                reset_cause=int(payload.reset_cause), config_version=payload.config_version)
        return DeviceUpdate(device, now, link, role=self._roles.get(device))

    # ------------------------------------------------------------------ adverts

    def _advert(self, mac: str, data: bytes, rssi: int | None, result: IngressResult) -> None:
        if len(data) >= 7 and data[0] & bthome.INFO_MAC_INCLUDED:
            mac = bytes(reversed(data[1:7])).hex()  # the advertiser's identity address (it may advertise a random one)
        device = self._device(mac, result, BLE_LINK)
        if device is None:
            return
        key = self._keys.get(device)
        if key is not None and data and not data[0] & bthome.INFO_ENCRYPTED:
            self._reject(result, Rejection(RejectReason.UNAUTHENTICATED, "unencrypted advert from a device that has a key", device), BLE_LINK)
            return
        adv = decode_advert(data, mac=device, key=key)
        if isinstance(adv, Rejection):
            self._reject(result, Rejection(adv.reason, adv.detail, device), BLE_LINK)
            return
        now = self._clock.time()
        mono = self._clock.monotonic()
        if adv.encrypted:
            assert adv.counter is not None
            window = self._window(device, "bthome")
            if not window.check(adv.counter):
                seen_at = self._recent_counters.get((device, adv.counter))
                if seen_at is not None and mono - seen_at < self._repeat_window_s:
                    self._reject(result, Rejection(RejectReason.REPEAT, f"counter {adv.counter} repeated", device), BLE_LINK)
                else:
                    self._reject(result, Rejection(RejectReason.REPLAY, f"advert counter {adv.counter} already seen (highest {window.highest})", device), BLE_LINK)
                return
            self._accept_seq(device, "bthome", window, adv.counter)
            self._recent_counters[(device, adv.counter)] = mono
            self._expire_recent(mono)
        else:
            last = self._recent_plain.get(device)
            if last is not None and last[0] == data and mono - last[1] < self._repeat_window_s:
                self._reject(result, Rejection(RejectReason.REPEAT, "identical unencrypted advert repeated", device), BLE_LINK)
                return
            if len(self._recent_plain) >= 4096:  # neighbours' sensors: keep the table bounded
                self._recent_plain = {d: v for d, v in self._recent_plain.items() if mono - v[1] < self._repeat_window_s}
            self._recent_plain[device] = (data, mono)
        update = self._advert_update(device, now, adv, rssi)
        result.device_updates.append(update)
        mapped = advert_events(adv)
        for rej in mapped.rejects:
            self._reject(result, Rejection(rej.reason, rej.detail, device), BLE_LINK)
        role = update.role or self._roles.get(device)
        for i, ev in enumerate(mapped.events):
            if not adv.encrypted and is_alarm(ev.code) and not self.allow_unencrypted_alarms:
                self._reject(result, Rejection(RejectReason.UNAUTHENTICATED,
                             f"unencrypted {ev.code.type_name} alarm advert; use BTHome encryption or set allow_unencrypted_alarms", device), BLE_LINK)
                continue
            if adv.encrypted:
                seq = adv.counter
                event_id = f"{device}-{seq:08x}" + (f"-{i}" if i else "")
            else:
                seq = self._synthetic_seq(device)
                event_id = f"{device}-{seq:08x}"
            result.events.append(Event(event_id, device, ev.code, now, now, role, seq, dict(ev.data)))
            result.event_links[event_id] = BLE_LINK

    def _advert_update(self, device: str, now: float, adv: Advert, rssi: int | None) -> DeviceUpdate:
        role: Role | None = None
        fields: dict[str, Any] = {}
        telemetry: dict[str, Any] = {}
        for obj in adv.objects:
            oid = obj.object_id
            if oid == bthome.BATTERY:
                fields["battery_pct"] = int(obj.raw) if isinstance(obj.raw, int) else None
            elif oid == bthome.VOLTAGE:
                fields["battery_mv"] = int(obj.raw) if isinstance(obj.raw, int) else None
            elif oid == bthome.DEVICE_TYPE and isinstance(obj.raw, int) and obj.raw in Role._value2member_map_:
                role = Role(obj.raw)
                self._roles[device] = role
            elif oid in (bthome.FIRMWARE_U24, bthome.FIRMWARE_U32):
                fields["fw_version"] = obj.value
            elif oid not in (bthome.PACKET_ID, bthome.RAW, bthome.BUTTON):
                telemetry[obj.name] = obj.value.hex() if isinstance(obj.value, bytes) else obj.value
        return DeviceUpdate(device, now, BLE_LINK, role=role or self._roles.get(device), rssi=rssi,
                            telemetry=telemetry, **fields)

    # ------------------------------------------------------------------ helpers

    def _device(self, mac: str, result: IngressResult, link: str) -> str | None:
        try:
            device = normalise_device_id(mac)
        except ValueError:
            self._reject(result, Rejection(RejectReason.BAD_PAYLOAD, f"device address {mac!r} is not 6 hex bytes"), link)
            return None
        if self._known is not None and device not in self._known:
            self._reject(result, Rejection(RejectReason.UNKNOWN_DEVICE, "device id is not in this gateway's configuration", device), link)
            return None
        return device

    def _reject(self, result: IngressResult, rejection: Rejection, source: str) -> None:
        self.counters.count(rejection)
        self._reject_log(rejection, source)
        result.rejects.append(rejection)

    def _replay_error(self, link: str, device: str, seq: int, window: ReplayWindow, result: IngressResult) -> None:
        self._links[device] = link
        msg = f"seq={seq} highest={window.highest}"
        result.replies.append((link, self.downlink(device, MsgType.ERROR, Error(ErrorCode.REPLAY, msg))))

    def _bind_key(self, device: str) -> None:
        """Once per device: is the stored replay state from this key? If not (re-keyed), the
        frame window becomes "all seen up to the old highest" (the floor) and the BTHome
        window starts empty; then the key's fingerprint and the floor are stored."""
        key = self._keys.get(device)
        fp = hmac.new(key, b"wt replay window", hashlib.sha256).digest()[:8] if key else bytes(8)
        blob = self._journal.get_state(f"replay_key/{device}")
        floor = 0
        if blob is not None and len(blob) == 12 and blob[:8] == fp:
            self._floors[device] = struct.unpack("<I", blob[8:])[0]
            return
        if blob is not None:
            old = self._journal.get_state(f"replay/frame/{device}")
            w = ReplayWindow.from_bytes(old) if old is not None else None
            floor = w.highest if isinstance(w, ReplayWindow) else 0
            self._windows[(device, "frame")] = ReplayWindow(floor, (1 << min(floor, 64)) - 1)
            self._windows[(device, "bthome")] = ReplayWindow()
            log.warning("device %s has a new key: replay windows reset (frame seqs up to %d stay refused)", device, floor)
        elif (floor := self._seqs.recovered_floor(device)):   # the journal was lost (F13)
            self._windows[(device, "frame")] = ReplayWindow(floor, (1 << min(floor, 64)) - 1)
            log.warning("device %s: replay state lost with the journal; frame seqs up to %d stay refused", device, floor)
        try:
            for (dev, channel), w in self._windows.items():
                if dev == device:
                    self._journal.set_state(f"replay/{channel}/{device}", w.to_bytes())
            self._journal.set_state(f"replay_key/{device}", fp + struct.pack("<I", floor))
        except Exception as exc:  # noqa: BLE001 - the Journal port's failure: as in _accept_seq
            log.error("replay key binding of %s not persisted: %s", device, exc)
        self._floors[device] = floor

    def _window(self, device: str, channel: str) -> ReplayWindow:
        window = self._windows.get((device, channel))
        if window is not None:
            return window
        if device not in self._floors:
            self._bind_key(device)   # (a re-key seeds the windows)
            if (device, channel) in self._windows:
                return self._windows[(device, channel)]
        blob = self._journal.get_state(f"replay/{channel}/{device}")
        loaded: ReplayWindow | Rejection = ReplayWindow() if blob is None else ReplayWindow.from_bytes(blob)
        if isinstance(loaded, Rejection):
            log.error("replay window state of %s (%s) unreadable (%s); starting a fresh window", device, channel, loaded.detail)
            loaded = ReplayWindow()
        self._windows[(device, channel)] = loaded
        return loaded

    def _accept_seq(self, device: str, channel: str, window: ReplayWindow, seq: int) -> None:
        if window.accept(seq):
            if channel == "frame":
                self._seqs.note_uplink(device, seq)
            # Queued (JournalWriter) before the caller submits the event's append: FIFO, so
            # durable no later than the event whose commit releases the device ACK.
            try:
                self._journal.set_state(f"replay/{channel}/{device}", window.to_bytes())
            except Exception as exc:  # noqa: BLE001 - the Journal port's failure (disk broken or full)
                # Keep accepting: refusing here would stop every alarm of framed devices while
                # the disk is broken, although the forwarder can still publish them (held in
                # memory). The cost: after a restart the on-disk window is older, and a replayed
                # frame would carry an event id the platform already has (it de-duplicates).
                self.window_persist_failures += 1
                log.error("replay window of %s (%s) not persisted: %s; frames are still accepted",
                          device, channel, exc)

    def _synthetic_seq(self, device: str) -> int:
        key = f"synthetic_seq/{device}"
        blob = self._journal.get_state(key)
        seq = struct.unpack("<I", blob)[0] if blob is not None and len(blob) == 4 else SYNTHETIC_SEQ_BASE
        seq = seq + 1 if seq < 0xFFFFFFFF else SYNTHETIC_SEQ_BASE + 1
        self._journal.set_state(key, struct.pack("<I", seq))
        return seq

    def _expire_pending(self) -> None:
        if len(self._pending) < 1024:
            return
        cutoff = self._clock.monotonic() - self._pending_timeout_s
        for eid in [e for e, t in self._pending.items() if t < cutoff]:
            del self._pending[eid]

    def _expire_recent(self, mono: float) -> None:
        if len(self._recent_counters) < 1024:
            return
        for k in [k for k, t in self._recent_counters.items() if mono - t >= self._repeat_window_s]:
            del self._recent_counters[k]
