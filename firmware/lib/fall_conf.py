# Confidence of a fall suspicion (lib/fall.py), computed once per suspicion; a module of
# its own that the device drops from sys.modules again (RAM; roles/fall.py).
#
# 50..100: the mean margin by which the detector's rules were met, per mille of each
# rule's threshold: 50 = every rule just met; 100 = impact >= 2x its threshold, turned
# >= 90 deg, perfectly still, a free fall down to 0 g (pendant), an impact velocity
# change >= 2x its threshold and the forearm lying horizontal (wrist). Integers only
# (big ints are fine here).
from fall import _isqrt


def confidence(d, var_n2, s2):
    n = d._count
    imp = d.impact_mg
    m = min(1000, (_isqrt(d._peak2) - imp) * 1000 // imp)
    still = d.still_mg
    m += (still - _isqrt(var_n2) // n) * 1000 // still
    c = d._cos1024
    best = 1024
    for k in range(d._pk):
        rx, ry, rz = d._px[k], d._py[k], d._pz[k]
        q = _isqrt((rx * rx + ry * ry + rz * rz) * s2)
        if q:
            v = (rx * d._sx + ry * d._sy + rz * d._sz) * 1024 // q
            if v < best:
                best = v
    m += 1000 if c <= 0 or best <= 0 else max(0, min(1000, (c - best) * 1000 // c))
    k = 3
    if d._ff2:
        ff = d.freefall_mg
        m += max(0, (ff - _isqrt(d._ffm2)) * 1000 // ff)
        k += 1
    if d._impulse_n:
        m += min(1000, (d._burst - d._impulse_n) * 1000 // d._impulse_n)
        k += 1
    a = d._sin1024
    if a:   # forearm: horizontal = full margin, at the limit = none
        m += (a - abs(d._sx) * 1024 // max(1, _isqrt(s2))) * 1000 // a
        k += 1
    return 50 + m * 50 // (k * 1000)
