# Door (reed contact) sensor: door_open / door_closed, optional tamper switch.
#
# Edges wake the loop through the pin IRQ; the level is debounced. On battery
# the device deep-sleeps between events (deep_sleep = true) and wakes on the
# door pin or at the next heartbeat; after a wake it compares the pin with the
# last state it reported (kept in flash) and reports the change.
import wire
import store
from role import Role
from inputs import Debounced
from time import ticks_diff


class Door(Role):
    ROLE = wire.ROLE_DOOR
    NAME = "door"
    PIN = "door"
    SCHEMA = {
        "debounce_ms": ("i", 50, 5, 2000),
        "deep_sleep": ("b", False, None, None),
        "awake_ms": ("i", 3000, 500, 60000),
        "tamper": ("b", False, None, None),
    }

    def start(self):
        now = self.app.now()
        self._path = self.hal.data_dir + "/" + self.NAME + ".st"
        self.inp = Debounced(self.hal.pin(self.PIN), self.cfg.get("debounce_ms"), now)
        self.tamper = Debounced(self.hal.pin("tamper"), 200, now) if self.cfg.get("tamper") else None
        self._active_at = now
        b = store.read_checked(self._path)
        last = b[0] if b else None
        if last is not None and last != self.inp.state:
            self._report(self.inp.state)      # changed while we slept (deep-sleep wake)
        elif last is None:
            self._save(self.inp.state)

    def _save(self, v):
        try:
            store.write_atomic(self._path, bytes((v,)))
        except OSError:
            self.app.reject("flash")

    def _report(self, v):
        self.app.emit(wire.EV_DOOR_OPEN if v else wire.EV_DOOR_CLOSED)
        self._save(v)

    def poll(self, now):
        changed, wait = self.inp.poll(now)
        if changed:
            self._active_at = now
            self._report(self.inp.state)
        if self.tamper is not None:
            t_changed, w2 = self.tamper.poll(now)
            if t_changed and self.tamper.state:
                self.app.emit(wire.EV_TAMPER)
            if w2 is not None:
                wait = w2 if wait is None else min(wait, w2)
        return wait

    def sleep_ok(self):
        if not self.cfg.get("deep_sleep"):
            return None
        now = self.app.now()
        if ticks_diff(now, self._active_at) < self.cfg.get("awake_ms"):
            return None
        pins = [self.PIN, "tamper"] if self.tamper is not None else [self.PIN]
        return self.cfg.get("heartbeat_s") * 1000, pins


ROLE_CLASS = Door
