"""Accelerometer drivers on the real MicroPython interpreter: the LIS3DH driver against
the register model (drivers/replay.py), and the replay sources' file formats."""
from __future__ import annotations

import json

from firmware.tests.mpy import run_mpy


def mp(body: str) -> object:
    script = '''
import json
from hal.host import HostI2C, SimClock
from drivers.lis3dh import Lis3dh, SensorError
from drivers.replay import SampleFile, Lis3dhModel
''' + body
    return json.loads(run_mpy(script, heap="64k").stdout.strip().splitlines()[-1])


def test_lis3dh_configures_fifo_and_scales_to_milli_g(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("".join(f"{x} {-1000 + x} {9000 if x == 40 else 12}\n" for x in range(0, 400, 4)))
    r = mp(f'''
clk = SimClock()
m = Lis3dhModel(SampleFile({str(p)!r}, 50, hold_last=False), clk)
acc = Lis3dh(HostI2C({{0x19: m}}), 0x19, 50)
acc.start()
clk.advance(400)
a = acc.read()
clk.advance(2000)          # 100 samples due, FIFO holds 32: overrun
b = acc.read()
print(json.dumps({{"regs": [m.regs[0x20], m.regs[0x23], m.regs[0x24], m.regs[0x2E]], "a": a[:3], "n": [len(a), len(b)],
                  "over": acc.overruns, "clip": [s for s in a + b if s[2] > 8000]}}))
''')
    assert r["regs"] == [0x47, 0xA8, 0x40, 0x80]   # 50 Hz XYZ, BDU+8g+HR, FIFO on, stream mode
    assert r["a"] == [[0, -1000, 12], [4, -996, 12], [8, -992, 12]]
    assert r["n"] == [20, 32] and r["over"] == 1
    assert r["clip"] == [[40, -960, 8188]]    # 9 g does not fit +-8 g: saturates at 8188 mg


def test_lis3dh_wrong_part_and_bus_errors_raise_oserror():
    r = mp('''
out = []
clk = SimClock()
m = Lis3dhModel(None, clk, who_am_i=0x32)
acc = Lis3dh(HostI2C({0x19: m}), 0x19, 50)
try:
    acc.start()
except SensorError as e:
    out.append(["sensor", str(e)])
m.who = 0x33
m.fail = True
try:
    acc.start()
except OSError as e:
    out.append(["os", e.errno])
try:
    Lis3dh(HostI2C({}), 0x18, 50).start()
except OSError as e:
    out.append(["absent", e.errno])
try:
    Lis3dh(HostI2C({}), 0x18, 60)
except ValueError as e:
    out.append(["rate", str(e)])
print(json.dumps(out))
''')
    assert r[0][0] == "sensor" and "0x32" in r[0][1]
    assert r[1] == ["os", 5] and r[2] == ["absent", 19]
    assert r[3][0] == "rate" and "rate_hz" in r[3][1]


def test_sample_file_formats_resample_and_skip_bad_lines(tmp_path):
    csv = tmp_path / "ADL_x.csv"
    # 200 Hz CSV starting at t = 12.5 s, x ramps 0..199 mg; a corrupt line in the middle
    rows = ["t_s,ax_g,ay_g,az_g"] + [f"{12.5 + i / 200:.4f},{i / 1000:.3f},0,1.0" for i in range(200)]
    rows.insert(50, "12.7,oops,,")
    csv.write_text("\n".join(rows) + "\n")
    sis = tmp_path / "F01_SA01_R01.txt"
    sis.write_text("".join(f"  {256},{-256}, 0, 1, 2, 3, 4, 5, 6;\n" for _ in range(8)))
    r = mp(f'''
a = SampleFile({str(csv)!r}, 50, hold_last=False)
xs = []
while True:
    s = a.next()
    if s is None:
        break
    xs.append(s)
b = SampleFile({str(sis)!r}, 50, hold_last=True)
ys = [b.next() for _ in range(4)]
print(json.dumps({{"n": len(xs), "first": xs[0], "second": xs[1], "bad": a.bad_lines, "sis": ys}}))
''')
    assert r["n"] == 50 and r["bad"] == 1
    assert r["first"] == [2, 0, 1000] and r["second"] == [6, 0, 1000]   # mean of 4 source samples
    assert r["sis"][0] == [1000, -1000, 0] and r["sis"][3] == [1000, -1000, 0]   # 8 rows = 2 samples, then held
