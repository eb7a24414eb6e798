"""Keeps a BLE GATT session up: connect, and reconnect after loss (no bleak import).

:class:`SupervisedGattLink` wraps one session object (``ble.BleFrameLink`` or
``ble.BleHealthClient``) and gives it the shape of the other byte links
(``gateway.adapters.transports.ByteLink``): ``name``, ``state``, ``start()``, ``stop()``,
``send()``, ``status()``. Connection attempts repeat every ``reconnect_s`` (doubling
up to ``reconnect_max_s`` while they keep failing); a link that was up and is lost
goes DOWN and is retried at once, then with the same backoff.

    link = SupervisedGattLink(BleFrameLink(mac, cfg, on_bytes=...), on_state=...)
    link.start()          # on the event loop; returns at once
    link.send(frame)      # dropped and counted while not UP (devices re-send unACKed events)
    await link.async_stop()
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

from gateway.domain.ports import Clock, SystemClock
from gateway.adapters.transports import LinkState, StateCallback, TransportError

log = logging.getLogger(__name__)


class GattSession(Protocol):
    """What the supervisor drives (implemented by ble.BleFrameLink / ble.BleHealthClient)."""

    address: str

    @property
    def connected(self) -> bool: ...

    def set_disconnect_callback(self, callback: Callable[[str], None]) -> None: ...

    async def async_connect(self) -> Any: ...

    async def async_close(self) -> None: ...


class SupervisedGattLink:
    def __init__(
        self,
        session: GattSession,
        *,
        reconnect_s: float = 5.0,
        reconnect_max_s: float = 60.0,
        on_state: StateCallback | None = None,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        if reconnect_s <= 0 or reconnect_max_s < reconnect_s:
            raise ValueError(f"reconnect_s={reconnect_s!r}, reconnect_max_s={reconnect_max_s!r}: "
                             "need 0 < reconnect_s <= reconnect_max_s")
        self.session = session
        self.name = name or f"ble:{session.address}"
        self.state = LinkState.CONNECTING
        self._reconnect_s = reconnect_s
        self._reconnect_max_s = reconnect_max_s
        self._on_state = on_state
        self._clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self.connects = 0
        self.connect_failures = 0
        self.losses = 0
        self.dropped_writes = 0
        self.last_error = ""
        self.up_since: float | None = None
        session.set_disconnect_callback(self._on_lost)

    # -- ByteLink
    def start(self) -> None:
        """Begin connecting (must be called on the event loop)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._async_run(), name=self.name)

    def stop(self) -> None:
        """Request stop; the disconnect completes in the background."""
        self._stopping.set()

    async def async_stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        self._set_state(LinkState.STOPPED)

    def send(self, data: bytes) -> None:
        if self.state is not LinkState.UP:
            self.dropped_writes += 1
            return
        sender = getattr(self.session, "send", None)
        if sender is None:
            raise TypeError(f"{self.name}: this BLE session has no byte stream to send on")
        try:
            sender(data)
        except TransportError as exc:
            self.dropped_writes += 1
            self.last_error = str(exc)

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "ble", "address": self.session.address,
                "state": self.state.value, "connects": self.connects,
                "connect_failures": self.connect_failures, "losses": self.losses,
                "dropped_writes": self.dropped_writes, "last_error": self.last_error,
                "up_for_s": None if self.up_since is None else
                round(self._clock.monotonic() - self.up_since, 1)}

    # -- internals
    def _on_lost(self, reason: str) -> None:
        self.last_error = reason
        self._lost.set()

    async def _async_run(self) -> None:
        delay = self._reconnect_s
        try:
            while not self._stopping.is_set():
                self._lost.clear()
                try:
                    await self.session.async_connect()
                except TransportError as exc:
                    self.connect_failures += 1
                    self.last_error = str(exc)
                    log.info("%s: %s (retry in %.0f s)", self.name, exc, delay)
                    if self.state is LinkState.CONNECTING:
                        self._set_state(LinkState.DOWN)
                    if await self._async_wait(self._stopping, delay):
                        break
                    delay = min(delay * 2, self._reconnect_max_s)
                    continue
                self.connects += 1
                delay = self._reconnect_s
                self.up_since = self._clock.monotonic()
                self._set_state(LinkState.UP)
                stop = asyncio.ensure_future(self._stopping.wait())
                lost = asyncio.ensure_future(self._lost.wait())
                try:
                    await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    lost.cancel()
                if self._stopping.is_set():
                    break
                self.losses += 1
                log.warning("%s: link lost (%s)", self.name, self.last_error)
                self.up_since = None
                self._set_state(LinkState.DOWN)
                await self.session.async_close()
        finally:
            await self.session.async_close()
            self.up_since = None
            self._set_state(LinkState.STOPPED)

    @staticmethod
    async def _async_wait(event: asyncio.Event, seconds: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        if self._on_state is not None:
            try:
                self._on_state(self.name, state)
            except Exception:
                log.exception("%s: on_state callback failed", self.name)
