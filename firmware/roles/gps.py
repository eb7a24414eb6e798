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
import json
import struct
from time import ticks_diff, ticks_add
import wire
from role import Role
import nmea
import geofence as gf

_GPS_SILENT_MS = const(10000)
_SELF_TEST_MS = const(15000)
_MOVING_MMPS = const(500)       # > 0.5 m/s over ground = walking
_POLL_MS = const(1000)
_H_MS = const(3600000)


class GpsRole(Role):
    ROLE = wire.ROLE_GPS
    NAME = "gps"
    SCHEMA = {
        "home_lat_e7": ("i", 0, -900000000, 900000000),
        "home_lon_e7": ("i", 0, -1800000000, 1800000000),
        "home_radius_m": ("i", 0, 0, 100000),     # 0: no home circle (zones.json only)
        "margin_m": ("i", 25, 0, 1000),
        "confirm_n": ("i", 2, 1, 10),
        "report_s": ("i", 60, 10, 3600),          # moving inside the safe area
        "still_report_s": ("i", 600, 60, 86400),  # still inside
        "outside_report_s": ("i", 30, 5, 600),    # outside: close tracking
        "no_fix_s": ("i", 300, 30, 3600),
        "modem": ("b", False, None, None),
        "gw_grace_s": ("i", 30, 5, 3600),
        "charger_idle_h": ("i", 24, 1, 720),
        "battery_empty_mv": ("i", 3300, 2800, 3700),
    }

    def start(self):
        now = self.app.now()
        self.parser = nmea.NmeaParser()
        self.uart = self.hal.uart("gps")
        # optional board pins: a board without them has an always-on receiver and no
        # power switch (then the tracker is never "switched off")
        self.gps_en = self._pin("gps_en", "out")
        self._gnss_power(1)
        self.switch = self._pin("power_switch", "in")
        self._switch_seen = self._switch() == 1
        self.fix = None
        self.fix_at = None
        self.gnss_epoch = None       # (epoch_ms of the last fix, ticks at it)
        self._bytes_at = now
        self._booted = now
        self._self_test_done = False
        self._silent_reported = False
        self._no_fix_reported = False
        self._no_fix_since = now
        self._report_due = now
        self._charger_since = None
        self._charger_reported = False
        self._counts = (0, 0, 0)
        self.positions = 0
        self.exits = 0
        self.enters = 0
        self.off = 0
        self._build_fence(self.cfg)
        self.uplink = None
        self.modem = None
        if self.cfg.get("modem"):
            self._build_modem()
        marker = self._off_marker()
        if marker:
            self.off = marker
            if self._back_on():
                self._wake()
            else:
                self._gnss_power(0)

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

    # -- configuration ----------------------------------------------------------------
    def _build_fence(self, cfg):
        zones = []
        if cfg.get("home_radius_m"):
            try:
                zones.append(gf.Circle(cfg.get("home_lat_e7"), cfg.get("home_lon_e7"), cfg.get("home_radius_m")))
            except gf.GeofenceError:
                self.app.reject("config")
        zones += self._zones_file()
        self.fence = gf.Geofence(zones[:gf.MAX_ZONES], cfg.get("margin_m"), cfg.get("confirm_n"))

    def _zones_file(self):
        # <data>/zones.json: {"zones": [{"lat", "lon", "radius_m"} | {"polygon": [[lat, lon], ...]}]}
        try:
            with open(self.hal.data_dir + "/zones.json") as f:
                raw = json.load(f)
        except OSError:
            return []
        except ValueError:
            self.app.reject("config")
            return []
        out = []
        items = raw.get("zones") if isinstance(raw, dict) else None
        if not isinstance(items, list):
            self.app.reject("config")
            return []
        for z in items:
            try:
                out.append(gf.zone_from_config(z))
            except gf.GeofenceError:
                self.app.reject("config")  # one bad zone is skipped, the others work
        return out

    def _build_modem(self):
        # <data>/cellular.json: {"host": "...", "port": 1883, "apn": "", "dialect": "sim7080"|"bg95"}
        from modem import ModemError, make
        try:
            with open(self.hal.data_dir + "/cellular.json") as f:
                c = json.load(f)
            host, port, apn = c["host"], c.get("port", 1883), c.get("apn", "")
            dialect = c.get("dialect", "sim7080")
            if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError("cellular.json")
            make(None, None, None, dialect)  # ValueError for an unknown dialect
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.app.reject("config")
            return
        from modem_mqtt import CellularUplink
        try:
            u = self.hal.uart("modem")
        except (OSError, KeyError):  # no modem UART on this board
            self.app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
            return
        self.modem = make(u, self.hal.clock.ticks_ms, self.hal.sleep_ms, dialect)
        dev = "".join("%02x" % b for b in self.hal.device_id())
        self.uplink = CellularUplink(self.modem, dev, host, port, self.hal.clock.ticks_ms, "gps", apn,
                                     self.cfg.get("retry_ms") * 15, self.cfg.get("retry_max_ms") * 15)
        try:
            self.modem.start()
        except ModemError:  # dead or absent modem: report it, keep tracking
            self.app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))

    def on_config(self, cfg):
        self.cfg = cfg
        old = self.fence
        self._build_fence(cfg)
        self.fence.state, self.fence.zone = old.state, old.zone  # keep inside/outside

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
            if not self._self_test_done:
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
        self.fix = fx
        self.fix_at = now
        self._no_fix_since = now
        self._no_fix_reported = False
        ep = fx.epoch_ms()
        if ep is not None:
            self.gnss_epoch = (ep, now)
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
        fx = self.fix
        moving = fx is not None and fx.speed_mmps is not None and fx.speed_mmps > _MOVING_MMPS
        pct = self.hal.battery()[0]
        return gf.report_interval_ms(self.fence.state, moving, pct, self.fence.near_border(),
                                     c.get("report_s") * 1000, c.get("still_report_s") * 1000,
                                     c.get("outside_report_s") * 1000)

    # -- power supervision ------------------------------------------------------------------
    def _power(self, now):
        pct, mv, flags = self.hal.battery()
        sw = self._switch()
        if sw == 0 and self._switch_seen:
            return self._shutdown(1)
        if sw:
            self._switch_seen = True
        if mv and not flags & 2 and mv < self.cfg.get("battery_empty_mv"):
            return self._shutdown(2)
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

    def _shutdown(self, reason):
        """Last message, modem and GNSS off, then sleep until the cause is gone.

        The reason is kept in <data>/gps_off, so waking from deep sleep while it still
        holds (switch still off, battery still empty) does not report it again."""
        self.off = reason
        if self._off_marker() != reason:
            self.app.emit(wire.EV_POWER_OFF, bytes((reason,)))
            self._cellular(self.app.now(), force=True)
            try:
                with open(self.hal.data_dir + "/gps_off", "w") as f:
                    f.write(str(reason))
            except OSError:
                self.app.reject("flash")
        if self.uplink is not None:
            self.uplink.power_off()
        self._gnss_power(0)
        return True

    def _off_marker(self):
        try:
            with open(self.hal.data_dir + "/gps_off") as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def _back_on(self):
        pct, mv, flags = self.hal.battery()
        if self.off == 1:
            return self._switch() == 1
        return bool(flags & 2) or mv >= self.cfg.get("battery_empty_mv") + 100

    def _wake(self):
        self.off = 0
        self._switch_seen = self._switch() == 1
        import os
        try:
            os.remove(self.hal.data_dir + "/gps_off")
        except OSError:
            pass  # no marker: nothing to clear
        self._gnss_power(1)

    # -- cellular uplink ----------------------------------------------------------------------
    def _epoch_ms(self, now):
        if self.gnss_epoch is not None:
            return self.gnss_epoch[0] + ticks_diff(now, self.gnss_epoch[1])
        ep = self.app.epoch_s()
        return None if ep is None else ep * 1000

    def _cellular(self, now, force=False):
        up = self.uplink
        if up is None or (not force and up.wait_ms(now)):
            return
        q = self.app.queue
        grace = 0 if force else self.cfg.get("gw_grace_s") * 1000
        now_ep = self._epoch_ms(now)
        items = []
        overdue = False
        for e in q.entries():
            rec = q.get(e[0])
            if rec is None:
                continue
            same_boot = rec.boot == self.app.boot_id
            age = ticks_diff(now, rec.t_ms) if same_boot else None
            if age is None or age >= grace:
                overdue = True
            if now_ep is not None and age is not None:
                occ = now_ep - age
            elif rec.epoch_s:
                occ = rec.epoch_s * 1000
            else:
                occ = None
            items.append((rec.seq, rec.code, rec.data, occ))
        # one event the gateway did not take in time means it is out of reach: then the
        # fresh ones go by cellular at once too (a second alarm does not wait gw_grace_s)
        if not overdue:
            return
        # alarms first, then in sequence order
        items.sort(key=lambda it: (0 if wire.is_alarm(it[1]) else 1, it[0]))
        done, _reason = up.send(items, now_ep)
        for seq in done:
            q.ack(seq)

    # -- loop -------------------------------------------------------------------------------
    def poll(self, now):
        if self.off:
            # off: back on only when its cause is gone (switched on / charged)
            if self._back_on():
                self._wake()
            else:
                return 60000
        if self._power(now):
            return 60000
        self._read_gnss(now)
        if self.fix_at is None or ticks_diff(now, self.fix_at) >= self.cfg.get("no_fix_s") * 1000:
            if not self._no_fix_reported and ticks_diff(now, self._no_fix_since) >= self.cfg.get("no_fix_s") * 1000:
                self._no_fix_reported = True
                self.app.emit(wire.EV_GPS_NO_FIX)
        if self.modem is not None:
            self._cellular(now)
        return _POLL_MS

    def sleep_ok(self):
        if self.off:
            wake = [n for n in ("power_switch", "vbus") if self._pin(n, "in") is not None]
            return (_H_MS, wake)
        return None


ROLE_CLASS = GpsRole
