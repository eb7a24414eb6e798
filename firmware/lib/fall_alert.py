# Cancel window after a suspected fall: the wearer can cancel (button) within cancel_ms;
# otherwise the fall alarm goes out. Time-driven (not sample-driven), so the alarm still
# leaves if the accelerometer stops delivering samples after the impact.
#
#   alert = FallAlert(cancel_ms=20000)
#   alert.suspect(peak_cg, now_ms, confidence)  -> True if a new window opened (start buzzer)
#   alert.cancel(now_ms)                -> (EV_FALL_CANCELLED, peak_cg) or None
#   alert.poll(now_ms)                  -> (EV_FALL_DETECTED, peak_cg) or None
#   alert.confidence                    the highest confidence suspected in the window
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from time import ticks_diff
except ImportError:  # CPython
    def ticks_diff(a, b):
        return a - b

EV_FALL_DETECTED = const(0x10)
EV_FALL_CANCELLED = const(0x11)

IDLE = const(0)
PENDING = const(1)

MAX_CANCEL_MS = const(120000)


class FallAlert:
    def __init__(self, cancel_ms=20000):
        if not isinstance(cancel_ms, int) or not (0 <= cancel_ms <= MAX_CANCEL_MS):
            raise ValueError("cancel_ms: %r out of range; use 0..%d" % (cancel_ms, MAX_CANCEL_MS))
        self.cancel_ms = cancel_ms
        self.state = IDLE
        self.peak_cg = 0
        self.confidence = 0
        self._opened_ms = 0

    def suspect(self, peak_cg, now_ms, confidence=0):
        """A fall was suspected. Opens the window (True) or joins the open one (False)."""
        if self.state == PENDING:
            if peak_cg > self.peak_cg:
                self.peak_cg = peak_cg
            if confidence > self.confidence:
                self.confidence = confidence
            return False
        self.state = PENDING
        self.peak_cg = peak_cg
        self.confidence = confidence
        self._opened_ms = now_ms
        return True

    def remaining_ms(self, now_ms):
        if self.state != PENDING:
            return 0
        left = self.cancel_ms - ticks_diff(now_ms, self._opened_ms)
        return left if left > 0 else 0

    def cancel(self, now_ms):
        """The wearer pressed cancel. Only inside an open window; else None."""
        if self.state != PENDING:
            return None
        if ticks_diff(now_ms, self._opened_ms) >= self.cancel_ms:
            return self.poll(now_ms)  # too late: the alarm is due, it goes out
        self.state = IDLE
        return (EV_FALL_CANCELLED, self.peak_cg)

    def poll(self, now_ms):
        """Call regularly; returns the fall alarm once the window has expired."""
        if self.state != PENDING:
            return None
        if ticks_diff(now_ms, self._opened_ms) < self.cancel_ms:
            return None
        self.state = IDLE
        return (EV_FALL_DETECTED, self.peak_cg)
