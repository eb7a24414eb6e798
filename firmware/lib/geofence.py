# Safe-zone geofence for the GPS tracker: circles and polygons, with hysteresis.
#
# Distances use a local equirectangular projection around each zone (error < 0.1 % for
# zones of a few km, also at Norwegian/Arctic latitudes) with longitudes wrapped, so a
# zone across the antimeridian works. Coordinates are 1e-7 degree integers (nmea.py).
#
# Polygons and zones from configuration (JSON) are in geozones.py, imported only
# when a device has them configured (RAM).
#
# Zones are SAFE AREAS; the wearer is "inside" while inside any of them. Events:
#   EXIT  (care alarm)  inside -> outside every zone; zone = the zone last inside
#   ENTER (event)       outside -> inside a zone
# Hysteresis: a fix counts as outside only when it is more than margin_m beyond the
# border, and as inside only when more than margin_m inside it; in the band between,
# the state holds. Near the border (< 3 * margin_m beyond it) an exit needs confirm_n
# consecutive outside fixes (GPS jitter); a fix far outside exits at once, so a tracker
# that reports rarely still raises the exit on its first fix outside.
import math

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

EARTH_R_M = 6371008.8
_E7 = 10000000.0
_D2R = math.pi / 180.0

UNKNOWN = const(0)
INSIDE = const(1)
OUTSIDE = const(2)

EV_NONE = const(0)
EV_EXIT = const(0x41)   # wire code geofence_exit
EV_ENTER = const(0x42)  # wire code geofence_enter

NO_ZONE = const(0xFF)
MAX_ZONES = const(8)


class GeofenceError(ValueError):
    pass


class _Zone:
    def __init__(self, lat_e7, lon_e7):
        self.lat0_e7 = lat_e7
        self.lon0_e7 = lon_e7
        self.kx = math.cos(lat_e7 / _E7 * _D2R) * EARTH_R_M * _D2R / _E7
        self.ky = EARTH_R_M * _D2R / _E7

    def xy(self, lat_e7, lon_e7):
        # metres east/north of the zone's origin; differences taken in integers first
        # (exact also with single-precision floats), longitude wrapped at +-180 deg
        dlon = lon_e7 - self.lon0_e7
        if dlon > 1800000000:
            dlon -= 3600000000
        elif dlon < -1800000000:
            dlon += 3600000000
        return dlon * self.kx, (lat_e7 - self.lat0_e7) * self.ky


class Circle(_Zone):
    def __init__(self, lat_e7, lon_e7, radius_m):
        if not (_coord_ok(lat_e7, lon_e7) and 10 <= radius_m <= 100000):
            import geozones  # the error messages live there (RAM)
            geozones.check_circle(lat_e7, lon_e7, radius_m)  # raises GeofenceError
        _Zone.__init__(self, lat_e7, lon_e7)
        self.radius_m = radius_m

    def distance_out(self, lat_e7, lon_e7):
        """Signed distance to the border, m: < 0 inside, > 0 outside."""
        x, y = self.xy(lat_e7, lon_e7)
        return math.sqrt(x * x + y * y) - self.radius_m


def _coord_ok(lat_e7, lon_e7):
    return (isinstance(lat_e7, int) and isinstance(lon_e7, int) and -900000000 <= lat_e7 <= 900000000
            and -1800000000 <= lon_e7 <= 1800000000)


class Geofence:
    def __init__(self, zones, margin_m=25, confirm_n=2):
        if len(zones) > MAX_ZONES or not 0 <= margin_m <= 1000 or not 1 <= confirm_n <= 10:
            import geozones
            geozones.check_fence(len(zones), margin_m, confirm_n)  # raises GeofenceError
        self.zones = list(zones)
        self.margin_m = margin_m
        self.confirm_n = confirm_n
        self.state = UNKNOWN
        self.zone = NO_ZONE       # zone index we are (last) inside
        self.pending = 0          # consecutive outside fixes near the border
        self.border_m = None      # signed distance to the nearest safe-area border

    def update(self, lat_e7, lon_e7, accuracy_m=0):
        """A new fix. Returns (event, zone): EV_EXIT / EV_ENTER / EV_NONE."""
        if not self.zones:
            return EV_NONE, NO_ZONE
        best, best_i = 1e30, NO_ZONE
        for i in range(len(self.zones)):
            d = self.zones[i].distance_out(lat_e7, lon_e7)
            if d < best:
                best, best_i = d, i
        self.border_m = best
        margin = self.margin_m if self.margin_m > accuracy_m else accuracy_m
        if best < -margin or (best <= 0 and self.state == UNKNOWN):
            # clearly inside (or first fix inside)
            self.pending = 0
            prev = self.state
            self.state = INSIDE
            self.zone = best_i
            if prev == OUTSIDE:
                return EV_ENTER, best_i
            return EV_NONE, best_i
        if best > margin or (best > 0 and self.state == UNKNOWN):
            if self.state == OUTSIDE:
                return EV_NONE, NO_ZONE
            if self.state == UNKNOWN:
                # first fix after boot is outside: that is an exit we did not see
                # (reported against the nearest zone)
                self.state = OUTSIDE
                self.pending = 0
                self.zone = best_i
                return EV_EXIT, best_i
            self.pending += 1
            if self.pending >= self.confirm_n or best > 3 * margin:
                self.state = OUTSIDE
                self.pending = 0
                return EV_EXIT, self.zone
            return EV_NONE, self.zone
        # inside the hysteresis band: hold the state
        return EV_NONE, self.zone if self.state == INSIDE else NO_ZONE

    def near_border(self):
        """True while an exit is pending or the last fix was within 3 margins of it."""
        if self.pending:
            return True
        return self.border_m is not None and abs(self.border_m) < 3 * self.margin_m


# -- power-aware reporting -----------------------------------------------------------

def report_interval_ms(state, moving, battery_pct, near_border=False, base_ms=60000,
                       still_ms=600000, outside_ms=30000, border_ms=10000):
    """How long until the next fix/report.

    Outside the safe area: track closely (outside_ms); near the border or an exit
    pending: border_ms (confirm fast); moving inside: base_ms; still inside: still_ms.
    Low battery stretches the inside intervals (x2 below 30 %, x4 below 15 %) but never
    the outside/border ones: a wandering person is the case the battery is kept for.
    """
    if state == OUTSIDE:
        return outside_ms
    if near_border:
        return border_ms
    ms = base_ms if moving else still_ms
    if battery_pct is not None and battery_pct != 0xFF:
        if battery_pct < 15:
            ms *= 4
        elif battery_pct < 30:
            ms *= 2
    return ms
