# Bed sensor: load cell / pressure pad on an ADC -> bed_in / bed_out.
#
# Calibration: cal_empty (raw ADC, empty bed) and cal_occupied (raw, person in
# bed). Hysteresis: "in" above empty + span*(50+h/2)%, "out" below
# empty + span*(50-h/2)%; a new state must hold for debounce_s before it is
# reported. Optional seizure detection (epilepsy alarm): while in bed, rhythmic
# load swings larger than seizure_delta around a slow baseline at >= 3 per
# second for seizure_s -> bed_seizure (care alarm).
from micropython import const
from time import ticks_diff, ticks_add
import wire
from role import Role

_STUCK_MS = const(10000)
_SEIZURE_MS = const(50)


class Bed(Role):
    ROLE = wire.ROLE_BED
    NAME = "bed"
    SCHEMA = {
        "sample_ms": ("i", 500, 50, 5000),
        "cal_empty": ("i", 8000, 0, 65535),
        "cal_occupied": ("i", 30000, 0, 65535),
        "hysteresis_pct": ("i", 20, 2, 60),
        "debounce_s": ("i", 10, 1, 600),
        "seizure": ("b", False, None, None),
        "seizure_delta": ("i", 3000, 100, 30000),
        "seizure_s": ("i", 20, 5, 300),
    }

    def start(self):
        self.adc = self.hal.adc("load")
        self._setup()
        self.state = None          # None unknown, True in bed, False out
        self._cand = None
        self._cand_since = 0
        self._next = self.app.now()
        self._stuck_since = None
        self._base = None
        self._above = False
        self._swings = 0
        self._bin_start = self._next
        self._rhythm_s = 0
        self._seizure_open = False
        self.samples = 0

    def _setup(self):
        c = self.cfg
        empty, occ = c.get("cal_empty"), c.get("cal_occupied")
        if occ - empty < 500:
            # inconsistent calibration: report it, run on the defaults
            self.app.reject("config")
            empty, occ = self.SCHEMA["cal_empty"][1], self.SCHEMA["cal_occupied"][1]
        span = occ - empty
        h = c.get("hysteresis_pct")
        self._on = empty + span * (100 + h) // 200
        self._off = empty + span * (100 - h) // 200

    def on_config(self, cfg):
        self.cfg = cfg
        self._setup()

    def poll(self, now):
        left = ticks_diff(self._next, now)
        if left > 0:
            return left
        fast = self.cfg.get("seizure") and self.state
        period = _SEIZURE_MS if fast else self.cfg.get("sample_ms")
        self._next = ticks_add(now, period)
        raw = self.adc.read_u16()   # OSError -> App counts a sensor fault
        self.samples += 1
        self._check_stuck(raw, now)
        self._occupancy(raw, now)
        if fast:
            self._seizure(raw, now)
        return period

    def _check_stuck(self, raw, now):
        if raw > 16 and raw < 65500:
            self._stuck_since = None
            return
        if self._stuck_since is None:
            self._stuck_since = now
        elif ticks_diff(now, self._stuck_since) >= _STUCK_MS:
            self._stuck_since = now
            self.app.sensor_fault(3)   # rail value: pad disconnected or shorted

    def _occupancy(self, raw, now):
        if raw >= self._on:
            level = True
        elif raw <= self._off:
            level = False
        else:
            level = self._cand if self._cand is not None else self.state
        if level is None:
            return
        if level != self._cand:
            self._cand = level
            self._cand_since = now
        if level != self.state and ticks_diff(now, self._cand_since) >= self.cfg.get("debounce_s") * 1000:
            self.state = level
            self.app.emit(wire.EV_BED_IN if level else wire.EV_BED_OUT)
            self._rhythm_s = 0

    def _seizure(self, raw, now):
        base = self._base
        self._base = raw if base is None else base + (raw - base) // 16
        d = raw - self._base
        delta = self.cfg.get("seizure_delta") // 2
        if d > delta and not self._above:
            self._above = True
            self._swings += 1
        elif d < -delta and self._above:
            self._above = False
            self._swings += 1
        if ticks_diff(now, self._bin_start) < 1000:
            return
        self._bin_start = now
        self._rhythm_s = self._rhythm_s + 1 if self._swings >= 6 else 0
        self._swings = 0
        if self._rhythm_s >= self.cfg.get("seizure_s") and not self._seizure_open:
            self._seizure_open = True
            self.app.emit(wire.EV_BED_SEIZURE)
        elif self._rhythm_s == 0:
            self._seizure_open = False


ROLE_CLASS = Bed
