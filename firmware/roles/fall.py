# Fall sensor role: accelerometer (LIS3DH on I2C "acc") -> fall detector -> cancel
# window -> fall_detected (care alarm) or fall_cancelled (event).
#
# The wearer has cancel_s seconds to press the button (pin "button") after the local
# alert (buzzer "buzzer", LED "led") starts; the alarm is raised when the window
# expires even if the sensor stops delivering samples in the meantime.
# Sensor problems: each I2C error is counted (rejects); fault_n consecutive failed
# reads raise sensor_fault(1); no samples for no_data_ms raise sensor_fault(2); a
# stream of impossible values (no gravity, or pinned at full scale) sensor_fault(3).
# A part that fails its identity check at boot raises self_test_failed(check 1).
# Not worn: a device lying still (orientation within _WORN_MG per axis) for
# not_worn_min minutes of daytime raises not_worn (technical); moving again clears it
# with worn_again. Daytime is day_from_h..day_to_h local time: the gateway's TIME (UTC)
# plus utc_offset_min, plus an hour of summer time by the EU rule when summer_time is
# set (Europe/Oslo: 60 and on; lib/fall_tz.py); before the first TIME every minute counts.
from micropython import const
import struct
import sys
from time import ticks_diff, ticks_add
import wire
from role import Role
from inputs import Debounced, Pattern, PULSE
from fall_alert import EV_FALL_DETECTED

_ALERT = ((1, 300), (0, 200))        # buzzer while the cancel window is open
_SENT = ((1, 100), (0, 900))
_CANCELLED = ((1, 1000),)
_READ_MS = const(200)                # FIFO holds 640 ms at 50 Hz
_RETRY_START_MS = const(10000)
_STUCK_N = const(250)                # 5 s at 50 Hz of implausible samples
_ZERO_G_MG = const(120)
_FULL_SCALE_MG = const(7900)
_WORN_MG = const(50)                 # a worn device turns more than ~3 deg now and then


class FallRole(Role):
    ROLE = wire.ROLE_FALL
    NAME = "fall"
    SCHEMA = "fall_schema"  # lib/fall_schema.py: loaded only at boot and per CONFIG frame (RAM)

    def start(self):
        now = self.app.now()
        self.btn = Debounced(self.hal.pin("button"), 50, now, True)
        self.led = Pattern(self.hal.pin("led", "out"))
        self.buzz = Pattern(self.hal.pin("buzzer", "out"))
        self.acc = None
        self.fails = 0
        self.i2c_errors = 0
        self.samples = 0
        self.detections = 0
        self.cancels = 0
        self.alarms = 0
        self._last_data = now
        self._start_due = now
        self._same = 0
        self._self_test_reported = False
        self._ref = None        # orientation while lying still (not worn)
        self._still_ms = 0      # daytime ms it has lain still
        self._still_t = now
        self._off = False       # not_worn raised
        self._tz_h = None       # UTC hour of the local offset _tz_min (summer time)
        self._tz_min = 0
        self._build(self.cfg)
        self._start_sensor(now)

    # -- configuration ------------------------------------------------------------------
    def _build(self, cfg):
        # detector (per placement) and cancel window from the settings; the code is in
        # lib/fall_setup.py, needed only now: dropped again (RAM)
        import fall_setup
        fall_setup.build(self, cfg)
        sys.modules.pop("fall_setup", None)

    def on_config(self, cfg):
        pending = self.alert.state
        old = self.alert
        self.cfg = cfg
        self._tz_h = None       # offset settings may have changed
        self._build(cfg)
        if pending:
            self.alert = old  # never drop an open window on a config change
        self.acc = None
        self._start_due = self.app.now()

    # -- sensor -------------------------------------------------------------------------
    def _start_sensor(self, now):
        from drivers.lis3dh import Lis3dh, SensorError
        try:
            acc = Lis3dh(self.hal.i2c("acc"), self.cfg.get("i2c_addr"), self.rate)
            acc.start()
        except SensorError:
            self.acc = None
            self._start_due = ticks_add(now, _RETRY_START_MS)
            if not self._self_test_reported:
                self._self_test_reported = True
                self.app.emit(wire.EV_SELF_TEST_FAILED, bytes((1,)))
            return
        except OSError:
            self.acc = None
            self._start_due = ticks_add(now, _RETRY_START_MS)
            self._io_error()
            return
        self.acc = acc
        self._last_data = now

    def _io_error(self):
        self.i2c_errors += 1
        self.fails += 1
        self.app.reject("i2c")
        if self.fails == self.cfg.get("fault_n"):
            self.app.sensor_fault(1)

    def _read(self, now):
        over = self.acc.overruns
        try:
            batch = self.acc.read()
        except OSError:
            self._io_error()
            return
        self.fails = 0
        if self.acc.overruns != over:
            self.app.reject("acc_overrun")  # the loop was late: samples were lost
        if not batch:
            if ticks_diff(now, self._last_data) >= self.cfg.get("no_data_ms"):
                self._last_data = now
                self.app.sensor_fault(2)
            return
        self._last_data = now
        det = self.det
        for s in batch:
            self.samples += 1
            x, y, z = s
            # implausible: no gravity at all (a 5 s free fall does not happen) or pinned
            # at full scale; identical samples are NOT a fault (a still sensor can be quiet)
            if (abs(x) < _ZERO_G_MG and abs(y) < _ZERO_G_MG and abs(z) < _ZERO_G_MG) or \
                    abs(x) >= _FULL_SCALE_MG or abs(y) >= _FULL_SCALE_MG or abs(z) >= _FULL_SCALE_MG:
                self._same += 1
                if self._same == _STUCK_N:
                    self.app.sensor_fault(3)
            else:
                self._same = 0
            peak = det.feed(x, y, z)
            if peak:
                self.detections += 1
                sys.modules.pop("fall_conf", None)   # once per suspicion (RAM)
                if self.alert.suspect(peak, now, det.confidence) and self.cfg.get("buzzer"):
                    self.buzz.play(_ALERT, now, 1000)
        if self.cfg.get("not_worn_min"):
            self._worn(now, x, y, z)

    def _worn(self, now, x, y, z):
        # once per FIFO read (5 Hz): lying still in one orientation, or moved?
        r = self._ref
        dt = ticks_diff(now, self._still_t)
        self._still_t = now
        if r is None or abs(x - r[0]) > _WORN_MG or abs(y - r[1]) > _WORN_MG or abs(z - r[2]) > _WORN_MG:
            if self._off:
                self._off = False
                self.app.emit(wire.EV_WORN_AGAIN, struct.pack("<H", min(self._still_ms // 60000, 0xFFFF)))
            self._ref = (x, y, z)
            self._still_ms = 0
            return
        ep = self.app.epoch_s()
        if ep is not None:
            if ep // 3600 != self._tz_h:   # the local offset, once per UTC hour (lib/fall_tz: RAM)
                from fall_tz import offset_min
                sys.modules.pop("fall_tz", None)
                self._tz_h = ep // 3600
                self._tz_min = offset_min(ep, self.cfg.get("utc_offset_min"), self.cfg.get("summer_time"))
            h = (ep + self._tz_min * 60) // 3600 % 24
            a, b = self.cfg.get("day_from_h"), self.cfg.get("day_to_h")
            if a != b and not (a <= h < b if a < b else h >= a or h < b):
                return  # night: a device on the night stand is expected
        self._still_ms += min(dt, 60000)
        if not self._off and self._still_ms >= self.cfg.get("not_worn_min") * 60000:
            self._off = True
            self.app.emit(wire.EV_NOT_WORN, struct.pack("<H", min(self._still_ms // 60000, 0xFFFF)))

    # -- loop -----------------------------------------------------------------------------
    def poll(self, now):
        if self.acc is None and ticks_diff(now, self._start_due) >= 0:
            self._start_sensor(now)
        if self.acc is not None:
            self._read(now)
        changed, wait = self.btn.poll(now)
        if changed and (self.btn.state or changed == PULSE):   # a press, even one the loop did not see
            r = self.alert.cancel(now)
            if r is not None:
                self._raise(r, now)
        r = self.alert.poll(now)
        if r is not None:
            self._raise(r, now)
        waits = [_READ_MS]
        if wait is not None:
            waits.append(wait)
        if self.alert.state:
            waits.append(max(1, self.alert.remaining_ms(now)))
        for w in (self.led.poll(now), self.buzz.poll(now)):
            if w is not None:
                waits.append(w)
        return min(waits)

    def _raise(self, r, now):
        code, peak = r
        self.buzz.stop()
        data = struct.pack("<HBB", min(peak, 0xFFFF), self.placement, self.alert.confidence)
        if code == EV_FALL_DETECTED:
            self.alarms += 1
            self.app.emit(wire.EV_FALL_DETECTED, data)
            self.led.play(_SENT, now, 30)
        else:
            self.cancels += 1
            self.app.emit(wire.EV_FALL_CANCELLED, data)
            self.led.play(_CANCELLED, now)

    def healthy(self):
        return True


ROLE_CLASS = FallRole
