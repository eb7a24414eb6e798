"""Sensor OTA relay: one device, one verified bundle, over the device's link (pure; no I/O).

The device side is firmware/lib/ota.py (docs/firmware.md §4)::

    OTA_BEGIN(size, sha256, version, signature) -> ACK, OTA_STATUS 1
    OTA_CHUNK(offset, <=200 bytes), one at a time -> ACK each (a resent chunk is ACKed again)
    OTA_END -> OTA_STATUS 2, ACK, OTA_STATUS 3 (reboots) -> HELLO (new version) ... OTA_STATUS 4

Each frame waits for the device's ACK naming its downlink seq; no ACK within
``ack_timeout_s`` → the same frame again, ``retries`` times, then the transfer fails.
``ERROR 8 "expected offset N, got M"`` resumes at N. Progress goes to ``report(status,
phase, extra)`` with the phases of docs/upgrades.md (``installed``, ``rebooted``,
``committed``); a refusal or an OTA_STATUS failed/rolled back ends it with ``error``.
"""
from __future__ import annotations

import enum
import re
from typing import Any, Callable

from gateway.codec.enums import ErrorCode, OtaState
from gateway.codec.payloads import Ack, Error, OtaBegin, OtaChunk, OtaEnd, OtaStatus, Payload
from gateway.domain.ports import Clock

MAX_CHUNK = 200
_EXPECTED = re.compile(r"expected offset (\d+)")

Send = Callable[[Payload], int]                          # -> the downlink seq used
Report = Callable[[str, str, dict[str, Any]], None]      # (status, phase, extra)


class OtaStep(enum.Enum):
    SENDING = "sending"
    INSTALLED = "installed"      # OTA_END accepted; the device reboots into the new slot
    REBOOTED = "rebooted"        # HELLO with the new version; waiting for its self-test
    DONE = "done"
    FAILED = "failed"


class OtaSession:
    def __init__(self, device_id: str, bundle: bytes, version: str, sha256: bytes, signature: bytes,
                 send: Send, report: Report, clock: Clock, *, chunk: int = MAX_CHUNK, ack_timeout_s: float = 3.0,
                 retries: int = 5, commit_timeout_s: float = 600.0) -> None:
        if not 1 <= chunk <= MAX_CHUNK:
            raise ValueError(f"chunk must be 1..{MAX_CHUNK} bytes")
        self.device_id = device_id
        self.version = version
        self._bundle = bundle
        self._sha = sha256
        self._sig = signature if len(signature) == 64 else b""
        self._send = send
        self._report = report
        self._clock = clock
        self._chunk = chunk
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.commit_timeout_s = commit_timeout_s
        self.step = OtaStep.SENDING
        self._offset: int | None = None      # None: OTA_BEGIN; len(bundle): OTA_END
        self._await_seq: int | None = None
        self._sent_at = 0.0
        self._tries = 0
        self._phase_at = 0.0
        self.frames_sent = 0
        self.resends = 0

    @property
    def finished(self) -> bool:
        return self.step in (OtaStep.DONE, OtaStep.FAILED)

    def start(self) -> None:
        self._phase_at = self._clock.monotonic()
        self._offset = None
        self._transmit(new=True)

    # ---- frames ---------------------------------------------------------------------------
    def _payload(self) -> Payload:
        if self._offset is None:
            return OtaBegin(len(self._bundle), self._sha, self.version, self._sig)
        if self._offset >= len(self._bundle):
            return OtaEnd()
        return OtaChunk(self._offset, self._bundle[self._offset:self._offset + self._chunk])

    def _transmit(self, new: bool) -> None:
        if new:
            self._tries = 0
        else:
            self._tries += 1
            self.resends += 1
        self._await_seq = self._send(self._payload())
        self._sent_at = self._clock.monotonic()
        self.frames_sent += 1

    def _advance(self) -> None:
        if self._offset is None:
            self._offset = 0
        elif self._offset >= len(self._bundle):
            self._await_seq = None          # OTA_END ACKed: the device reports OTA_STATUS 3
            return
        else:
            self._offset = min(self._offset + self._chunk, len(self._bundle))
        self._transmit(new=True)

    # ---- device messages --------------------------------------------------------------------
    def on_payload(self, payload: Payload) -> None:
        """An accepted uplink frame of this device (ACK, ERROR, OTA_STATUS)."""
        if self.finished:
            return
        if isinstance(payload, Ack):
            if self._await_seq is not None and payload.acked_seq == self._await_seq:
                self._advance()
        elif isinstance(payload, Error):
            self._on_error(payload)
        elif isinstance(payload, OtaStatus):
            self._on_status(payload)

    def on_hello(self, fw_version: str | None) -> None:
        """The device (re)booted. With the new version after the transfer: ``rebooted``."""
        if self.step is OtaStep.INSTALLED and fw_version == self.version:
            self.step = OtaStep.REBOOTED
            self._phase_at = self._clock.monotonic()
            self._report("progress", "rebooted", {})

    def _on_error(self, err: Error) -> None:
        if self.step is not OtaStep.SENDING:
            return
        m = _EXPECTED.search(err.msg) if err.code == ErrorCode.OTA_OUT_OF_ORDER else None
        if m is not None and self._offset is not None:
            self._offset = min(int(m.group(1)), len(self._bundle))    # the device says where to resume
            self._transmit(new=True)
            return
        code = err.code.name.lower() if isinstance(err.code, ErrorCode) else str(err.code)
        self._fail("install", f"device refused the update: ERROR {int(err.code)} {code} {err.msg!r}")

    def _on_status(self, st: OtaStatus) -> None:
        state = st.state
        if state == OtaState.COMMITTED:
            already = self.step is OtaStep.SENDING and self._offset is None
            self.step = OtaStep.DONE
            self._report("ok", "committed", {"already": True} if already else {})
        elif state == OtaState.PENDING_REBOOT and self.step is OtaStep.SENDING and self._offset is not None:
            self.step = OtaStep.INSTALLED
            self._await_seq = None
            self._phase_at = self._clock.monotonic()
            self._report("progress", "installed", {})
        elif state == OtaState.ROLLED_BACK:
            self._fail("commit", "the new firmware failed its self-test; the device rolled back to the old image")
        elif state == OtaState.FAILED and self.step is OtaStep.SENDING:
            self._fail("install", "the device rejected the image (OTA_STATUS failed); it keeps the old image")

    def _fail(self, phase: str, message: str) -> None:
        self.step = OtaStep.FAILED
        self._await_seq = None
        self._report("error", phase, {"error": message, "rolled_back": True})

    # ---- time ---------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.finished:
            return
        now = self._clock.monotonic()
        if self.step is OtaStep.SENDING and self._await_seq is not None:
            if now - self._sent_at < self.ack_timeout_s:
                return
            if self._tries >= self.retries:
                what = ("OTA_BEGIN" if self._offset is None else
                        "OTA_END" if self._offset >= len(self._bundle) else f"OTA_CHUNK at {self._offset}")
                self._fail("install", f"no ACK for {what} after {self.retries + 1} tries "
                                      f"({self.ack_timeout_s:g} s each); is the device on its link?")
                return
            self._transmit(new=False)
        elif self.step is not OtaStep.SENDING and now - self._phase_at >= self.commit_timeout_s:
            phase = "reboot" if self.step is OtaStep.INSTALLED else "commit"
            self._fail(phase, f"no {'HELLO with ' + self.version if phase == 'reboot' else 'commit'} from the "
                              f"device within {self.commit_timeout_s:g} s")
