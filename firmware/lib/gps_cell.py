# Cellular delivery of the GPS tracker (roles/gps.py), imported only on trackers with
# a modem (setting "modem"; gps_setup.build_cell() reads the settings and runs the
# boot self-test): the second uplink through the App's API (app.pending() /
# app.delivered()). See docs/gps.md.
#
# RAM: the modem driver and the MQTT uplink (modem, modem_bg95, modem_mqtt) are loaded
# only while the tracker is away from home - from the first event the gateway did not
# take within gw_grace_s until _AWAY_MS after the last cellular session - and dropped
# again at home (the boot self-test is a plain AT probe in gps_setup). The backoff and
# per-event attempt counters survive the unload.
import sys
from time import ticks_diff
import wire

_AWAY_MS = 600000  # no cellular session for 10 min (the gateway takes the events): home
_MODS = ("modem_mqtt", "modem_bg95", "modem")


class Cellular:
    def __init__(self, role, host, port, apn, dialect, dev):
        self.role = role
        self.host = host
        self.port = port
        self.apn = apn
        self.dialect = dialect
        self.dev = dev
        self.up = None        # modem_mqtt.CellularUplink while away
        self.loads = 0
        self._last = None     # ticks of the last session
        # uplink state kept while unloaded: fails, due, attempts, sessions, published, reason
        self._st = (0, None, {}, 0, 0, "")

    def load(self):
        """The uplink (imports the modem modules if they are not loaded)."""
        up = self.up
        if up is None:
            from modem import make
            from modem_mqtt import CellularUplink
            role = self.role
            app = role.app
            hal = role.hal

            def wait(ms):  # modem command waits: keep the watchdog fed through a long session
                app.kick()
                hal.sleep_ms(ms)

            m = make(hal.uart("modem"), hal.clock.ticks_ms, wait, self.dialect)
            cfg = role.cfg
            up = CellularUplink(m, self.dev, self.host, self.port, hal.clock.ticks_ms, "gps", self.apn,
                                cfg.get("retry_ms") * 15, cfg.get("retry_max_ms") * 15)
            up.fails, up._due, up.attempts, up.sessions, up.published, up.last_reason = self._st
            self.up = up
            self.loads += 1
        return up

    def unload(self):
        up = self.up
        if up is not None:
            self._st = (up.fails, up._due, up.attempts, up.sessions, up.published, up.last_reason)
            self.up = None
            for n in _MODS:
                sys.modules.pop(n, None)

    def wait_ms(self, now):
        """0 if a session may start now, else ms until the backoff expires."""
        due = self._st[1] if self.up is None else self.up._due
        if due is None:
            return 0
        left = ticks_diff(due, now)
        return left if left > 0 else 0

    def power_off(self):
        r = self.load().power_off()
        self.unload()
        return r

    def _epoch_ms(self, now):
        # UTC now: from the last dated GNSS fix, else the gateway's TIME (modem_mqtt is
        # loaded by now)
        r = self.role
        if r.gnss_epoch is not None:
            from modem_mqtt import civil_to_days
            (y, m, d), tod, t = r.gnss_epoch
            return civil_to_days(y, m, d) * 86400000 + tod + ticks_diff(now, t)
        ep = r.app.epoch_s()
        return None if ep is None else ep * 1000

    def poll(self, now, force=False):
        """Publish queued events the gateway has not taken within gw_grace_s (all of
        them when ``force``: the last attempt before switch-off)."""
        if not force and self.wait_ms(now):
            return
        app = self.role.app
        grace = 0 if force else self.role.cfg.get("gw_grace_s") * 1000
        pend = app.pending(now)
        # one event the gateway did not take in time means it is out of reach: then the
        # fresh ones go by cellular at once too (a second alarm does not wait gw_grace_s)
        overdue = False
        for p in pend:
            if p[3] is None or p[3] >= grace:
                overdue = True
        if not overdue:
            if self.up is not None and (self._last is None or ticks_diff(now, self._last) >= _AWAY_MS):
                self.unload()  # home again: the gateway takes the events
            return
        up = self.load()
        now_ep = self._epoch_ms(now)
        items = []
        for seq, code, data, age, epoch_s in pend:
            if now_ep is not None and age is not None:
                occ = now_ep - age
            elif epoch_s:
                occ = epoch_s * 1000
            else:
                occ = None
            items.append((seq, code, data, occ))
        # alarms first, then in sequence order
        items.sort(key=lambda it: (0 if wire.is_alarm(it[1]) else 1, it[0]))
        self._last = now
        done, _reason = up.send(items, now_ep)
        for seq in done:
            app.delivered(seq)
