# Debounced digital input and an LED/buzzer pattern player (shared by roles).
from micropython import const
from time import ticks_diff, ticks_add


PULSE = const(2)   # Debounced.poll: the level left the stable state and came back unseen


class Debounced:
    """A pin level accepted only after it stayed stable for ``ms``.

    The pin IRQ (both edges) counts edges and wakes the main loop; poll() does
    the work (no allocation or logic in interrupt context). A pulse the loop
    could not watch (it was busy in a flash write, an OTA unpack, a modem
    session) is not lost: with ``pulses=True``, poll() reports PULSE when the
    level is back at the stable state but the IRQ counted >= 2 edges, either
    unseen (once no further edge came for ``ms``: a bounce burst that then
    settles away is an ordinary change) or seen away at a poll >= ``ms`` before
    the poll that saw it back (it may have lasted the debounce time; for a
    safety input a possible press counts). A glitch polled on both sides and
    shorter than ``ms`` is still filtered.
    """

    def __init__(self, pin, ms, now, pulses=False):
        self.pin = pin
        self.ms = ms
        self.state = pin.value()
        self._raw = self.state
        self._since = now
        self.changed_at = now
        self.pulses = pulses
        self._edges = 0       # IRQ edge count since the last accepted change / pulse
        self._quiet = 0       # _edges when an unseen pulse was first noticed
        pin.irq(self._irq)

    def _irq(self, pin):
        self._edges += 1  # a small int: no allocation in interrupt context

    def poll(self, now):
        """(changed, ms until the level can be accepted or None); changed is
        True for an accepted change, PULSE for an away-and-back pulse (pulses=True)."""
        v = self.pin.value()
        if v != self._raw:
            away = ticks_diff(now, self._since)
            self._raw = v
            self._since = now
            if v == self.state:
                # back before the change was accepted: a glitch only if both polls were close
                e = self._edges
                self._edges = 0
                self._quiet = 0
                if self.pulses and e >= 2 and away >= self.ms:
                    self.changed_at = now
                    return PULSE, None
                return False, None
        if self._raw == self.state:
            e = self._edges
            if not self.pulses or e < 2:
                return False, None
            if e != self._quiet:
                self._quiet = e     # edges still coming (bounce): wait for quiet
                self._since = now
            left = self.ms - ticks_diff(now, self._since)
            if left > 0:
                return False, left
            self._edges = 0
            self._quiet = 0
            self.changed_at = now
            return PULSE, None
        left = self.ms - ticks_diff(now, self._since)
        if left > 0:
            return False, left
        self.state = self._raw
        self.changed_at = now
        self._edges = 0
        self._quiet = 0
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
