# Boot and configuration part of the GPS tracker role (roles/gps.py): state at
# start, the optional board pins, the geofence from the settings (home circle,
# "zones" setting or <data>/zones.json), the cellular uplink, the off marker.
# Imported for start() and per CONFIG change, then dropped again (RAM).
import sys
import json
from time import ticks_diff
import store
import nmea
import wire
import geofence as gf

_DIALECTS = ("sim7080", "bg95")  # modem.make()


def start(role):
    now = role.app.now()
    role.parser = nmea.NmeaParser()
    role.uart = role.hal.uart("gps")
    # optional board pins: a board without them has an always-on receiver and no
    # power switch (then the tracker is never "switched off")
    role.gps_en = role._pin("gps_en", "out")
    role._gnss_power(1)
    role.switch = role._pin("power_switch", "in")
    role._switch_seen = role._switch() == 1
    role.speed = None            # mm/s over ground of the last fix
    role.fix_at = None
    role.gnss_epoch = None       # ((y, m, d), ms of day, ticks) of the last dated fix
    role._bytes_at = now
    role._booted = now
    role._self_test_done = False
    role._silent_reported = False
    role._no_fix_reported = False
    role._no_fix_since = now
    role._report_due = now
    role._charger_since = None
    role._charger_reported = False
    role._counts = (0, 0, 0)
    role.positions = 0
    role.exits = 0
    role.enters = 0
    role.off = 0
    build_fence(role, role.cfg)
    role.cell = None
    if role.cfg.get("modem"):
        role.cell = build_cell(role)
    if store.exists(role.hal.data_dir + "/gps_off"):
        role._off().at_boot(role)  # switched off before this (deep-sleep) boot


def on_config(role, cfg):
    role.cfg = cfg
    old = role.fence
    build_fence(role, cfg)
    role.fence.state, role.fence.zone = old.state, old.zone  # keep inside/outside


def build_fence(role, cfg):
    zones = []
    if cfg.get("home_radius_m"):
        try:
            zones.append(gf.Circle(cfg.get("home_lat_e7"), cfg.get("home_lon_e7"), cfg.get("home_radius_m")))
        except gf.GeofenceError:
            role.app.reject("config")
    raw = cfg.get("zones")
    if not raw:
        raw = _zones_file(role)
    if raw is not None:
        # more zones than the home circle: polygon/JSON code only while needed
        import geozones
        zones += geozones.load(raw, role.app.reject)
        sys.modules.pop("geozones", None)
    role.fence = gf.Geofence(zones[:gf.MAX_ZONES], cfg.get("margin_m"), cfg.get("confirm_n"))


def _zones_file(role):
    # <data>/zones.json: {"zones": [{"lat", "lon", "radius_m"} | {"polygon": [[lat, lon], ...]}]}
    # (fallback when the "zones" setting is empty); None = no file
    try:
        with open(role.hal.data_dir + "/zones.json") as f:
            raw = json.load(f)
    except OSError:
        return None
    except ValueError:
        raw = None
    z = raw.get("zones") if isinstance(raw, dict) else None
    return 0 if z is None else z  # 0 (not a list): rejected by geozones.load


# -- cellular (setting "modem") ------------------------------------------------------
# Settings: the cell_host / cell_port / cell_apn / cell_dialect config keys (settable
# with a CONFIG frame); when cell_host is empty, <data>/cellular.json
# {"host": "...", "port": 1883, "apn": "", "dialect": "sim7080"|"bg95"}.
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


def build_cell(role):
    """The gps_cell state list for ``role``, or None (bad settings: rejects; no modem UART:
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
    if not _modem_answers(hal, app):  # dead or absent modem: report it, keep tracking
        app.emit(wire.EV_SELF_TEST_FAILED, bytes((6,)))
    import gps_cell  # the cellular uplink: its state only, the code is loaded on demand (RAM)
    sys.modules.pop("gps_cell", None)
    return gps_cell.state(host, port, apn, dialect, "".join("%02x" % b for b in hal.device_id()))


def _modem_answers(hal, app, timeout_ms=2000):
    """The boot self-test: does the modem answer AT with OK within timeout_ms? Done
    here without the driver, which is loaded only when the tracker is away (RAM)."""
    u = hal.uart("modem")
    u.write(b"AT\r")
    buf = b""
    t0 = hal.clock.ticks_ms()
    while ticks_diff(hal.clock.ticks_ms(), t0) < timeout_ms:
        b = u.read(64)
        if b:
            buf = (buf + b)[-64:]
            if b"OK\r\n" in buf:
                return True
        else:
            if app._wdt is not None and app._healthy(app.now()):
                app._wdt.feed()   # (as gps_cell.kick: a long modem wait)
            hal.sleep_ms(20)
    return False
