# Debounced digital input and an LED/buzzer pattern player (shared by roles).
from time import ticks_diff, ticks_add


class Debounced:
    """A pin level accepted only after it stayed stable for ``ms``.

    The pin IRQ (both edges) just wakes the main loop; poll() does the work,
    so no allocation or logic runs in interrupt context.
    """

    def __init__(self, pin, ms, now):
        self.pin = pin
        self.ms = ms
        self.state = pin.value()
        self._raw = self.state
        self._since = now
        self.changed_at = now
        pin.irq(self._irq)

    def _irq(self, pin):
        pass  # waking the loop is enough; the HAL's wait() returns on the edge

    def poll(self, now):
        """(changed, ms until the level can be accepted or None)."""
        v = self.pin.value()
        if v != self._raw:
            self._raw = v
            self._since = now
        if self._raw == self.state:
            return False, None
        left = self.ms - ticks_diff(now, self._since)
        if left > 0:
            return False, left
        self.state = self._raw
        self.changed_at = now
        return True, None


class Pattern:
    """Plays [(level, ms), ...] on an output pin, optionally repeating."""

    def __init__(self, pin):
        self.pin = pin
        self._steps = None
        self._i = 0
        self._due = 0
        self._repeat = 0
        pin.value(0)

    def play(self, steps, now, repeat=1):
        self._steps = steps
        self._i = 0
        self._repeat = repeat
        self._due = now
        return self.poll(now)

    def stop(self):
        self._steps = None
        self.pin.value(0)

    @property
    def active(self):
        return self._steps is not None

    def poll(self, now):
        """ms until the next change (None when idle)."""
        if self._steps is None:
            return None
        while ticks_diff(self._due, now) <= 0:
            if self._i >= len(self._steps):
                self._repeat -= 1
                if self._repeat <= 0:
                    self.stop()
                    return None
                self._i = 0
            level, ms = self._steps[self._i]
            self.pin.value(level)
            self._i += 1
            self._due = ticks_add(self._due, ms)
        return ticks_diff(self._due, now)
