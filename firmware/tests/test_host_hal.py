"""hal.host on the real MicroPython: PtyUart writes on a real pseudo-terminal (no fsync on
a tty), and real-time wait() wakes on bytes a peer in the same process wrote to a sensor
UART (the dispenser emulator) instead of sleeping until the role's next deadline."""
from __future__ import annotations

import json
import os
import select
import time

from firmware.tests.mpy import run_mpy, spawn_mpy


def test_ptyuart_write_on_a_real_pty_delivers_every_byte(tmp_path):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    n = 20000   # more than a pty's output queue: the write must wait for the reader, not fail
    p = spawn_mpy(f'''
from hal.host import PtyUart
u = PtyUart({path!r})
data = bytes(i & 0xFF for i in range({n}))
r = u.write(data)
r2 = u.write(b"END")
print("WROTE", r, r2)
''', heap="256k")
    got = bytearray()
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and not got.endswith(b"END"):
            if select.select([master], [], [], 0.1)[0]:
                got.extend(os.read(master, 65536))
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, err
    assert f"WROTE {n} 3" in out, (out, err)
    assert bytes(got) == bytes(i & 0xFF for i in range(n)) + b"END"


def test_real_time_wait_wakes_on_an_in_process_sensor_uart(tmp_path):
    # TAMPER from the dispenser at 1500 ms; the role's own wait is many seconds (ping 60 s,
    # watchdog 30 s): the event must reach the gateway promptly
    out = run_mpy(f'''
import json, wire
from hal.host import HostHal, RealClock, loop_pair, SimEnd
from simgw import SimGateway
from dispenser_emu import DispenserEmulator
import simdev
IMG = {str(tmp_path / "flash.img")!r}
simdev.fresh(IMG)
dev, peer = loop_pair()
bridge, disp = loop_pair()
hal = HostHal(flash=IMG, clock=RealClock(), uarts={{"link": dev, "dispenser": bridge}})
gw = SimGateway(peer, hal.device_id(), simdev.KEY)
emu = DispenserEmulator(disp, schedule=(), script=[(1500, "TAMPER")])
got = []
class Watch:
    def service(self, h):
        if gw.events and not got:
            got.append(h.clock.t)
        return None
hal.peers[:] = [gw, emu, Watch()]
with open(hal.data_dir + "/config.json", "w") as f:
    json.dump({{"role": "dispenser", "key": simdev.KEY.hex(), "ping_s": 60}}, f)
hal.deadline_ms = 4000
import main
hal.run(main.boot)
sent = [t for t, l in emu.sent if b"TAMPER" in l]
print(json.dumps({{"sent": sent, "got": got, "codes": [e[1] for e in gw.events]}}))
''', heap="256k").stdout.strip().splitlines()
    r = json.loads(out[-1])
    assert 0x53 in r["codes"], r
    lag = r["got"][0] - r["sent"][0]
    assert lag < 600, r     # wakes on the UART bytes (was: the next deadline, seconds later)
