"""Serial transport (pyserial adapter): UART / USB-serial devices and bench boards.

A reader thread blocks in ``serial.read`` and hands each chunk to the event loop with
``loop.call_soon_threadsafe``; a writer thread drains a bounded queue so ``send`` never
blocks the loop. When the port disappears (USB unplugged, pty closed) both threads notice
the error, the link goes DOWN, and the reader reopens the *path* every ``reconnect_s``
until it is back — a udev symlink that is removed and recreated for a new device node is
followed. Nothing here raises into the daemon: pyserial errors are translated into state
changes and logged.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any

import serial

from gateway.adapters.transports import BytesCallback, LinkState, StateCallback

log = logging.getLogger("gateway.serial")

_READ_TIMEOUT_S = 0.2
_MAX_QUEUED_WRITES = 256


class SerialLink:
    """One serial port. ``name`` is ``serial:<path>``; implements FrameLink.send."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop, on_bytes: BytesCallback, *,
                 baud: int = 115200, reconnect_s: float = 2.0, on_state: StateCallback | None = None,
                 name: str | None = None) -> None:
        self.path = path
        self.name = name or f"serial:{path}"
        self.baud = baud
        self.reconnect_s = reconnect_s
        self._loop = loop
        self._on_bytes = on_bytes
        self._on_state = on_state
        self.state = LinkState.CONNECTING
        self._port: serial.Serial | None = None
        self._port_lock = threading.Lock()
        self._stop = threading.Event()
        self._writes: queue.Queue[bytes | None] = queue.Queue(_MAX_QUEUED_WRITES)
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self.opens = 0
        self.errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped_writes = 0
        self.last_error = ""
        self.up_since: float | None = None

    # ------------------------------------------------------------ public
    def start(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.name}-rx", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"{self.name}-tx", daemon=True)
        self._reader.start()
        self._writer.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        try:
            self._writes.put_nowait(None)
        except queue.Full:
            pass
        self._close()
        for t in (self._reader, self._writer):
            if t is not None:
                t.join(timeout_s)
        self._set_state(LinkState.STOPPED)

    def send(self, data: bytes) -> None:
        """Queue bytes for the device; never blocks. Dropped (and counted) while DOWN or full:
        devices re-send unacknowledged events, so a lost ACK costs a retry, not an event."""
        if self.state is not LinkState.UP:
            self.dropped_writes += 1
            return
        try:
            self._writes.put_nowait(bytes(data))
        except queue.Full:
            self.dropped_writes += 1

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "serial", "path": self.path, "state": self.state.value,
                "opens": self.opens, "errors": self.errors, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "dropped_writes": self.dropped_writes,
                "last_error": self.last_error}

    # ------------------------------------------------------------ threads
    def _open(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.path, self.baud, timeout=_READ_TIMEOUT_S, write_timeout=2.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._error(f"open failed: {exc}", quiet=self.state is LinkState.DOWN)
            return None
        with self._port_lock:
            self._port = port
        self.opens += 1
        self.up_since = time.monotonic()
        log.info("%s: open at %d baud", self.name, self.baud)
        self._set_state(LinkState.UP)
        return port

    def _close(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _lost(self, why: str) -> None:
        self._error(why)
        self._close()
        if not self._stop.is_set():
            self._set_state(LinkState.DOWN)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                if self.state is LinkState.CONNECTING:
                    self._set_state(LinkState.DOWN)
                self._stop.wait(self.reconnect_s)
                continue
            while not self._stop.is_set():
                try:
                    data = port.read(max(1, port.in_waiting))
                except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                    # TypeError/AttributeError: pyserial on a port closed under it by stop()
                    if not self._stop.is_set():
                        self._lost(f"read failed: {exc}")
                    break
                if data:
                    self.bytes_in += len(data)
                    try:
                        self._loop.call_soon_threadsafe(self._on_bytes, self.name, data)
                    except RuntimeError:  # loop closed: we are shutting down
                        return
            if not self._stop.is_set():
                self._stop.wait(self.reconnect_s)

    def _write_loop(self) -> None:
        while True:
            data = self._writes.get()
            if data is None or self._stop.is_set():
                return
            with self._port_lock:
                port = self._port
            if port is None:
                self.dropped_writes += 1
                continue
            try:
                port.write(data)
                port.flush()
                self.bytes_out += len(data)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                self.dropped_writes += 1
                if not self._stop.is_set():
                    self._error(f"write failed: {exc}")

    # ------------------------------------------------------------ helpers
    def _error(self, msg: str, quiet: bool = False) -> None:
        self.errors += 1
        self.last_error = msg
        (log.debug if quiet else log.warning)("%s: %s", self.name, msg)

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is not LinkState.UP:
            self.up_since = None
        if self._on_state is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_state, self.name, state)
            except RuntimeError:
                pass
