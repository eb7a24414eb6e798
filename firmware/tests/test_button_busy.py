"""A button press the main loop never saw must still raise exactly one alarm (inputs.Debounced
counts IRQ edges), and switch bounce must not add alarms. Real MicroPython, host HAL whose
flash writes block the loop (HostHal(flash_write_ms=...): pin IRQs fire meanwhile)."""
from __future__ import annotations

import json

from firmware.tests.mpy import run_mpy

HEAP = "160k"

# A HostHal that, at the first block write after ``after`` ms, puts ``edges`` (offsets from the
# write's start) into the button trace: the pulse happens entirely inside that busy stretch.
PRELUDE = r'''
import simdev, json, wire
from hal.host import HostHal

class Inject:
    def __init__(self, hal, after, edges):
        self.hal, self.after, self.edges, self.at = hal, after, edges, None
        self.polls = []
        hal.bd.on_write = self.on_write
    def on_write(self):
        h = self.hal
        if self.at is None and h.clock.t >= self.after and "button" in h.pins:
            self.at = h.clock.t
            pts = h.pins["button"]._trace.points
            pts.extend((self.at + dt, v) for dt, v in self.edges)
            pts.sort()
        h.busy(h.flash_write_ms)

def run(trace, inject=None, after=0, flash_ms=100, end=60000, fix=True):
    hal, gw = simdev.make(IMG, "button", {}, end_ms=end, pins={"button": list(trace)}, flash_write_ms=flash_ms)
    inj = Inject(hal, after, inject) if inject else None
    if inj:
        import main
        def boot(h):
            h.bd.on_write = inj.on_write    # (re)mounted at each boot
            main.boot(h)
        hal.run(boot)
    else:
        simdev.boot(hal)
    codes = [e[1] for e in gw.events]
    return {"press": codes.count(wire.EV_BUTTON_PRESS), "cancel": codes.count(wire.EV_BUTTON_CANCEL),
            "at": inj.at if inj else None, "busy": hal.busy_ms}
'''


def mp(script: str, tmp_path) -> dict:
    src = f"IMG = {str(tmp_path / 'flash.img')!r}\n" + PRELUDE + script
    out = run_mpy(src, heap=HEAP).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_press_entirely_inside_a_busy_flash_write_raises_one_alarm(tmp_path):
    # press 1 (seen normally) raises an alarm, whose queue write blocks the loop 100 ms per
    # block; a 30 ms press happens inside the first of those writes, never seen by a poll
    r = mp(r'''
print(json.dumps(run([(5000, 1), (5200, 0)], inject=[(20, 1), (50, 0)], after=5200)))
''', tmp_path)
    assert r["at"] is not None and r["at"] >= 5200, r
    assert r["press"] == 2, r      # press 1 + exactly one for the unseen 30 ms press
    assert r["cancel"] == 0, r


def test_bouncy_press_inside_a_busy_write_raises_one_alarm(tmp_path):
    # the unseen press bounces (five edges in 12 ms) and ends within the write: one alarm
    r = mp(r'''
print(json.dumps(run([(5000, 1), (5200, 0)], inject=[(10, 1), (13, 0), (16, 1), (19, 0), (22, 1), (60, 0), (63, 1), (66, 0)], after=5200)))
''', tmp_path)
    assert r["press"] == 2, r


def test_bounce_bursts_add_no_alarms(tmp_path):
    # a press and a release that both bounce (edges 3 ms apart, debounce 50 ms), then a lone
    # 4 ms glitch seen by the loop on both edges: one alarm in all
    r = mp(r'''
tr = [(5000, 1), (5003, 0), (5006, 1), (5009, 0), (5012, 1),
      (5400, 0), (5403, 1), (5406, 0), (5409, 1), (5412, 0),
      (30000, 1), (30004, 0)]
print(json.dumps(run(tr, flash_ms=0)))
''', tmp_path)
    assert r["press"] == 1, r
    assert r["busy"] == 0


def test_press_held_across_a_busy_write_is_not_doubled(tmp_path):
    # pressed before the write, bounces while the loop is blocked, released long after:
    # one press, one alarm (at release)
    r = mp(r'''
print(json.dumps(run([(5000, 1), (5200, 0)], inject=[(10, 1), (12, 0), (14, 1), (1000, 0)], after=5200)))
''', tmp_path)
    assert r["press"] == 2, r
