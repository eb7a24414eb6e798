# Host HAL for the MicroPython unix port: the same application code as on the
# ESP32, with emulated peripherals (see firmware/README.md "HAL").
#
# - clock: SimClock (simulated, instant) or RealClock (time.ticks_ms)
# - flash: littlefs (os.VfsLfs2) on FileBlockDev, a block device over a file;
#   ``fail_after`` makes it tear a write and raise to simulate a power cut
# - uart("link"): a pseudo-terminal / serial device path (PtyUart) or an
#   in-process byte pipe (LoopUart pair) with a simulated peer
# - pins / ADC: replayed from traces [(t_ms, value), ...] or "t_ms value" files
# - I2C: devices attached per address; a missing device raises OSError(ENODEV)
# - wdt / deep_sleep / reset: raise Reboot, which HostHal.run() turns into a
#   simulated reboot (ticks restart at 0, flash remounted, reset cause reported)
from micropython import const
import os
import time
import select

_MASK = const(0x3FFFFFFF)  # ticks period of the MicroPython time module
RISING = const(1)
FALLING = const(2)
_ENODEV = const(19)
_EIO = const(5)

# wire reset causes (duplicated from wire.py to keep the HAL independent)
RC_POWER_ON = const(0)
RC_WATCHDOG = const(2)
RC_DEEPSLEEP = const(3)
RC_SOFT = const(4)


class Reboot(BaseException):
    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class SimEnd(BaseException):
    """The simulated clock reached the end of the run."""


class SimClock:
    """Simulated milliseconds. ticks restart at each (simulated) boot."""

    def __init__(self, start_ms=0, end_ms=None):
        self.t = start_ms
        self.boot_t = start_ms
        self.end = end_ms

    def ticks_ms(self):
        return (self.t - self.boot_t) & _MASK

    def advance(self, ms):
        self.t += max(ms, 0)
        if self.end is not None and self.t >= self.end:
            self.t = self.end
            raise SimEnd()


class RealClock:
    def __init__(self):
        self.t0 = time.ticks_ms()

    @property
    def t(self):
        return time.ticks_diff(time.ticks_ms(), self.t0)

    def ticks_ms(self):
        return time.ticks_ms()


def load_trace(src):
    """[(t_ms, value)] from a list, or from a text file of "t_ms value" lines."""
    if src is None:
        return []
    if isinstance(src, str):
        out = []
        with open(src) as f:
            for line in f:
                line = line.strip()
                if line and line[0] != "#":
                    a, b = line.split()[:2]
                    out.append((int(a), int(b)))
        return out
    return list(src)


class Trace:
    """Value at a simulated time; ``edges`` are the (t, value) change points."""

    def __init__(self, src, initial=0):
        self.points = load_trace(src)
        self.initial = initial
        self._i = 0

    def at(self, t):
        pts = self.points
        i = self._i
        if i and pts[i - 1][0] > t:
            i = 0
        while i < len(pts) and pts[i][0] <= t:
            i += 1
        self._i = i
        return pts[i - 1][1] if i else self.initial

    def next_after(self, t):
        for p in self.points:
            if p[0] > t:
                return p[0]
        return None


class HostPin:
    def __init__(self, hal, name, trace=None, initial=0):
        self._hal = hal
        self.name = name
        self._trace = Trace(trace, initial)
        self._out = None
        self.history = []     # output writes: (t_ms, value)
        self._handler = None
        self._trigger = 0
        self._last = self.value()

    def value(self, v=None):
        if v is None:
            if self._out is not None:
                return self._out
            return self._trace.at(self._hal.clock.t)
        v = 1 if v else 0
        if v != self._out and self._hal.pin_history:
            h = self.history
            h.append((self._hal.clock.t, v))
            if len(h) > self._hal.pin_history:
                del h[0]
        self._out = v
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=RISING | FALLING):
        self._handler = handler
        self._trigger = trigger
        self._last = self.value()

    def _check(self):
        v = self.value()
        if v != self._last:
            edge = RISING if v else FALLING
            self._last = v
            if self._handler is not None and self._trigger & edge:
                self._handler(self)
            return True
        return False


class HostAdc:
    def __init__(self, hal, trace, initial=0):
        self._hal = hal
        self._trace = Trace(trace, initial)
        self.fail = False

    def read_u16(self):
        if self.fail:
            raise OSError(_EIO)
        return self._trace.at(self._hal.clock.t) & 0xFFFF


class HostI2C:
    """devices: {addr: object with readfrom_mem(reg, n) and writeto_mem(reg, buf)}."""

    def __init__(self, devices=None):
        self.devices = devices if devices is not None else {}

    def _dev(self, addr):
        d = self.devices.get(addr)
        if d is None:
            raise OSError(_ENODEV)
        return d

    def scan(self):
        return sorted(self.devices)

    def readfrom_mem(self, addr, reg, n):
        return bytes(self._dev(addr).readfrom_mem(reg, n))

    def readfrom_mem_into(self, addr, reg, buf):
        b = self.readfrom_mem(addr, reg, len(buf))
        buf[:] = b

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).writeto_mem(reg, bytes(buf))


class LoopUart:
    """One end of an in-process byte pipe (make a pair with loop_pair())."""

    def __init__(self):
        self.rx = bytearray()
        self.peer = None
        self.written = 0

    def write(self, b):
        self.peer.rx.extend(b)
        self.written += len(b)
        return len(b)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        if n < 0 or n >= len(self.rx):
            n = len(self.rx)
        out = bytes(self.rx[:n])
        self.rx[:] = self.rx[n:]
        return out

    def fileno(self):
        return -1


def loop_pair():
    a = LoopUart()
    b = LoopUart()
    a.peer = b
    b.peer = a
    return a, b


class PtyUart:
    """A serial device or pseudo-terminal path in raw mode; reads never block.

    MicroPython's file read(n) waits for n bytes, so bytes are taken one at a
    time while poll() reports more (fine at UART rates). No flush(): on a pty it
    would fsync() and fail; unix-port files are unbuffered anyway.
    """

    def __init__(self, path, baud=115200):
        import termios
        self.path = path
        self.f = open(path, "r+b")
        self.fd = self.f.fileno()
        try:
            termios.setraw(self.fd)
            a = termios.tcgetattr(self.fd)
            rate = getattr(termios, "B%d" % baud, None)
            if rate is not None:
                a[4] = rate
                a[5] = rate
                termios.tcsetattr(self.fd, termios.TCSANOW, a)
        except OSError:
            pass  # a regular file or fifo: no terminal attributes to set
        self._poll = select.poll()
        self._poll.register(self.f, select.POLLIN)
        self._one = bytearray(1)

    def fileno(self):
        return self.fd

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def read(self, n=256):
        out = None
        while (out is None or len(out) < n) and self._poll.poll(0):
            if not self.f.readinto(self._one):
                break
            if out is None:
                out = bytearray()
            out.append(self._one[0])
        return bytes(out) if out else None

    def write(self, b):
        """Write all of ``b`` (the fd blocks; a short count is retried). No flush()/fsync:
        unix-port files are unbuffered and fsync() on a tty fails with EINVAL."""
        mv = memoryview(b)
        done = 0
        while done < len(mv):
            w = self.f.write(mv[done:])
            if w is None:
                time.sleep_ms(1)   # EAGAIN: the tty output queue is full
                continue
            if not w:
                break
            done += w
        return done


class PowerCut(OSError):
    """FileBlockDev hit its ``fail_after`` write budget (the write was torn)."""


_BLANK = b"\xff" * 256
_CUT = PowerCut(_EIO)  # preallocated: littlefs may call us with the heap locked (finalisers)


def _cut():
    try:
        e = PowerCut(_EIO)
    except MemoryError:
        e = _CUT
    raise e


class FileBlockDev:
    """A littlefs block device over a file, written through at every block write.

    ``fail_after``: after that many more write/erase operations, the next one is
    torn (only a prefix reaches the file) and PowerCut is raised.
    """

    def __init__(self, path, block_size=4096, blocks=64, fail_after=None):
        self.path = path
        self.bs = block_size
        self.n = blocks
        self.fail_after = fail_after
        self.writes = 0
        self.dead = False
        self.on_write = None  # called after each block write/erase (HostHal: slow flash)
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            for _ in range(block_size * blocks // len(_BLANK)):
                self.f.write(_BLANK)
            self.f.flush()

    def _budget(self, data, pos):
        if self.dead:
            _cut()  # power is gone: nothing reaches the flash any more
        self.writes += 1
        if self.fail_after is None:
            return
        if self.fail_after <= 0:
            cut = len(data) // 2 if self.writes & 1 else len(data) // 3
            self.f.seek(pos)
            self.f.write(data[:cut])
            self.f.flush()
            self.dead = True
            _cut()
        self.fail_after -= 1

    def readblocks(self, block, buf, offset=0):
        if self.dead:
            return  # (finalisers of files left open at the cut)
        self.f.seek(block * self.bs + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        pos = block * self.bs + (offset or 0)
        self._budget(buf, pos)
        self.f.seek(pos)
        self.f.write(buf)
        self.f.flush()
        if self.on_write is not None:
            self.on_write()

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            pos = arg * self.bs
            self._budget(_BLANK, pos)
            self.f.seek(pos)
            for _ in range(self.bs // len(_BLANK)):
                self.f.write(_BLANK)
            self.f.flush()
            if self.on_write is not None:
                self.on_write()
            return 0
        return 0

    def close(self):
        self.dead = True
        self.f.close()


class HostWdt:
    def __init__(self, hal, timeout_ms):
        self._hal = hal
        self.timeout = timeout_ms
        self.last = hal.clock.t
        self.feeds = 0

    def feed(self):
        self.last = self._hal.clock.t
        self.feeds += 1

    def expired(self):
        return self._hal.clock.t - self.last > self.timeout


class HostHal:
    """Everything the firmware touches, emulated. Keyword arguments:

    flash: path of the block-device image file (created blank if missing)
    flash_blocks / block_size / fail_after: see FileBlockDev
    mount: mount point of the littlefs (default "/flash"); data_dir = mount
    clock: SimClock() (default) or RealClock()
    uarts: {name: LoopUart | PtyUart | path str}; "link" is the gateway link
    pins: {name: trace}; adcs: {name: trace}; i2c: {name: HostI2C}
    device_id: 6 bytes; reset_cause: wire reset cause of the first boot
    battery: (pct, mv, power_flags); rssi: int (0x7F unknown)
    peers: objects with service(hal) -> ms until they want service again (or None),
           run inside wait() (a simulated gateway, a dispenser emulator...)
    pin_history: output changes kept per pin in HostPin.history (0 keeps none)
    flash_write_ms: each block write/erase blocks the loop that long (see busy())
    """

    def __init__(self, flash="/tmp/wt-flash.img", flash_blocks=64, block_size=4096, fail_after=None,
                 mount="/flash", clock=None, uarts=None, pins=None, adcs=None, i2c=None,
                 device_id=b"\x02\x00\x00\x00\x00\x01", reset_cause=RC_POWER_ON,
                 battery=(100, 4100, 0), rssi=0x7F, peers=None, pin_initial=None, pin_history=256,
                 flash_write_ms=0):
        self.clock = clock if clock is not None else SimClock()
        self.flash_path = flash
        self._bd_args = (flash_blocks, block_size)
        self.fail_after = fail_after
        self.mountpoint = mount
        self.data_dir = mount
        self._uart_cfg = uarts if uarts is not None else {}
        self._uarts = {}
        self._sensor_rx = []     # in-process sensor UARTs whose new bytes wake wait()
        self._pin_traces = pins if pins is not None else {}
        self._pin_initial = pin_initial if pin_initial is not None else {}
        self._adc_traces = adcs if adcs is not None else {}
        self._i2c = i2c if i2c is not None else {}
        self._id = bytes(device_id)
        self._cause = reset_cause
        self.battery_state = battery
        self.rssi_value = rssi
        self.peers = peers if peers is not None else []
        self.pin_history = pin_history   # output changes kept per pin (0: none)
        self.pins = {}
        self.adcs = {}
        self.boots = 0
        self.reset_causes = []
        self.slept = []       # (t_ms, ms, wake pins) of each emulated deep sleep
        self.bd = None
        self._wdt = None
        self.deadline_ms = None   # RealClock runs: SimEnd after this many ms
        self.flash_write_ms = flash_write_ms
        self.busy_ms = 0          # total simulated blocking time (busy())
        self.mount()

    # --- flash ----------------------------------------------------------------------

    def mount(self):
        blocks, bs = self._bd_args
        self.bd = FileBlockDev(self.flash_path, bs, blocks, self.fail_after)
        try:
            os.mount(os.VfsLfs2(self.bd), self.mountpoint)
        except OSError:
            os.VfsLfs2.mkfs(self.bd)
            os.mount(os.VfsLfs2(self.bd), self.mountpoint)
        if self.flash_write_ms:
            self.bd.on_write = self._flash_busy

    def _flash_busy(self):
        self.busy(self.flash_write_ms)

    def unmount(self):
        try:
            os.umount(self.mountpoint)
        except OSError:
            pass
        self.bd.close()

    # --- identity and power -----------------------------------------------------------

    def device_id(self):
        return self._id

    def reset_cause(self):
        return self._cause

    def battery(self):
        return self.battery_state

    def rssi(self):
        return self.rssi_value

    # --- peripherals --------------------------------------------------------------------

    def uart(self, name):
        u = self._uarts.get(name)
        if u is None:
            c = self._uart_cfg.get(name)
            if c is None:
                raise OSError(_ENODEV)
            u = PtyUart(c) if isinstance(c, str) else c
            self._uarts[name] = u
            if name != "link" and isinstance(u, LoopUart) and u.peer is not None:
                self._sensor_rx.append(u)
        return u

    def pin(self, name, mode="in", pull=None):
        p = self.pins.get(name)
        if p is None:
            p = HostPin(self, name, self._pin_traces.get(name), self._pin_initial.get(name, 0))
            self.pins[name] = p
        return p

    def adc(self, name):
        a = self.adcs.get(name)
        if a is None:
            a = HostAdc(self, self._adc_traces.get(name))
            self.adcs[name] = a
        return a

    def i2c(self, name):
        b = self._i2c.get(name)
        if b is None:
            b = HostI2C()
            self._i2c[name] = b
        return b

    def wdt(self, timeout_ms):
        self._wdt = HostWdt(self, timeout_ms)
        return self._wdt

    def confirm_image(self):
        """ESP32: mark the running MicroPython image valid. Host: nothing to do."""

    # --- time -------------------------------------------------------------------------

    def _next_input(self, t):
        best = None
        for p in self.pins.values():
            if p._handler is not None:
                n = p._trace.next_after(t)
                if n is not None and (best is None or n < best):
                    best = n
        return best

    def _service(self):
        nxt = None
        for peer in self.peers:
            w = peer.service(self)
            if w is not None and (nxt is None or w < nxt):
                nxt = w
        return nxt

    def _fire(self):
        fired = False
        for p in self.pins.values():
            if p._check():
                fired = True
        return fired

    def _rx_mark(self):
        """Bytes ever delivered to the device ends of in-process sensor UARTs (a peer wrote
        them); the link has its own wake-up (any bytes waiting)."""
        n = 0
        if self._sensor_rx:
            for u in self._sensor_rx:
                n += u.peer.written
        return n

    def wait(self, timeout_ms):
        """Sleep until ``timeout_ms`` passes, a pin IRQ fires, link bytes wait, or new
        bytes reach any UART (a UART RX interrupt on the board: a sensor served by a
        peer in this process, a pty)."""
        clock = self.clock
        if not isinstance(clock, SimClock):
            return self._real_wait(timeout_ms)
        end = clock.t + timeout_ms
        link = self._uarts.get("link")
        mark = self._rx_mark()
        while True:
            w = self._service()
            if self._fire() or (link is not None and link.any()) or self._rx_mark() != mark:
                return
            step = end - clock.t
            if w is not None:
                step = min(step, max(w, 1))
            n = self._next_input(clock.t)
            if n is not None:
                step = min(step, n - clock.t)
            if self._wdt is not None:
                step = min(step, self._wdt.timeout + 1)
            if step <= 0:
                return
            clock.advance(step)
            if self._wdt is not None and self._wdt.expired():
                raise Reboot(RC_WATCHDOG)
            if clock.t >= end:
                self._service()
                self._fire()
                return

    def _real_wait(self, timeout_ms):
        poller = select.poll()
        n = 0
        for u in self._uarts.values():
            if isinstance(u, PtyUart):
                poller.register(u.f, select.POLLIN)
                n += 1
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        mark = self._rx_mark()
        while True:
            left = time.ticks_diff(end, time.ticks_ms())
            if self.deadline_ms is not None and self.clock.t >= self.deadline_ms:
                raise SimEnd()
            w = self._service()
            if self._fire() or self._rx_mark() != mark:
                return
            if left <= 0:
                return
            slice_ms = min(left, 20) if self.pins or self.peers else left
            if w is not None:
                slice_ms = min(slice_ms, max(w, 1))
            if n:
                if poller.poll(slice_ms):
                    return
            else:
                time.sleep_ms(slice_ms)
            if self._wdt is not None and self._wdt.expired():
                raise Reboot(RC_WATCHDOG)

    def busy(self, ms):
        """``ms`` of blocking work (a slow flash write, an OTA unpack, a modem session):
        time passes and pin IRQs fire (their handlers run, as on a board), but the
        main loop does not run. Simulated time never reaches the end inside it."""
        clock = self.clock
        self.busy_ms += ms
        if not isinstance(clock, SimClock):
            end = time.ticks_add(time.ticks_ms(), ms)
            while time.ticks_diff(end, time.ticks_ms()) > 0:
                self._fire()
                time.sleep_ms(1)
            self._fire()
            return
        end = clock.t + ms
        if clock.end is not None and end > clock.end - 1:
            end = max(clock.end - 1, clock.t)
        while True:
            n = self._next_input(clock.t)
            if n is None or n > end:
                break
            clock.t = n
            self._fire()
        clock.t = end
        self._fire()

    def sleep_ms(self, ms):
        if isinstance(self.clock, SimClock):
            self.clock.advance(ms)
        else:
            time.sleep_ms(ms)

    # --- power states -------------------------------------------------------------------

    def deep_sleep(self, ms, wake_pins=()):
        """Emulated: time passes until a wake pin changes or ``ms``; then a reboot."""
        clock = self.clock
        self.slept.append((clock.t, ms, list(wake_pins)))
        if isinstance(clock, SimClock):
            end = clock.t + ms
            pins = [self.pin(n) for n in wake_pins]
            for p in pins:
                p._last = p.value()
            while clock.t < end:
                nxt = end
                for p in pins:
                    n = p._trace.next_after(clock.t)
                    if n is not None and n < nxt:
                        nxt = n
                clock.advance(nxt - clock.t)
                if any(p.value() != p._last for p in pins):
                    break
        raise Reboot(RC_DEEPSLEEP)

    def reset(self, cause=RC_SOFT):
        raise Reboot(cause)

    def reboot(self, cause):
        """Emulate the reset: volatile state gone, flash remounted, ticks restart."""
        self.unmount()
        self.reset_causes.append(cause)
        self._cause = cause
        for p in self.pins.values():
            p._handler = None
            p._out = None
        for u in self._uarts.values():
            if isinstance(u, LoopUart):
                u.rx[:] = b""
        self._wdt = None
        if isinstance(self.clock, SimClock):
            self.clock.boot_t = self.clock.t
        self.mount()

    def run(self, main, max_boots=20):
        """Run ``main(hal)`` across emulated reboots until SimEnd or max_boots."""
        while self.boots < max_boots:
            self.boots += 1
            try:
                main(self)
                return
            except SimEnd:
                return
            except Reboot as r:
                self.reboot(r.cause)
