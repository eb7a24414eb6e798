# GPS tracker switch-off and wake-up (roles/gps.py): rare, so imported for the
# moment it happens and dropped again (RAM).
#
# shutdown: last message, modem and GNSS off; the reason is kept in <data>/gps_off,
# so waking from deep sleep while it still holds (switch still off, battery still
# empty) does not report it again.
import os
import wire

_H_MS = 3600000


def shutdown(role, reason):
    role.off = reason
    app = role.app
    if _marker(role) != reason:
        app.emit(wire.EV_POWER_OFF, bytes((reason,)))
        if role.cell is not None:
            role._cell().poll(role, app.now(), True)  # a last delivery attempt
        try:
            with open(role.hal.data_dir + "/gps_off", "w") as f:
                f.write(str(reason))
        except OSError:
            app.reject("flash")
    if role.cell is not None:
        role._cell().power_off(role)
    role._gnss_power(0)
    return True


def _marker(role):
    try:
        with open(role.hal.data_dir + "/gps_off") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def at_boot(role):
    """Booted with the off marker set: stay off (GNSS unpowered) until its cause is gone."""
    m = _marker(role)
    if m:
        role.off = m
        if not back_on(role):
            role._gnss_power(0)


def back_on(role):
    """Off and its cause gone (switched on / charged)? Then wake up: True."""
    pct, mv, flags = role.hal.battery()
    if role.off == 1:
        on = role._switch() == 1
    else:
        on = bool(flags & 2) or mv >= role.cfg.get("battery_empty_mv") + 100
    if on:
        wake(role)
    return on


def sleep_ok(role):
    wake_pins = [n for n in ("power_switch", "vbus") if role._pin(n, "in") is not None]
    return (_H_MS, wake_pins)


def wake(role):
    role.off = 0
    role._switch_seen = role._switch() == 1
    try:
        os.remove(role.hal.data_dir + "/gps_off")
    except OSError:
        pass  # no marker: nothing to clear
    role._gnss_power(1)
