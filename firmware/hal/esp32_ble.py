# The "WT frame" GATT service (docs/protocol.md §4) as the device's link: the same
# COBS byte stream as the serial link, over BLE. Imported by hal/esp32.py only when
# the board's link is "ble". The device is the peripheral; the gateway connects,
# writes the rx characteristic (downlink) and subscribes to tx (uplink notifies).
from micropython import const
import bluetooth

_SVC = "5f1e0001-7a3b-4c8e-9d21-6b7c0e5a9f10"
_RX = "5f1e0002-7a3b-4c8e-9d21-6b7c0e5a9f10"
_TX = "5f1e0003-7a3b-4c8e-9d21-6b7c0e5a9f10"
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_NOTIFY = const(0x0010)
_RX_MAX = const(1024)
_ADV_US = const(250000)


def _adv_payload(name):
    n = name.encode()[:8]
    uuid = bytes(reversed(bytes.fromhex(_SVC.replace("-", ""))))
    return b"\x02\x01\x06" + bytes((len(n) + 1, 0x09)) + n + bytes((17, 0x07)) + uuid


class BleLink:
    """Stream interface of a UART (read never blocks, write, any) over GATT."""

    def __init__(self, name, wake_flag):
        self._flag = wake_flag
        self._name = name
        self._ble = bluetooth.BLE()
        self._ble.active(True)
        self._ble.irq(self._irq)
        svc = (bluetooth.UUID(_SVC), ((bluetooth.UUID(_TX), _FLAG_NOTIFY),
                                      (bluetooth.UUID(_RX), _FLAG_WRITE_NO_RESPONSE)))
        ((self._tx, self._rx),) = self._ble.gatts_register_services((svc,))
        self._ble.gatts_set_buffer(self._rx, 256, True)
        self._conn = None
        self._chunk = 20          # ATT MTU 23 - 3 until the central negotiates more
        self._buf = bytearray()
        self.dropped = 0          # downlink bytes beyond the buffer (counted, not kept)
        self.unsent = 0           # uplink bytes written while nobody was connected
        self._advertise()

    def _advertise(self):
        self._ble.gap_advertise(_ADV_US, _adv_payload(self._name))

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self._conn = data[0]
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self._conn = None
            self._chunk = 20
            self._advertise()
        elif event == _IRQ_GATTS_WRITE:
            if data[1] == self._rx:
                b = self._ble.gatts_read(self._rx)
                room = _RX_MAX - len(self._buf)
                if len(b) > room:
                    self.dropped += len(b) - room
                    b = b[:room]
                self._buf.extend(b)
                self._flag[0] = 1
        elif event == _IRQ_MTU_EXCHANGED:
            self._chunk = max(20, data[1] - 3)

    def any(self):
        return len(self._buf)

    def read(self, n=-1):
        if not self._buf:
            return None
        if n < 0 or n > len(self._buf):
            n = len(self._buf)
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def write(self, b):
        if self._conn is None:
            # not connected: the frame is lost like on a cut wire; queued events are resent
            self.unsent += len(b)
            return 0
        mv = memoryview(b)
        step = self._chunk
        for i in range(0, len(b), step):
            # the ESP32 stub omits conn_handle; the real API is gatts_notify(conn, handle, data)
            self._ble.gatts_notify(self._conn, self._tx, mv[i:i + step])  # type: ignore[call-arg]
        return len(b)
