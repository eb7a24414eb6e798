# GPS tracker role (people with dementia): GNSS on UART "gps" -> NMEA parser ->
# geofence (safe zones, hysteresis) -> geofence_exit (care alarm) / geofence_enter /
# gps_position at a power-aware interval / gps_no_fix.
#
# Delivery: at home every event goes through the gateway link (the App's queue and
# resend). When the gateway has not acknowledged an event within gw_grace_s (the
# tracker is out of BLE range), the cellular modem (UART "modem", lib/modem.py)
# publishes it straight to the platform broker with the gateway's payload schema and
# the event leaves the queue; with no coverage it stays queued and the modem retries
# with exponential backoff. See docs/gps.md.
#
# Supervision: user switches off (pin "power_switch" to 0) -> power_off(1), a last
# delivery attempt, modem powered down, GNSS off, deep sleep until switched on; battery
# below battery_empty_mv -> power_off(2); on external power for charger_idle_h hours
# -> charger_idle; no NMEA bytes from the receiver -> sensor_fault(2) (self_test_failed
# check 5 at boot); modem dead at boot -> self_test_failed(6).
from micropython import const
import sys
import struct
from time import ticks_diff, ticks_add
import wire
from role import Role
import geofence as gf

_GPS_SILENT_MS = const(10000)
_SELF_TEST_MS = const(15000)
_MOVING_MMPS = const(500)       # > 0.5 m/s over ground = walking
_POLL_MS = const(1000)
_H_MS = const(3600000)


class GpsRole(Role):
    ROLE = wire.ROLE_GPS
    NAME = "gps"
    SCHEMA = "gps_schema"  # lib/gps_schema.py: loaded only at boot and per CONFIG frame (RAM)

    def start(self):
        self._setup().start(self)

    def _setup(self):
        import gps_setup  # boot and CONFIG only: dropped after use (RAM)
        sys.modules.pop("gps_setup", None)
        return gps_setup

    # -- board ------------------------------------------------------------------------
    def _pin(self, name, mode):
        try:
            return self.hal.pin(name, mode)
        except (OSError, KeyError):
            return None

    def _switch(self):
        return 0 if self.switch is None else self.switch.value()

    def _gnss_power(self, on):
        self._gnss_on = bool(on)
        if self.gps_en is not None:
            self.gps_en.value(1 if on else 0)

    def on_config(self, cfg):
        self._setup().on_config(self, cfg)

    # -- GNSS -----------------------------------------------------------------------------
    def _read_gnss(self, now):
        got = False
        for _ in range(16):  # bounded per loop step (2 KB/s), small reads keep the heap flat
            b = self.uart.read(128)
            if not b:
                break
            got = True
            for fx in self.parser.feed(b):
                self._on_fix(fx, now)
        p = self.parser
        c = (p.checksum_errors, p.malformed, p.overflow)
        for i in range(3):
            for _ in range(c[i] - self._counts[i]):
                self.app.reject(("nmea_checksum", "nmea_malformed", "nmea_overflow")[i])
        self._counts = c
        if got:
            self._bytes_at = now
            self._silent_reported = False
            self._self_test_done = True
        elif not self._self_test_done:
            # nothing at all from the receiver since boot: it failed its self-test
            if ticks_diff(now, self._booted) >= _SELF_TEST_MS:
                self._self_test_done = True
                self._silent_reported = True
                self.app.emit(wire.EV_SELF_TEST_FAILED, bytes((5,)))
        elif ticks_diff(now, self._bytes_at) >= _GPS_SILENT_MS and not self._silent_reported and self._gnss_on:
            self._silent_reported = True  # it worked, then went quiet
            self.app.sensor_fault(2)

    def _on_fix(self, fx, now):
        self.speed = fx.speed_mmps  # (the Fix itself is not kept: RAM)
        self.fix_at = now
        self._no_fix_since = now
        self._no_fix_reported = False
        if fx.date is not None and fx.tod_ms is not None:
            self.gnss_epoch = (fx.date, fx.tod_ms, now)  # UTC of the fix (the modem's clock)
        acc = 0 if fx.hdop_c is None else fx.hdop_c * 5 // 100  # ~5 m per HDOP unit
        ev, zone = self.fence.update(fx.lat_e7, fx.lon_e7, acc)
        if ev == gf.EV_EXIT:
            self.exits += 1
            self.app.emit(wire.EV_GEOFENCE_EXIT, self._pos(fx, zone))
            self._report_due = ticks_add(now, self._interval())
        elif ev == gf.EV_ENTER:
            self.enters += 1
            self.app.emit(wire.EV_GEOFENCE_ENTER, self._pos(fx, zone))
            self._report_due = ticks_add(now, self._interval())
        elif ticks_diff(now, self._report_due) >= 0:
            self.positions += 1
            self.app.emit(wire.EV_GPS_POSITION, self._pos(fx, zone))
            self._report_due = ticks_add(now, self._interval())

    def _pos(self, fx, zone):
        alt = 0 if fx.alt_dm is None else max(-32768, min(32767, fx.alt_dm // 10))
        return struct.pack("<iihBBB", fx.lat_e7, fx.lon_e7, alt, fx.quality or 0,
                           min(fx.sats or 0, 255), zone if zone is not None else 0xFF)

    def _interval(self):
        c = self.cfg
        moving = self.speed is not None and self.speed > _MOVING_MMPS
        pct = self.hal.battery()[0]
        return gf.report_interval_ms(self.fence.state, moving, pct, self.fence.near_border(),
                                     c.get("report_s") * 1000, c.get("still_report_s") * 1000,
                                     c.get("outside_report_s") * 1000)

    # -- power supervision ------------------------------------------------------------------
    def _power(self, now):
        pct, mv, flags = self.hal.battery()
        sw = self._switch()
        if sw == 0 and self._switch_seen:
            return self._off().shutdown(self, 1)
        if sw:
            self._switch_seen = True
        if mv and not flags & 2 and mv < self.cfg.get("battery_empty_mv"):
            return self._off().shutdown(self, 2)
        if flags & 2:
            if self._charger_since is None:
                self._charger_since = now
            h = ticks_diff(now, self._charger_since) // _H_MS
            if h >= self.cfg.get("charger_idle_h") and not self._charger_reported:
                self._charger_reported = True
                self.app.emit(wire.EV_CHARGER_IDLE, struct.pack("<H", min(h, 0xFFFF)))
        else:
            self._charger_since = None
            self._charger_reported = False
        return False

    def _cell(self):
        import gps_cell  # trackers with a modem, while events wait (gps_cell drops itself at home)
        return gps_cell

    def _off(self):
        import gps_off  # rare: switch-off, sleep and wake-up; dropped after use (RAM)
        sys.modules.pop("gps_off", None)
        return gps_off

    # -- loop -------------------------------------------------------------------------------
    def poll(self, now):
        if self.off and not self._off().back_on(self):
            return 60000  # off: back on only when its cause is gone (switched on / charged)
        if self._power(now):
            return 60000
        self._read_gnss(now)
        if self.fix_at is None or ticks_diff(now, self.fix_at) >= self.cfg.get("no_fix_s") * 1000:
            if not self._no_fix_reported and ticks_diff(now, self._no_fix_since) >= self.cfg.get("no_fix_s") * 1000:
                self._no_fix_reported = True
                self.app.emit(wire.EV_GPS_NO_FIX)
        c = self.cell
        if c is not None and (c[5] is not None or len(self.app.queue)):
            self._cell().poll(self, now)  # events queued or away from home
        return _POLL_MS

    def sleep_ok(self):
        return self._off().sleep_ok(self) if self.off else None


ROLE_CLASS = GpsRole
