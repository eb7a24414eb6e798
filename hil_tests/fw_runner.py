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
#   OUT <pin> <value> <t_ms> <wall ns>   every output pin change (LED, buzzer)
#   LAG <t_ms> <total ms>                the device clock paused (process starved), see GovernedClock
#   EDGE <pin> <level> <t_ms> <trace_ms> <wall ns>  every input edge as it took effect
#   BOOT <n>                             every (emulated) boot
#   ARMED / POWERCUT <t_ms>              --cut PIN:EDGES:K (flash torn mid-write)
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
        # Outputs: every change is printed (OUT). Inputs replay their trace edge by edge and
        # never skip one: if this process was starved (a loaded machine) and an edge is observed
        # more than _LAG_MS late, it is delivered now and the rest of the trace shifts by the
        # lag, as a GPIO interrupt latch would keep it on a board. Each edge is printed with the
        # time it took effect (EDGE <pin> <level> <t_ms> <trace t_ms>).
        _LAG_MS = 60

        def value(self, v=None):
            if v is not None:
                v = 1 if v else 0
                if v != self._out:
                    print("OUT %s %d %d %d" % (self.name, v, self._hal.clock.t, time.time_ns()))
                return HostPin.value(self, v)
            if self._out is not None:
                return self._out
            return self._replay()

        def _replay(self):
            st = self.__dict__
            if "_level" not in st:
                self._level = self._trace.initial
                self._i = 0
                self._shift = 0
                self.edges = 0
            pts = self._trace.points
            t = self._hal.clock.t
            if self._i < len(pts):
                due = pts[self._i][0] + self._shift
                if due <= t:
                    if t - due > self._LAG_MS:
                        self._shift += t - due
                        due = t
                    self._level = pts[self._i][1]
                    print("EDGE %s %d %d %d %d" % (self.name, self._level, due, pts[self._i][0], time.time_ns()))
                    self._i += 1
                    self.edges += 1
            return self._level

    class PowerCutArmer:
        # After ``edges`` edges of input ``pin`` took effect, the flash tears its next-but-``k``
        # write (hal.host.FileBlockDev fail_after): a power cut in the middle of the write the
        # firmware does next. Prints POWERCUT when it happened; the bench then kills the process.
        def __init__(self, pin, edges, k):
            self.pin = pin
            self.edges = edges
            self.k = k
            self.armed = False
            self.reported = False

        def service(self, hal):
            p = hal.pins.get(self.pin)
            if not self.armed and p is not None and getattr(p, "edges", 0) >= self.edges:
                hal.bd.fail_after = self.k
                self.armed = True
                print("ARMED %d" % hal.clock.t)
            if self.armed and not self.reported and hal.bd.dead:
                self.reported = True
                print("POWERCUT %d" % hal.clock.t)
            return 5 if self.armed and not self.reported else None

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

    class GovernedClock(RealClock):
        # Real time, except that one step never advances more than _MAX_STEP_MS: when this
        # process was descheduled (a loaded CI machine), the device's time pauses instead of
        # jumping, so debounce windows, sensor FIFOs and trace timing stay as on a board, which
        # is never starved. Each pause is reported (LAG <t_ms> <total lag ms>) so the bench maps
        # device time to wall time exactly.
        _MAX_STEP_MS = 25

        def __init__(self):
            RealClock.__init__(self)
            self.lag = 0
            self._last = time.ticks_ms()

        def ticks_ms(self):
            raw = time.ticks_ms()
            d = time.ticks_diff(raw, self._last)
            if d > self._MAX_STEP_MS:
                self.lag += d - self._MAX_STEP_MS
                print("LAG %d %d" % (time.ticks_diff(time.ticks_add(raw, -self.lag), self.t0), self.lag))
            self._last = raw
            return time.ticks_add(raw, -self.lag)

        @property
        def t(self):
            return time.ticks_diff(self.ticks_ms(), self.t0)

    class ClockKeeper:
        # reads the clock every 20 ms slice of hal.wait(), so only starvation (not an idle wait)
        # shows up as a step longer than _MAX_STEP_MS
        def service(self, hal):
            hal.clock.ticks_ms()
            return 20

    clock = GovernedClock()
    print("T0 %d" % time.time_ns())
    uarts = {"link": BenchPtyUart(o["link"])}
    i2c = {}
    peers = [ClockKeeper()]
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
    if "cut" in o:
        pin, edges, k = o["cut"].split(":")
        peers.append(PowerCutArmer(pin, int(edges), int(k)))
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
