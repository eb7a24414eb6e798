# Fall detector: impact, then a changed and still posture; per placement (waist,
# chest/pendant, wrist) its own physical rules (see RULES).
#
# Streaming, O(1) per sample, integer arithmetic only (milli-g), so the decision is
# bit-identical on the ESP32 (single-precision floats), the unix port and CPython.
# See docs/fall-detection.md for the algorithm, its parameters and its evaluation.
#
#   det = FallDetector(rate_hz=50, placement=PLACEMENT_WAIST)
#   peak_cg = det.feed(x_mg, y_mg, z_mg)   # > 0: fall suspected (open the cancel window)
#   det.confidence                          # 50..100 for that suspicion (evidence margin)
try:
    from micropython import const
except ImportError:  # CPython (bench --cpython); same integers, same results
    def const(x):
        return x

PLACEMENT_WRIST = const(0)
PLACEMENT_CHEST = const(1)  # chest strap or pendant
PLACEMENT_WAIST = const(2)
PLACEMENT_NAMES = ("wrist", "chest", "waist")

# Per placement: (impact_mg, angle_deg, still_mg).
#  impact_mg: |a| peak that counts as an impact (body hitting the floor).
#  angle_deg: change of the gravity direction, before the fall vs. after it.
#  still_mg:  standard deviation of the acceleration vector allowed while lying after it.
# Physical reasoning (docs/fall-detection.md): trunk impacts of real and simulated falls
# are >= 2 g while walking/sitting/lying down stay below; the trunk turns from upright to
# lying (~90 deg) in a fall; the wrist swings hard in daily life and ends a fall at any
# angle, so it needs a higher impact and a weak angle rule but a stricter stillness.
THRESHOLDS = (
    (3000, 45, 300),  # wrist: hands and arm swings hit hard; the arm lies still after a fall
    (2000, 60, 300),  # chest / pendant: trunk turns to lying; soft landings need a free fall (RULES)
    (2000, 60, 300),  # waist / belt (SisFall placement; unchanged)
)
# Per placement, the rules beyond the three thresholds:
#   (freefall_mg, hard_mg, impulse_mgs, settle_ms, chain_ms, arm_deg)
#  freefall_mg: |a| must have dipped to at most this within 1 s before the first impact
#               (the body dropping; 0 = no such rule). Daily lie-downs and sit-downs are
#               controlled: a pendant stays near 1 g until it lands...
#  hard_mg:     ...unless the impact reaches this (0 = the free-fall rule always holds): a
#               faint, or a fall from a chair, has little free fall but hits hard.
#  impulse_mgs: the impact's velocity change, sum of (|a| - 1 g) dt over the samples above
#               1.5 g from the impact until the posture is measured, at least this (mg*s;
#               150 mg*s = 1.5 m/s; 0 = no such rule). A hand dropped on a mattress or a
#               table stops from well under 1.5 m/s; a hand or arm hitting the floor in a
#               fall from standing does not.
#  settle_ms:   time after the last impact before stillness and posture are measured (a
#               faller's arms move for a few seconds: pushing, reaching, then rest).
#  chain_ms:    longest impact chain (first to last impact) that can be a fall (0 = any):
#               clapping, jogging and hopping hit the wrist for many seconds.
#  arm_deg:     after the fall the forearm rests low: its axis (the sensor's x axis, along
#               the forearm in a wristband) at most this far from horizontal (0 = no such
#               rule). Lying on the floor, the forearm lies on it; an arm hanging at the
#               side (standing, sitting, after clapping) or a hand propped on a mattress
#               is near vertical. Only |x| counts: left or right wrist, or the band turned
#               round the wrist, give the same answer.
RULES = (
    (0, 0, 150, 3000, 2500, 60),   # wrist
    (600, 2500, 0, 1000, 0, 0),    # chest / pendant
    (0, 0, 0, 1000, 0, 0),         # waist (today's detector)
)
# Timing, ms (physical, not tuned): the falling phase lasts < 1 s, so the posture
# "before" is taken from 250 ms blocks in [-3 s, -1 s] before the impact (the one most
# different from the posture after counts: a person who leans forward to stand up and
# then falls was upright a moment earlier); the body settles within settle_ms (RULES)
# after the impact; stillness and the posture "after" are measured over the next 2 s.
# (The constants used at construction only are in lib/fall_setup.py.)
_NBLOCKS = const(13)           # covers 3 s before an impact plus the block being filled
_FLOOR2 = const(2250000)       # (1.5 g)^2: samples above it count for the impulse
_NO_MIN = const(0x3FFFFFFF)    # block minimum of |a|^2 before any sample (a small int on the ESP32)
# a 250 ms block whose mean is 0.7..1.3 g is quasi-static: its mean is gravity
_GRAVITY_LO2 = const(490000)
_GRAVITY_HI2 = const(1690000)

# FallDetector.last_rule: the rule a candidate failed (0: none, a fall was raised)
_RULE_TURN = const(1)
_RULE_STILL = const(2)
_RULE_FREEFALL = const(3)
_RULE_CHAIN = const(4)
_RULE_IMPULSE = const(5)
_RULE_ARM = const(6)

_IDLE = const(0)
_SETTLE = const(1)
_OBSERVE = const(2)


class FallConfigError(ValueError):
    pass


def _isqrt(n):
    # integer square root (Newton), exact floor for n >= 0
    if n <= 0:
        return 0
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


def _norm(x, y, z, m2):
    # |a| = floor(sqrt(m2)) from an upper bound (largest + half the other two
    # components >= |a|): two or three Newton steps instead of twenty
    x, y, z = abs(x), abs(y), abs(z)
    r = x + y + z
    b = max(x, y, z)
    r = b + (r - b + 1) // 2 + 1
    while True:
        q = (r + m2 // r) >> 1
        if q >= r:
            return r
        r = q


class FallDetector:
    """Impact -> settle -> observe posture and stillness. Feed milli-g samples at rate_hz."""

    def __init__(self, rate_hz=50, placement=PLACEMENT_WAIST, impact_mg=None,
                 angle_deg=None, still_mg=None, freefall_mg=None, impulse_mgs=None, arm_deg=None):
        # validation and derived constants: lib/fall_setup.py, needed at construction
        # only (a device drops it from sys.modules afterwards: RAM)
        from fall_setup import setup
        setup(self, rate_hz, placement, impact_mg, angle_deg, still_mg, freefall_mg, impulse_mgs, arm_deg)
        self.reset()
        # diagnostics of the last decided candidate
        self.candidates = 0
        self.last_rule = 0   # why the last candidate was not raised (_RULE_* above; 0 = raised)
        self.confidence = 0

    def reset(self):
        for i in range(_NBLOCKS):
            self._bx[i] = self._by[i] = self._bz[i] = self._bn[i] = 0
            self._bm[i] = _NO_MIN
        self._bi = 0
        self._cn = 0      # samples since the first impact of the chain
        self._chain = 0   # samples from the first to the last impact
        self._ffm2 = _NO_MIN
        self._burst = 0   # impulse of the samples above 1.5 g so far (mg * samples)
        self._state = _IDLE
        self._count = 0
        self._peak2 = 0
        self._pk = 0
        self._age = 0
        self._sx = self._sy = self._sz = self._ss = 0

    def _posture(self, j):
        # a block shows the posture only if its mean is ~1 g (not mid-jump or mid-step)
        n = self._bn[j]
        if n == 0:
            return False
        x, y, z = self._bx[j], self._by[j], self._bz[j]
        r2 = x * x + y * y + z * z
        n2 = n * n
        return _GRAVITY_LO2 * n2 <= r2 <= _GRAVITY_HI2 * n2

    def _snapshot_before(self):
        # copy the "before" blocks (oldest data allowed when just started)
        bi = self._bi
        k = 0
        for age in range(self._pre_lo, self._pre_hi + 1):
            j = (bi - age) % _NBLOCKS
            if self._posture(j):
                self._px[k] = self._bx[j]
                self._py[k] = self._by[j]
                self._pz[k] = self._bz[j]
                k += 1
        if k == 0:  # less than _PRE_TO_MS of data: use what there is
            for age in range(1, _NBLOCKS):
                j = (bi - age) % _NBLOCKS
                if self._posture(j):
                    self._px[k] = self._bx[j]
                    self._py[k] = self._by[j]
                    self._pz[k] = self._bz[j]
                    k += 1
                    break
        self._pk = k
        self._age = 0
        m = _NO_MIN
        for age in range(self._ff_hi + 1):
            v = self._bm[(bi - age) % _NBLOCKS]
            if v < m:
                m = v
        self._ffm2 = m

    def feed(self, x, y, z):
        """One sample in milli-g. Returns the peak in centi-g (> 0) when a fall is
        suspected, else 0. Never raises on sample values (ints expected)."""
        m2 = x * x + y * y + z * z
        # ring of block sums for the posture before an impact
        bi = self._bi
        self._bx[bi] += x
        self._by[bi] += y
        self._bz[bi] += z
        self._bn[bi] += 1
        if m2 < self._bm[bi]:
            self._bm[bi] = m2
        if self._bn[bi] >= self._block_n:
            bi = (bi + 1) % _NBLOCKS
            self._bi = bi
            self._bx[bi] = self._by[bi] = self._bz[bi] = self._bn[bi] = 0
            self._bm[bi] = _NO_MIN

        st = self._state
        if st != _IDLE:  # (counters only run during a candidate: they stay small ints)
            self._age += 1
            self._cn += 1
        if self._impulse_n and st != _OBSERVE:
            # velocity change of the impact: the run of samples above 1.5 g that leads
            # into it, then every such sample until the posture is measured
            if m2 >= _FLOOR2:
                self._burst += _norm(x, y, z, m2) - 1000
            elif st == _IDLE:
                self._burst = 0
        if m2 >= self._imp2:
            if st == _IDLE:
                self._peak2 = m2
                self._cn = 0
                self._chain = 0
                self._snapshot_before()
            else:
                self._chain = self._cn
                if m2 > self._peak2:
                    self._peak2 = m2
                # a chain of impacts (stumble, bounce, jogging) keeps the posture from
                # before its start, refreshed once that is older than the window
                if self._pk == 0 or self._age >= self._refresh_n:
                    self._snapshot_before()
            # (re)start settling from the latest impact; keep the original "before"
            self._state = _SETTLE
            self._count = 0
            return 0
        if st == _IDLE:
            return 0
        self._count += 1
        if st == _SETTLE:
            if self._count >= self._settle_n:
                self._state = _OBSERVE
                self._count = 0
                self._sx = self._sy = self._sz = self._ss = 0
            return 0
        # observe
        self._sx += x
        self._sy += y
        self._sz += z
        self._ss += m2
        if self._count < self._observe_n:
            return 0
        self._state = _IDLE
        self.candidates += 1
        return self._decide()

    def flush(self):
        """End of a recording (benches only; a device never runs out of samples):
        decide a candidate whose observation was cut short if at least 1 s of it was
        seen. Returns like feed(). (Code in lib/fall_setup.py: never resident on a device.)"""
        from fall_setup import flush
        return flush(self)

    def _decide(self):
        n = self._count
        sx, sy, sz = self._sx, self._sy, self._sz
        # variance of the vector: E|a|^2 - |E a|^2  (times n^2 to stay in integers)
        var_n2 = self._ss * n - (sx * sx + sy * sy + sz * sz)
        still = var_n2 <= self._still2 * n * n
        # posture change: any "before" block at >= angle_deg from the mean "after"
        s2 = sx * sx + sy * sy + sz * sz
        turned = False
        for k in range(self._pk):
            if self._turned(self._px[k], self._py[k], self._pz[k], sx, sy, sz, s2):
                turned = True
                break
        # then the placement's rules beyond posture and stillness
        if not turned:
            r = _RULE_TURN
        elif not still:
            r = _RULE_STILL
        elif self._ff2 and self._ffm2 > self._ff2 and self._peak2 < self._hard2:
            r = _RULE_FREEFALL   # no free fall before the impact
        elif self._chain_n and self._chain > self._chain_n:
            r = _RULE_CHAIN      # a long series of impacts: clapping, jogging, hopping
        elif self._burst < self._impulse_n:
            r = _RULE_IMPULSE    # a soft landing (mattress, table), not a fall
        elif self._sin1024 and sx * sx * 1048576 > self._sin1024 * self._sin1024 * s2:
            r = _RULE_ARM        # the forearm hangs or is propped up: not lying on the floor
        else:
            r = 0
        self.last_rule = r
        if r:
            return 0
        from fall_conf import confidence  # once per suspicion (a device drops it again: RAM)
        self.confidence = confidence(self, var_n2, s2)
        return max(1, _isqrt(self._peak2) // 10)

    def _turned(self, rx, ry, rz, sx, sy, sz, s2):
        # angle(r, s) >= angle_deg, in integers: cos = dot / (|r||s|)
        dot = rx * sx + ry * sy + rz * sz
        r2 = rx * rx + ry * ry + rz * rz
        if r2 == 0 or s2 == 0:
            return False
        if dot <= 0:
            return True  # >= 90 degrees
        c = self._cos1024
        # dot/(|r||s|) <= c/1024  <=>  dot^2 * 1024^2 <= c^2 * r2 * s2
        return dot * dot * 1048576 <= c * c * r2 * s2

