# Cellular delivery of the GPS tracker (roles/gps.py), imported only on trackers with
# a modem (setting "modem"): settings, the modem self-test at boot, and the second
# uplink through the App's API (app.pending() / app.delivered()). See docs/gps.md.
#
# Settings: the cell_host / cell_port / cell_apn / cell_dialect config keys (settable
# with a CONFIG frame); when cell_host is empty, <data>/cellular.json
# {"host": "...", "port": 1883, "apn": "", "dialect": "sim7080"|"bg95"}.
#
# RAM: the modem driver and the MQTT uplink (modem, modem_bg95, modem_mqtt) are loaded
# only while the tracker is away from home - from the first event the gateway did not
# take within gw_grace_s until _AWAY_MS after the last cellular session - and dropped
# again at home. The backoff and per-event attempt counters survive the unload.
import sys
import json
from time import ticks_diff
import wire

_AWAY_MS = 600000  # no cellular session for 10 min (the gateway takes the events): home
_MODS = ("modem_mqtt", "modem_bg95", "modem")
_DIALECTS = ("sim7080", "bg95")  # modem.make()


def settings(role):
    """(host, port, apn, dialect); raises OSError/ValueError/KeyError/TypeError."""
    cfg = role.cfg
    if cfg.get("cell_host"):
        return cfg.get("cell_host"), cfg.get("cell_port"), cfg.get("cell_apn"), cfg.get("cell_dialect")
    with open(role.hal.data_dir + "/cellular.json") as f:
        c = json.load(f)
    host, port, apn = c["host"], c.get("port", 1883), c.get("apn", "")
    dialect = c.get("dialect", "sim7080")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("cellular.json")
    if dialect not in _DIALECTS:
        raise ValueError("modem dialect %r unknown; use sim7080 or bg95" % (dialect,))
    return host, port, apn, dialect


def build(role):
    """A Cellular for ``role``, or None (bad settings: rejects; no modem UART:
    self_test_failed(6)). Runs the modem self-test (self_test_failed(6) if it is dead)."""
    app = role.app
    hal = role.hal
    try:
        host, port, apn, dialect = settings(role)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        app.reject("config")
        return None
    try:
        hal.uart("modem")
    except (OSError, KeyError):  # no modem UART on this board
        app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
        return None
    dev = "".join("%02x" % b for b in hal.device_id())
    c = Cellular(role, host, port, apn, dialect, dev)
    from modem import ModemError
    try:
        c.load().modem.start()
    except ModemError:  # dead or absent modem: report it, keep tracking
        app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
    c.unload()  # at home until an event is overdue at the gateway
    return c


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
        r = self.role
        if r.gnss_epoch is not None:
            return r.gnss_epoch[0] + ticks_diff(now, r.gnss_epoch[1])
        ep = r.app.epoch_s()
        return None if ep is None else ep * 1000

    def poll(self, now, force=False):
        """Publish queued events the gateway has not taken within gw_grace_s (all of
        them when ``force``: the last attempt before switch-off)."""
        if not force and self.wait_ms(now):
            return
        app = self.role.app
        grace = 0 if force else self.role.cfg.get("gw_grace_s") * 1000
        now_ep = self._epoch_ms(now)
        items = []
        overdue = False
        for seq, code, data, age, epoch_s in app.pending(now):
            if age is None or age >= grace:
                overdue = True
            if now_ep is not None and age is not None:
                occ = now_ep - age
            elif epoch_s:
                occ = epoch_s * 1000
            else:
                occ = None
            items.append((seq, code, data, occ))
        # one event the gateway did not take in time means it is out of reach: then the
        # fresh ones go by cellular at once too (a second alarm does not wait gw_grace_s)
        if not overdue:
            if self.up is not None and (self._last is None or ticks_diff(now, self._last) >= _AWAY_MS):
                self.unload()  # home again: the gateway takes the events
            return
        # alarms first, then in sequence order
        items.sort(key=lambda it: (0 if wire.is_alarm(it[1]) else 1, it[0]))
        self._last = now
        done, _reason = self.load().send(items, now_ep)
        for seq in done:
            app.delivered(seq)
