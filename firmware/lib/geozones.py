# Polygon safe zones, zones from configuration and the validation messages for the
# geofence (geofence.py).
# Imported only while zones are configured beyond the home circle: the GPS role
# loads it to build the zones, and drops it again when no polygon needs it (RAM).
#
#   zones = geozones.load([{"lat": 59.9, "lon": 10.7, "radius_m": 200},
#                          {"polygon": [[59.9, 10.7], [59.91, 10.7], [59.91, 10.72]]}], reject)
import math
from geofence import _Zone, Circle, GeofenceError, MAX_ZONES, _E7

MAX_VERTICES = 32


def _check_coord(lat_e7, lon_e7):
    if not isinstance(lat_e7, int) or not isinstance(lon_e7, int):
        raise GeofenceError("coordinates must be integers in 1e-7 degree")
    if not (-900000000 <= lat_e7 <= 900000000) or not (-1800000000 <= lon_e7 <= 1800000000):
        raise GeofenceError("coordinate %r,%r out of range" % (lat_e7, lon_e7))


def check_circle(lat_e7, lon_e7, radius_m):
    """Raise the GeofenceError naming what is wrong with a circle (geofence.Circle)."""
    _check_coord(lat_e7, lon_e7)
    if not (10 <= radius_m <= 100000):
        raise GeofenceError("radius_m: %r out of range; use 10..100000" % (radius_m,))


def check_fence(n_zones, margin_m, confirm_n):
    """Raise the GeofenceError naming what is wrong with a Geofence's parameters."""
    if n_zones > MAX_ZONES:
        raise GeofenceError("%d zones; at most %d" % (n_zones, MAX_ZONES))
    if not (0 <= margin_m <= 1000):
        raise GeofenceError("margin_m: %r out of range; use 0..1000" % (margin_m,))
    if not (1 <= confirm_n <= 10):
        raise GeofenceError("confirm_n: %r out of range; use 1..10" % (confirm_n,))


class Polygon(_Zone):
    def __init__(self, points):
        if not (3 <= len(points) <= MAX_VERTICES):
            raise GeofenceError("polygon: %d vertices; use 3..%d" % (len(points), MAX_VERTICES))
        for p in points:
            _check_coord(p[0], p[1])
        # origin at the first vertex; vertices projected once
        _Zone.__init__(self, points[0][0], points[0][1])
        self.pts = [self.xy(p[0], p[1]) for p in points]
        span = 0.0
        for x, y in self.pts:
            span = max(span, abs(x), abs(y))
        if span > 200000:
            raise GeofenceError("polygon: spans %d km; use zones smaller than 200 km" % (span // 1000))

    def distance_out(self, lat_e7, lon_e7):
        px, py = self.xy(lat_e7, lon_e7)
        pts = self.pts
        n = len(pts)
        inside = False
        best = 1e30
        j = n - 1
        for i in range(n):
            xi, yi = pts[i]
            xj, yj = pts[j]
            if (yi > py) != (yj > py):
                xc = xi + (py - yi) * (xj - xi) / (yj - yi)
                if px < xc:
                    inside = not inside
            # distance to segment j-i
            dx, dy = xi - xj, yi - yj
            L2 = dx * dx + dy * dy
            t = 0.0 if L2 == 0 else ((px - xj) * dx + (py - yj) * dy) / L2
            t = 0.0 if t < 0 else 1.0 if t > 1 else t
            ex, ey = xj + t * dx - px, yj + t * dy - py
            d2 = ex * ex + ey * ey
            if d2 < best:
                best = d2
            j = i
        d = math.sqrt(best)
        return -d if inside else d


def zone_from_config(z):
    """{"lat": 59.9, "lon": 10.7, "radius_m": 200} or {"polygon": [[lat, lon], ...]}."""
    if not isinstance(z, dict):
        raise GeofenceError("zone must be an object with lat/lon/radius_m or polygon")
    if "polygon" in z:
        pts = z["polygon"]
        if not isinstance(pts, list):
            raise GeofenceError("polygon must be a list of [lat, lon]")
        conv = []
        for p in pts:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise GeofenceError("polygon vertex %r: use [lat, lon]" % (p,))
            conv.append((_deg_e7(p[0]), _deg_e7(p[1])))
        return Polygon(conv)
    for k in ("lat", "lon", "radius_m"):
        if k not in z:
            raise GeofenceError("circle zone needs %s" % k)
    r = z["radius_m"]
    if not isinstance(r, (int, float)) or isinstance(r, bool):
        raise GeofenceError("radius_m: %r is not a number" % (r,))
    return Circle(_deg_e7(z["lat"]), _deg_e7(z["lon"]), r)


def _deg_e7(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GeofenceError("coordinate %r is not a number" % (v,))
    return int(round(v * _E7))


def load(items, reject):
    """Zones from a JSON list; a bad zone is reported with reject("config") and skipped
    (the others work); a value that is not a list rejects all."""
    if not isinstance(items, list):
        reject("config")
        return []
    out = []
    for z in items:
        try:
            out.append(zone_from_config(z))
        except GeofenceError:
            reject("config")
    return out
