# FallDetector construction (lib/fall.py): validation and the derived constants, and
# the fall role's detector and cancel window from its settings (roles/fall.py).
# Needed only while a detector is built (boot, CONFIG frame), so a module of its own
# that the device drops from sys.modules again (RAM).
try:
    from micropython import const
except ImportError:  # CPython (bench --cpython)
    def const(x):
        return x

from array import array
from fall import (THRESHOLDS, RULES, FallConfigError, PLACEMENT_WRIST, PLACEMENT_CHEST,
                  PLACEMENT_WAIST)

# timing, ms (see lib/fall.py)
_BLOCK_MS = const(250)
_PRE_FROM_MS = const(3000)
_PRE_TO_MS = const(1000)
_OBSERVE_MS = const(2000)
_FREEFALL_MS = const(1000)     # the free-fall dip is looked for in this time before the impact
_MIN_OBSERVE_MS = const(1000)  # flush(): shortest observation worth a decision
_OBSERVE = const(2)            # = fall._OBSERVE
_IDLE = const(0)
_NBLOCKS = const(13)           # = fall._NBLOCKS

_ZEROS = (0,) * _NBLOCKS
# placement names of the settings (lib/fall_schema.py) -> placement
PLACES = ("wrist", "chest", "waist", "pendant", "pocket")
_PLACE_OF = b"\x00\x01\x02\x01\x02"


def build(role, cfg):
    """The fall role's detector (role.det), cancel window (role.alert), placement and
    rate from its settings. A threshold the detector refuses (the schema's ranges are
    wider) is counted and the placement's default is used."""
    from fall import FallDetector
    from fall_alert import FallAlert
    p = _PLACE_OF[PLACES.index(cfg.get("placement"))]
    kw = {}
    if cfg.get("impact_mg"):
        kw["impact_mg"] = cfg.get("impact_mg")
    if cfg.get("angle_deg") >= 0:
        kw["angle_deg"] = cfg.get("angle_deg")
    if cfg.get("still_mg"):
        kw["still_mg"] = cfg.get("still_mg")
    if cfg.get("freefall_mg") >= 0:
        kw["freefall_mg"] = cfg.get("freefall_mg")
    role.rate = int(cfg.get("rate_hz"))
    try:
        role.det = FallDetector(role.rate, p, **kw)
    except FallConfigError:
        role.app.reject("config")
        role.det = FallDetector(role.rate, p)
    role.placement = p
    role.alert = FallAlert(cfg.get("cancel_s") * 1000)


def setup(d, rate_hz, placement, impact_mg, angle_deg, still_mg, freefall_mg, impulse_mgs, arm_deg=None):
    if not isinstance(rate_hz, int) or rate_hz < 10 or rate_hz > 1000:
        raise FallConfigError("rate_hz: %r out of range; use 10..1000" % (rate_hz,))
    if placement not in (PLACEMENT_WRIST, PLACEMENT_CHEST, PLACEMENT_WAIST):
        raise FallConfigError("placement: %r unknown; use 0 wrist, 1 chest, 2 waist" % (placement,))
    imp, ang, still = THRESHOLDS[placement]
    ff, hard, impulse, settle_ms, chain_ms, arm = RULES[placement]
    if impact_mg is not None:
        imp = impact_mg
    if angle_deg is not None:
        ang = angle_deg
    if still_mg is not None:
        still = still_mg
    if freefall_mg is not None:
        ff = freefall_mg
    if impulse_mgs is not None:
        impulse = impulse_mgs
    if arm_deg is not None:
        arm = arm_deg
    if not (1200 <= imp <= 16000):
        raise FallConfigError("impact_mg: %r out of range; use 1200..16000" % (imp,))
    if not (0 <= ang <= 90):
        raise FallConfigError("angle_deg: %r out of range; use 0..90" % (ang,))
    if not (20 <= still <= 2000):
        raise FallConfigError("still_mg: %r out of range; use 20..2000" % (still,))
    if not (0 <= ff <= 1000):
        raise FallConfigError("freefall_mg: %r out of range; use 0 (off)..1000" % (ff,))
    if not (0 <= impulse <= 5000):
        raise FallConfigError("impulse_mgs: %r out of range; use 0 (off)..5000" % (impulse,))
    if not (0 <= arm <= 90):
        raise FallConfigError("arm_deg: %r out of range; use 0 (off)..90" % (arm,))
    d.rate_hz = rate_hz
    d.placement = placement
    d.impact_mg = imp
    d.angle_deg = ang
    d.still_mg = still
    d.freefall_mg = ff
    d.impulse_mgs = impulse
    # impulse in mg per sample, compared without a division per sample
    d._impulse_n = impulse * rate_hz
    d._imp2 = imp * imp
    d._still2 = still * still
    d._ff2 = ff * ff
    d._hard2 = hard * hard if hard else 1 << 40   # (an impact no sensor reports)
    # cos(angle) in 1/1024 for the integer angle test (table avoids float math)
    d._cos1024 = _cos1024(ang)
    # sin(arm_deg) in 1/1024 for the forearm rule (0 = off; 90 deg accepts any posture)
    d._sin1024 = _cos1024(90 - arm) if 0 < arm < 90 else 0
    d._block_n = max(1, rate_hz * _BLOCK_MS // 1000)
    d._settle_n = rate_hz * settle_ms // 1000
    d._chain_n = rate_hz * chain_ms // 1000
    d._observe_n = max(2, rate_hz * _OBSERVE_MS // 1000)
    d._refresh_n = rate_hz * _PRE_FROM_MS // 1000
    blk_ms = d._block_n * 1000 // rate_hz
    # block ages (0 = block being filled) that make up the "before" window
    d._pre_lo = max(1, (_PRE_TO_MS + blk_ms - 1) // blk_ms)
    d._pre_hi = min(_NBLOCKS - 1, max(d._pre_lo, _PRE_FROM_MS // blk_ms))
    # blocks (ages 0..) that cover the free-fall time before an impact
    d._ff_hi = min(_NBLOCKS - 1, (_FREEFALL_MS + blk_ms - 1) // blk_ms)
    # block sums as int32 arrays (RAM: 52 bytes each instead of a list of int
    # objects); sums stay far below 2**31 (<= 16 g * 250 samples per block)
    d._bx = array("i", _ZEROS)
    d._by = array("i", _ZEROS)
    d._bz = array("i", _ZEROS)
    d._bn = array("i", _ZEROS)
    d._bm = array("i", _ZEROS)  # per block: smallest |a|^2 (free-fall dip)
    d._px = array("i", _ZEROS)
    d._py = array("i", _ZEROS)
    d._pz = array("i", _ZEROS)


def flush(d):
    # FallDetector.flush (benches): decide an observation cut short by the recording's end
    if d._state == _OBSERVE and d._count * 1000 >= _MIN_OBSERVE_MS * d.rate_hz:
        d._state = _IDLE
        d.candidates += 1
        return d._decide()
    return 0


# cos(k * 5 deg) * 1024, k = 0..18; angles between are interpolated linearly
_COS_TABLE = (1024, 1020, 1008, 989, 962, 928, 887, 839, 784, 724, 658, 587, 512,
              433, 350, 265, 178, 89, 0)


def _cos1024(deg):
    if deg <= 0:
        return 1024
    if deg >= 90:
        return 0
    k = deg // 5
    f = deg - k * 5
    return (_COS_TABLE[k] * (5 - f) + _COS_TABLE[k + 1] * f) // 5
