# Safety alarm button (trygghetsalarm).
#
# Short press (released before long_press_ms) -> button_press (care alarm).
# Long press -> button_cancel if an alarm of ours is open (raised within
# cancel_window_s); otherwise a held button is a panic press -> button_press.
# LED/buzzer tell the wearer what happened: quick blink = alarm queued,
# FEEDBACK 1 (platform got it) = LED on, 2 (help coming) = LED on + two beeps,
# 3 (delivery failing) = repeating loud local signal until cancelled.
from micropython import const
from time import ticks_diff
import wire
from role import Role
from inputs import Debounced, Pattern, PULSE

_QUEUED = ((1, 100), (0, 400))
_RECEIVED = ((1, 5000),)
_HELP = ((1, 200), (0, 200), (1, 200), (0, 200))
_FALLBACK = ((1, 500), (0, 500))
_CANCELLED = ((1, 1000),)


class Button(Role):
    ROLE = wire.ROLE_BUTTON
    NAME = "button"
    SCHEMA = {
        "debounce_ms": ("i", 50, 5, 1000),
        "long_press_ms": ("i", 3000, 500, 20000),
        "cancel_window_s": ("i", 600, 10, 3600),
        "buzzer": ("b", True, None, None),
    }

    def start(self):
        now = self.app.now()
        self.btn = Debounced(self.hal.pin("button"), self.cfg.get("debounce_ms"), now, True)
        self.led = Pattern(self.hal.pin("led", "out"))
        self.buzz = Pattern(self.hal.pin("buzzer", "out"))
        self.alarm_seq = None
        self.alarm_at = None
        self._down_at = None
        self._long_done = False
        self.presses = 0
        self.cancels = 0

    def poll(self, now):
        changed, wait = self.btn.poll(now)
        if changed == PULSE:
            # both edges happened while the loop was busy (or away from our polls)
            if self.btn.state:
                # held, let go and pressed again: the earlier press ended
                if self._down_at is not None and not self._long_done:
                    self._alarm(now)
                self._down_at = now
                self._long_done = False
            else:
                self._alarm(now)   # a short press (or a press we could not time)
        elif changed:
            if self.btn.state:
                self._down_at = now
                self._long_done = False
            elif self._down_at is not None:
                if not self._long_done:
                    self._alarm(now)
                self._down_at = None
        if self._down_at is not None and not self._long_done:
            left = self.cfg.get("long_press_ms") - ticks_diff(now, self._down_at)
            if left <= 0:
                self._long_done = True
                self._long(now)
            else:
                wait = left if wait is None else min(wait, left)
        for w in (self.led.poll(now), self.buzz.poll(now)):
            if w is not None:
                wait = w if wait is None else min(wait, w)
        return wait

    def _alarm(self, now):
        self.presses += 1
        self.alarm_seq = self.app.emit(wire.EV_BUTTON_PRESS)
        self.alarm_at = now
        self.led.play(_QUEUED, now, 10)

    def _long(self, now):
        window = self.cfg.get("cancel_window_s") * 1000
        if self.alarm_at is not None and ticks_diff(now, self.alarm_at) <= window:
            self.cancels += 1
            self.app.emit(wire.EV_BUTTON_CANCEL)
            self.alarm_seq = None
            self.alarm_at = None
            self.buzz.stop()
            self.led.play(_CANCELLED, now)
        else:
            self._alarm(now)

    def on_feedback(self, ref_seq, state):
        if ref_seq != self.alarm_seq:
            return
        now = self.app.now()
        if state == 1:
            self.led.play(_RECEIVED, now)
        elif state == 2:
            self.led.play(_RECEIVED, now)
            if self.cfg.get("buzzer"):
                self.buzz.play(_HELP, now)
        elif state == 3:
            self.led.play(_FALLBACK, now, 600)
            if self.cfg.get("buzzer"):
                self.buzz.play(_FALLBACK, now, 600)


ROLE_CLASS = Button
