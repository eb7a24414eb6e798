# Bench runner for ONE emulated device: the real firmware (main.boot) on the
# MicroPython unix port, its gateway UART on a pseudo-terminal, its sensors
# replayed from files on the real-time HAL clock. MicroPython code (not CPython):
# started by hil_tests/emulated.py with the compiled firmware tree on sys.path.
#
#   micropython -X heapsize=64k fw_runner.py --link /dev/pts/7 --flash dev.img \
#       --device-id 020000000001 [--cfg '{"role":"button","key":"..."}'] \
#       [--pins button=trace.txt] [--adcs load=bed.txt] [--acc samples.txt] \
#       [--gps nmea.log] [--dispenser '{"schedule":[[0,1]],...}'] [--battery 80,3900,0]
#
# What firmware/host_main.py does, plus: an accelerometer (LIS3DH register
# model fed by a sample file), a GNSS UART replaying NMEA, a dispenser emulator
# peer, and a console protocol the bench parses:
#   T0 <wall clock ns at ticks 0>        once, before boot
#   OUT <pin> <value> <t_ms>             every output pin change (LED, buzzer)
#   BOOT <n>                             every (emulated) boot
import sys
import json
import time


def _opts(argv):
    o = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or i + 1 >= len(argv):
            raise SystemExit("fw_runner: bad argument " + a)
        o[a[2:]] = argv[i + 1]
        i += 2
    return o


def _pairs(s):
    d = {}
    for kv in s.split(",") if s else ():
        k, v = kv.split("=", 1)
        d[k] = v
    return d


def main(argv):
    o = _opts(argv)
    from hal.host import HostHal, HostPin, RealClock, HostI2C, PtyUart, LoopUart

    class BenchPtyUart(PtyUart):
        # hal.host.PtyUart.write calls flush() after each write, which is fsync() on the
        # unix port and fails with EINVAL on a tty (the bytes were already written).
        def write(self, b):
            mv = memoryview(b)
            done = 0
            while done < len(b):
                w = self.f.write(mv[done:])
                if not w:
                    break
                done += w
            return done

    class ObservedPin(HostPin):
        def value(self, v=None):
            if v is not None:
                v = 1 if v else 0
                if v != self._out:
                    print("OUT %s %d %d" % (self.name, v, self._hal.clock.t))
            return HostPin.value(self, v)

    class BenchHal(HostHal):
        # a sensor UART with bytes waiting wakes the loop (a UART RX interrupt on the board);
        # hal.host only wakes on the link pty and pin edges in real-time mode
        def _fire(self):
            fired = HostHal._fire(self)
            for name, u in self._uarts.items():
                if name != "link" and isinstance(u, LoopUart) and u.any():
                    return True
            return fired

        def pin(self, name, mode="in", pull=None):
            p = self.pins.get(name)
            if p is None:
                p = ObservedPin(self, name, self._pin_traces.get(name), self._pin_initial.get(name, 0))
                self.pins[name] = p
            return p

    clock = RealClock()
    print("T0 %d" % time.time_ns())
    uarts = {"link": BenchPtyUart(o["link"])}
    i2c = {}
    peers = []
    if "acc" in o:
        from drivers.replay import SampleFile, Lis3dhModel
        model = Lis3dhModel(SampleFile(o["acc"], int(o.get("acc-rate", "50"))), clock)
        i2c["acc"] = HostI2C({0x19: model})
    if "gps" in o:
        from drivers.replay import NmeaUart
        uarts["gps"] = NmeaUart(o["gps"], clock, int(o.get("gps-rate", "960")))
    if "dispenser" in o:
        from hal.host import loop_pair
        from dispenser_emu import DispenserEmulator
        dev_end, emu_end = loop_pair()
        uarts["dispenser"] = dev_end
        kw = json.loads(o["dispenser"])
        if "schedule" in kw:
            kw["schedule"] = tuple(tuple(x) for x in kw["schedule"])
        peers.append(DispenserEmulator(emu_end, **kw))
    batt = tuple(int(x) for x in o.get("battery", "100,4100,0").split(","))
    hal = BenchHal(flash=o["flash"], clock=clock, uarts=uarts, pins=_pairs(o.get("pins", "")),
                   adcs=_pairs(o.get("adcs", "")), i2c=i2c, peers=peers, battery=batt,
                   device_id=bytes.fromhex(o["device-id"]))
    if "cfg" in o:
        path = hal.data_dir + "/config.json"
        try:
            with open(path) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            cfg = {}
        cfg.update(json.loads(o["cfg"]))
        with open(path + ".t", "w") as f:
            json.dump(cfg, f)
        import os
        os.rename(path + ".t", path)
    secs = int(o.get("seconds", "0"))
    if secs:
        hal.deadline_ms = secs * 1000
    import main as boot_main

    def boot(h):
        print("BOOT %d" % h.boots)
        boot_main.boot(h)

    try:
        hal.run(boot, 1000)
    except KeyboardInterrupt:
        pass
    hal.unmount()
    print("END")


main(sys.argv[1:])
