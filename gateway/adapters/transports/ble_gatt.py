"""BLE GATT links (bleak): the WT frame service link and the standard health-device client.

Split from :mod:`gateway.adapters.transports.ble` (scanner, adapter power, config and
errors live there); usage is shown in that module's docstring. Errors from bleak or
dbus-fast never leave this module raw: they become :class:`BleError`.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice

from gateway.adapters.transports.ble import (_BLE_ERRORS, WT_FRAME_RX_UUID, WT_FRAME_TX_UUID, BleConfig, BleError, HealthChar,
                                             _translate, uuid16_to_str)

log = logging.getLogger("gateway.adapters.transports.ble")


DisconnectCallback = Callable[[str], None]


class _GattSession:
    """Connection handling shared by the WT frame link and the health client."""

    def __init__(
        self,
        address: str,
        config: BleConfig,
        *,
        on_disconnect: DisconnectCallback | None,
        resolve: Callable[[str], BLEDevice | None] | None,
    ) -> None:
        self.address = address.upper()
        self._cfg = config
        self._on_disconnect = on_disconnect
        self._resolve = resolve
        self._client: BleakClient | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    def set_disconnect_callback(self, callback: DisconnectCallback | None) -> None:
        """Who hears ``on_disconnect(reason)`` (ble_links.SupervisedGattLink sets itself)."""
        self._on_disconnect = callback

    async def _async_open(self) -> BleakClient:
        target: BLEDevice | str = self.address
        if self._resolve is not None:
            known = self._resolve(self.address)
            if known is None:
                # connecting by bare address would start a second discovery session
                # from this process, which bluetoothd refuses while the scanner runs
                raise BleError("connect", "not seen advertising yet", address=self.address)
            target = known
        client = BleakClient(
            target,
            disconnected_callback=self._lost,
            timeout=self._cfg.connect_timeout_s,
            pair=self._cfg.pair,
            bluez={"adapter": self._cfg.adapter},
        )
        self._closing = False
        try:
            await asyncio.wait_for(client.connect(), self._cfg.connect_timeout_s + 1.0)
        except _BLE_ERRORS as exc:
            raise _translate("connect", exc, self.address) from exc
        self._client = client
        return client

    def _lost(self, client: BleakClient) -> None:
        if client is not self._client:
            return
        self._client = None
        self._on_lost()
        if not self._closing and self._on_disconnect is not None:
            self._on_disconnect("link lost")

    def _on_lost(self) -> None:
        """Subclass hook: the connection is gone."""

    async def async_close(self) -> None:
        """Disconnect; never raises."""
        self._closing = True
        client, self._client = self._client, None
        self._on_lost()
        if client is None:
            return
        try:
            await asyncio.wait_for(client.disconnect(), self._cfg.call_timeout_s)
        except _BLE_ERRORS as exc:
            log.info("BLE disconnect %s: %s", self.address, _translate("disconnect", exc, self.address))

    @staticmethod
    def _find_char(client: BleakClient, uuid: str) -> BleakGATTCharacteristic | None:
        return client.services.get_characteristic(uuid)


class BleFrameLink(_GattSession):
    """FrameLink over the WT frame GATT service: ``send()`` writes the byte stream to
    ``rx`` in chunks of at most ATT_MTU-3 bytes (write without response), and
    ``on_bytes(data)`` receives every ``tx`` notification. Framing (COBS) is the
    stream decoder's job, exactly as on the serial link."""

    def __init__(
        self,
        address: str,
        config: BleConfig,
        *,
        on_bytes: Callable[[bytes], None],
        on_disconnect: DisconnectCallback | None = None,
        resolve: Callable[[str], BLEDevice | None] | None = None,
    ) -> None:
        super().__init__(address, config, on_disconnect=on_disconnect, resolve=resolve)
        self.name = f"ble:{self.address}"
        self._on_bytes = on_bytes
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._rx: BleakGATTCharacteristic | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.writes = 0

    async def async_connect(self) -> None:
        client = await self._async_open()
        try:
            rx = self._find_char(client, WT_FRAME_RX_UUID)
            tx = self._find_char(client, WT_FRAME_TX_UUID)
            if rx is None or tx is None:
                raise BleError("connect", "device has no WT frame service (docs/protocol.md §4)",
                               address=self.address)
            await asyncio.wait_for(
                client.start_notify(tx, self._notified,
                                    bluez={"use_start_notify": not self._cfg.use_acquire_notify}),
                self._cfg.call_timeout_s)
        except BaseException as exc:
            await self.async_close()
            if isinstance(exc, _BLE_ERRORS):
                raise _translate("subscribe", exc, self.address) from exc
            raise
        self._rx = rx
        self._writer = asyncio.get_running_loop().create_task(self._async_write_loop(client, rx))

    def _notified(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.bytes_received += len(data)
        try:
            self._on_bytes(bytes(data))
        except Exception:
            log.exception("on_bytes failed for %s", self.address)

    def send(self, data: bytes) -> None:
        """Queue bytes for ``rx``. Raises BleError if not connected or the queue is full."""
        if self._writer is None or not self.connected:
            raise BleError("write", "not connected", address=self.address)
        if self._queued + len(data) > self._cfg.write_queue_max_bytes:
            raise BleError("write", f"send queue full ({self._queued} bytes pending)", address=self.address)
        if data:
            self._queue.append(bytes(data))
            self._queued += len(data)
            self._idle.clear()
            self._wakeup.set()

    async def async_drain(self, timeout_s: float = 10.0) -> None:
        """Wait until everything queued was handed to BlueZ."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def _async_write_loop(self, client: BleakClient, rx: BleakGATTCharacteristic) -> None:
        chunk_max = max(rx.max_write_without_response_size, 20)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                data = self._queue.popleft()
                self._queued -= len(data)
                for i in range(0, len(data), chunk_max):
                    chunk = data[i:i + chunk_max]
                    try:
                        await asyncio.wait_for(client.write_gatt_char(rx, chunk, response=False),
                                               self._cfg.call_timeout_s)
                    except _BLE_ERRORS as exc:
                        err = _translate("write", exc, self.address)
                        log.warning("%s", err)
                        self._queue.clear()
                        self._queued = 0
                        self._idle.set()
                        if self._on_disconnect is not None and not self._closing:
                            self._on_disconnect(str(err))
                        closer = asyncio.get_running_loop().create_task(self.async_close())
                        self._background.add(closer)
                        closer.add_done_callback(self._background.discard)
                        return
                    self.bytes_sent += len(chunk)
                    self.writes += 1
            self._idle.set()

    def _on_lost(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        self._queue.clear()
        self._queued = 0
        self._idle.set()


MeasurementCallback = Callable[[str, int, bytes], None]


class BleHealthClient(_GattSession):
    """Standard health device: subscribes to every measurement characteristic in
    :class:`HealthChar` that the device has (notify or indicate; BlueZ confirms
    indications) and passes each value raw to ``on_measurement(mac, uuid16, data)``."""

    def __init__(
        self,
        address: str,
        config: BleConfig,
        *,
        on_measurement: MeasurementCallback,
        on_disconnect: DisconnectCallback | None = None,
        resolve: Callable[[str], BLEDevice | None] | None = None,
    ) -> None:
        super().__init__(address, config, on_disconnect=on_disconnect, resolve=resolve)
        self._on_measurement = on_measurement
        self.measurements = 0

    async def async_connect(self) -> list[HealthChar]:
        """Connect and subscribe; returns the characteristics subscribed to."""
        client = await self._async_open()
        subscribed: list[HealthChar] = []
        try:
            for hc in HealthChar:
                char = self._find_char(client, uuid16_to_str(hc))
                if char is None or not {"notify", "indicate"} & set(char.properties):
                    continue
                await asyncio.wait_for(
                    client.start_notify(char, self._make_handler(hc)), self._cfg.call_timeout_s
                )
                subscribed.append(hc)
            if not subscribed:
                raise BleError("connect", "device has no health measurement characteristic "
                               "(0x2A35/0x2A1C/0x2A9D/0x2A5E/0x2A5F/0x2A18)", address=self.address)
        except BaseException as exc:
            await self.async_close()
            if isinstance(exc, _BLE_ERRORS):
                raise _translate("subscribe", exc, self.address) from exc
            raise
        return subscribed

    def _make_handler(self, hc: HealthChar) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def handler(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            self.measurements += 1
            try:
                self._on_measurement(self.address, int(hc), bytes(data))
            except Exception:
                log.exception("on_measurement failed for %s %04X", self.address, int(hc))

        return handler
