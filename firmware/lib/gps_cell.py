# Cellular delivery of the GPS tracker (roles/gps.py), imported only on trackers with
# a modem (setting "modem"): settings, the modem self-test at boot, and the second
# uplink through the App's API (app.pending() / app.delivered()). See docs/gps.md.
#
# Settings: the cell_host / cell_port / cell_apn / cell_dialect config keys (settable
# with a CONFIG frame); when cell_host is empty, <data>/cellular.json
# {"host": "...", "port": 1883, "apn": "", "dialect": "sim7080"|"bg95"}.
import json
from time import ticks_diff
import wire
from modem import ModemError, make
from modem_mqtt import CellularUplink


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
    return host, port, apn, dialect


def build(role):
    """A Cellular for ``role``, or None (bad settings: rejects; no modem UART: self_test_failed(6))."""
    app = role.app
    hal = role.hal
    try:
        host, port, apn, dialect = settings(role)
        make(None, None, None, dialect)  # ValueError for an unknown dialect
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        app.reject("config")
        return None
    try:
        u = hal.uart("modem")
    except (OSError, KeyError):  # no modem UART on this board
        app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
        return None

    def wait(ms):  # modem command waits: keep the watchdog fed through a long session
        app.kick()
        hal.sleep_ms(ms)

    modem = make(u, hal.clock.ticks_ms, wait, dialect)
    dev = "".join("%02x" % b for b in hal.device_id())
    cfg = role.cfg
    c = Cellular(role, modem, CellularUplink(modem, dev, host, port, hal.clock.ticks_ms, "gps", apn,
                                             cfg.get("retry_ms") * 15, cfg.get("retry_max_ms") * 15))
    try:
        modem.start()
    except ModemError:  # dead or absent modem: report it, keep tracking
        app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
    return c


class Cellular:
    def __init__(self, role, modem, uplink):
        self.role = role
        self.modem = modem
        self.uplink = uplink

    def power_off(self):
        return self.uplink.power_off()

    def _epoch_ms(self, now):
        r = self.role
        if r.gnss_epoch is not None:
            return r.gnss_epoch[0] + ticks_diff(now, r.gnss_epoch[1])
        ep = r.app.epoch_s()
        return None if ep is None else ep * 1000

    def poll(self, now, force=False):
        """Publish queued events the gateway has not taken within gw_grace_s (all of
        them when ``force``: the last attempt before switch-off)."""
        up = self.uplink
        if not force and up.wait_ms(now):
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
            return
        # alarms first, then in sequence order
        items.sort(key=lambda it: (0 if wire.is_alarm(it[1]) else 1, it[0]))
        done, _reason = up.send(items, now_ep)
        for seq in done:
            app.delivered(seq)
