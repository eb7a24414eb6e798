# Motion (PIR) sensor: a rising PIR output -> motion, at most once per holdoff_s.
# Same power handling as the door sensor (deep sleep, wake on the PIR pin).
import wire
from roles.door import Door
from time import ticks_diff


class Motion(Door):
    ROLE = wire.ROLE_MOTION
    NAME = "motion"
    PIN = "pir"
    SCHEMA = {
        "debounce_ms": ("i", 20, 5, 2000),
        "deep_sleep": ("b", False, None, None),
        "awake_ms": ("i", 3000, 500, 60000),
        "tamper": ("b", False, None, None),
        "holdoff_s": ("i", 60, 1, 3600),
    }

    def start(self):
        self._last_motion = None
        Door.start(self)
        if self.hal.reset_cause() == 3 and self.inp.state:  # 3: deep-sleep wake
            self._report(1)   # woken by the PIR

    def _report(self, v):
        if not v:
            return
        now = self.app.now()
        if self._last_motion is not None and ticks_diff(now, self._last_motion) < self.cfg.get("holdoff_s") * 1000:
            return
        self._last_motion = now
        self.app.emit(wire.EV_MOTION)

    def _save(self, v):
        pass  # motion is an impulse: nothing to compare after a wake


ROLE_CLASS = Motion
