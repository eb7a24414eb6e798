# ESP32 HAL: machine / esp32 / bluetooth behind the interface of firmware/README.md.
#
# Pin, UART, ADC and I2C assignments come from BOARD, overridable by /board.json
# (same shape) so one build serves several board revisions.
from micropython import const
import time
import select
import os
import json
import machine
import esp32

_DATA = "/data"
_LOWV_MARK = "/data/.lowv"
_BROWNOUT_MV = const(3400)
_SLICE_MS = const(50)

# wire reset causes
_RC_POWER_ON = const(0)
_RC_HARD = const(1)
_RC_WATCHDOG = const(2)
_RC_DEEPSLEEP = const(3)
_RC_SOFT = const(4)
_RC_BROWNOUT = const(5)
_RC_UNKNOWN = const(255)

BOARD: dict = {
    # the gateway link: "uart" (uart["link"]) or "ble" (the WT frame GATT service)
    "link": "uart",
    # name: [uart id, tx, rx, baud]. The ESP32 has two free UARTs (UART0 is the
    # console): the GPS tracker uses "link": "ble", so UART1 is free for its modem,
    # on its own pins, while the GNSS receiver keeps UART2.
    "uart": {"link": [1, 17, 16, 115200], "gps": [2, 4, 5, 9600], "modem": [1, 18, 19, 115200],
             "dispenser": [2, 4, 5, 9600]},
    # name: [gpio, active_low, pull_up]; gps_en powers the GNSS receiver (high = on),
    # power_switch is the tracker's on/off slide switch to GND (GPIO39 is input-only:
    # the board has the pull-up); a board without one sets it to null in /board.json
    "pin": {"button": [0, True, True], "led": [2, False, False], "buzzer": [25, False, False],
            "door": [27, False, True], "pir": [26, False, False], "tamper": [14, True, True],
            "vbus": [36, False, False], "gps_en": [13, False, False], "power_switch": [39, True, False]},
    "adc": {"load": 34, "battery": 35},
    # name: [i2c id, scl, sda, freq]
    "i2c": {"acc": [0, 22, 21, 400000]},
    # battery: ADC through a divider; linear pct between empty and full
    "battery": {"divider_x100": 200, "empty_mv": 3300, "full_mv": 4150},
}


def _board():
    b = BOARD
    try:
        with open("/board.json") as f:
            over = json.load(f)
        for k in over:
            if k in b and isinstance(over[k], dict):
                b[k].update(over[k])
            elif k == "link" and over[k] in ("uart", "ble"):
                b[k] = over[k]
    except OSError:
        return b  # no /board.json: the built-in table applies
    except ValueError:
        print("hal: /board.json is not valid JSON; using the built-in pin table")
    return b


class _Clock:
    def ticks_ms(self):
        return time.ticks_ms()


class _In:
    """Input pin with board polarity applied: value() 1 = active."""

    def __init__(self, pin, invert, flag):
        self._p = pin
        self._inv = 1 if invert else 0
        self._flag = flag

    def value(self, v=None):
        if v is None:
            return self._p.value() ^ self._inv
        return None

    def irq(self, handler=None, trigger=3):
        flag = self._flag

        def _h(_p):
            flag[0] = 1          # wakes Esp32Hal.wait(); the handler must not allocate
            if handler is not None:
                handler(self)
        self._p.irq(_h, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)


class Esp32Hal:
    def __init__(self):
        self.board = _board()
        self.clock = _Clock()
        self.data_dir = _DATA
        try:
            os.mkdir(_DATA)
        except OSError:
            pass  # exists
        self._uarts = {}
        self._irq = bytearray(1)
        self._poll = None
        self._cause = self._read_cause()

    # --- identity and power ------------------------------------------------------

    def device_id(self):
        return bytes(machine.unique_id()[:6])

    def _read_cause(self):
        c = machine.reset_cause()
        if c == machine.PWRON_RESET:
            # MicroPython reports a brownout as power-on; the HAL remembers a low
            # battery reading before the reset to tell them apart
            try:
                os.stat(_LOWV_MARK)
                os.remove(_LOWV_MARK)
                return _RC_BROWNOUT
            except OSError:
                return _RC_POWER_ON
        return {machine.HARD_RESET: _RC_HARD, machine.WDT_RESET: _RC_WATCHDOG,
                machine.DEEPSLEEP_RESET: _RC_DEEPSLEEP, machine.SOFT_RESET: _RC_SOFT}.get(c, _RC_UNKNOWN)

    def reset_cause(self):
        return self._cause

    def battery(self):
        b = self.board["battery"]
        try:
            raw = self.adc("battery").read_uv()
        except (OSError, KeyError):
            return 0xFF, 0, 0
        mv = raw * b["divider_x100"] // 100000
        lo, hi = b["empty_mv"], b["full_mv"]
        pct = max(0, min(100, (mv - lo) * 100 // (hi - lo)))
        flags = 0
        if "vbus" in self.board["pin"] and self.pin("vbus").value():
            flags |= 2
        if mv < _BROWNOUT_MV:
            try:
                open(_LOWV_MARK, "w").close()
            except OSError:
                pass  # flash full: the brownout is then reported as power-on
        return pct, mv, flags

    def rssi(self):
        return 0x7F

    # --- peripherals -----------------------------------------------------------------

    def uart(self, name):
        u = self._uarts.get(name)
        if u is None and name == "link" and self.board.get("link") == "ble":
            from hal.esp32_ble import BleLink  # only BLE boards pay for the BLE stack
            u = BleLink("WT" + self.device_id()[-2:].hex(), self._irq)
            self._uarts[name] = u
        if u is None:
            uid, tx, rx, baud = self.board["uart"][name]
            u = machine.UART(uid, baudrate=baud, tx=tx, rx=rx, timeout=0, rxbuf=1024)
            self._uarts[name] = u
            if name == "link":
                p = select.poll()
                try:
                    p.register(u, select.POLLIN)
                    self._poll = p
                except OSError:
                    self._poll = None  # not pollable: wait() sleeps in 50 ms slices
        return u

    def pin(self, name, mode="in", pull=None):
        spec = self.board["pin"][name]
        if spec is None:  # /board.json {"pin": {"power_switch": null}}: not fitted
            raise KeyError(name)
        gpio, low, up = spec
        if mode == "out":
            return machine.Signal(machine.Pin(gpio, machine.Pin.OUT), invert=low)
        p = machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP if up else None)
        return _In(p, low, self._irq)

    def adc(self, name):
        a = machine.ADC(machine.Pin(self.board["adc"][name]))
        a.atten(machine.ADC.ATTN_11DB)
        return a

    def i2c(self, name):
        iid, scl, sda, freq = self.board["i2c"][name]
        return machine.I2C(iid, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)

    def wdt(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def confirm_image(self):
        esp32.Partition.mark_app_valid_cancel_rollback()

    # --- time --------------------------------------------------------------------------

    def wait(self, timeout_ms):
        """Sleep until timeout, link bytes or a pin IRQ (checked every 50 ms)."""
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        irq = self._irq
        while not irq[0]:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                break
            if self._poll is not None:
                if self._poll.poll(min(left, _SLICE_MS)):
                    break
            else:
                time.sleep_ms(min(left, _SLICE_MS))
        irq[0] = 0

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def deep_sleep(self, ms, wake_pins=()):
        pins = [machine.Pin(self.board["pin"][n][0], machine.Pin.IN) for n in wake_pins]
        if len(pins) == 1:
            # wake on the edge away from the current level
            esp32.wake_on_ext0(pins[0], esp32.WAKEUP_ALL_LOW if pins[0].value() else esp32.WAKEUP_ANY_HIGH)
        elif pins:
            esp32.wake_on_ext1(pins, esp32.WAKEUP_ANY_HIGH)
        machine.deepsleep(ms)

    def reset(self, cause=_RC_SOFT):
        machine.reset()
