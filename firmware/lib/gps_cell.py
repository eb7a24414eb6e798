# Cellular delivery of the GPS tracker (roles/gps.py) on trackers with a modem
# (setting "modem"; gps_setup.build_cell() reads the settings and runs the boot
# self-test): the second uplink through the App's API (app.pending() /
# app.delivered()). TLS and the device's broker credentials come from
# <data>/cellular.json and <data>/cell/ (modem_cred.credentials), read when the uplink
# is loaded; an alarm leaves the queue only at the platform's ack. See docs/gps.md.
#
# RAM: the role keeps only a small state list (role.cell, below) and imports this
# module while events are queued or the tracker is away; the modem driver and the
# MQTT uplink (modem, modem_bg95, modem_mqtt) are loaded only while the tracker is
# away from home - from the first event the gateway did not take within gw_grace_s
# until _AWAY_MS after the last cellular session. At home all of it is dropped again;
# the backoff and per-event attempt counters survive in the state list.
import sys
from time import ticks_diff
import wire

_AWAY_MS = 600000  # no cellular session for 10 min (the gateway takes the events): home
_MODS = ("modem_mqtt", "modem_bg95", "modem")

# role.cell = [host, port, apn, dialect, dev, uplink, saved, last]
#   uplink: modem_mqtt.CellularUplink while away, else None
#   saved:  (fails, due, attempts, sessions, published, last_reason) while unloaded
#   last:   ticks of the last cellular session (None: none yet)
_UP = 5
_SAVED = 6
_LAST = 7


def state(host, port, apn, dialect, dev):
    return [host, port, apn, dialect, dev, None, (0, None, {}, 0, 0, ""), None]


def load(role):
    """The uplink (imports the modem modules if they are not loaded)."""
    c = role.cell
    up = c[_UP]
    if up is None:
        from modem import make
        from modem_mqtt import CellularUplink
        app = role.app
        hal = role.hal

        def wait(ms):  # modem command waits: keep the watchdog fed through a long session
            kick(app)
            hal.sleep_ms(ms)

        m = make(hal.uart("modem"), hal.clock.ticks_ms, wait, c[3])
        cfg = role.cfg
        up = CellularUplink(m, c[4], c[0], c[1], hal.clock.ticks_ms, "gps", c[2],
                            cfg.get("retry_ms") * 15, cfg.get("retry_max_ms") * 15,
                            data=hal.data_dir, reject=app.reject)
        up.fails, up._due, up.attempts, up.sessions, up.published, up.last_reason = c[_SAVED]
        c[_UP] = up
    return up


def unload(role):
    """Back home: drop the uplink and the modem modules (and this module)."""
    c = role.cell
    up = c[_UP]
    if up is not None:
        c[_SAVED] = (up.fails, up._due, up.attempts, up.sessions, up.published, up.last_reason)
        c[_UP] = None
        for n in _MODS:
            sys.modules.pop(n, None)
    sys.modules.pop("gps_cell", None)


def wait_ms(c, now):
    """0 if a session may start now, else ms until the backoff expires."""
    due = c[_SAVED][1] if c[_UP] is None else c[_UP]._due
    if due is None:
        return 0
    left = ticks_diff(due, now)
    return left if left > 0 else 0


def power_off(role):
    r = load(role).power_off()
    unload(role)
    return r


def _epoch_ms(role, now):
    # UTC now: from the last dated GNSS fix, else the gateway's TIME (modem_mqtt is
    # loaded by now)
    if role.gnss_epoch is not None:
        from modem_mqtt import civil_to_days
        (y, m, d), tod, t = role.gnss_epoch
        return civil_to_days(y, m, d) * 86400000 + tod + ticks_diff(now, t)
    ep = role.app.epoch_s()
    return None if ep is None else ep * 1000


def kick(app):
    """Feed the watchdog from inside a long blocking operation (a modem session): only
    while the App would feed it anyway (role healthy, flash working)."""
    if app._wdt is not None and app._healthy(app.now()):
        app._wdt.feed()


def _pending(app, now):
    """Events waiting for the gateway: [(seq, code, data, age_ms, epoch_s)]; age_ms None
    if queued before this boot, epoch_s 0 if queued without wall time."""
    q = app.queue
    out = []
    for e in q.entries():
        rec = q.get(e[0])
        if rec is not None:
            out.append((rec.seq, rec.code, rec.data,
                        ticks_diff(now, rec.t_ms) if rec.boot == app.boot_id else None, rec.epoch_s))
    return out


def poll(role, now, force=False):
    """Publish queued events the gateway has not taken within gw_grace_s (all of them
    when ``force``: the last attempt before switch-off)."""
    c = role.cell
    if not force and wait_ms(c, now):
        return
    app = role.app
    grace = 0 if force else role.cfg.get("gw_grace_s") * 1000
    pend = _pending(app, now)
    # one event the gateway did not take in time means it is out of reach: then the
    # fresh ones go by cellular at once too (a second alarm does not wait gw_grace_s)
    overdue = False
    for p in pend:
        if p[3] is None or p[3] >= grace:
            overdue = True
    if not overdue:
        if c[_UP] is None or c[_LAST] is None or ticks_diff(now, c[_LAST]) >= _AWAY_MS:
            unload(role)  # at home: the gateway takes the events
        return
    up = load(role)
    now_ep = _epoch_ms(role, now)
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
    c[_LAST] = now
    done, _reason = up.send(items, now_ep)
    for seq in done:
        app.queue.ack(seq)   # delivered: it leaves the queue as if ACKed
