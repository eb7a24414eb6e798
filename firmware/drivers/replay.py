# Replayed sensors for the unix port: recorded files stand in for the hardware,
# behind the same bus interfaces the real drivers use.
#
# - SampleFile: accelerometer recordings -> milli-g samples at the device rate.
#   Formats: generic CSV with header "t_s,ax_g,ay_g,az_g"; SisFall raw text (200 Hz,
#   ADXL345 counts, lines ending ";"); or "x y z" milli-g lines at the device rate.
#   Resampled by bin mean (the sensor's own averaging), streamed line by line.
# - Lis3dhModel: a LIS3DH register model on a HostI2C address, whose FIFO fills from
#   a SampleFile as the HAL clock runs; fault injection (bus errors, wrong part).
# - NmeaUart: a GNSS receiver's UART replaying an NMEA log at a byte rate.
from micropython import const
import struct

_EIO = const(5)
_SISFALL_G = 32.0 / 8192  # ADXL345 +-16 g, 13 bit


class SampleFile:
    def __init__(self, path, rate_hz=50, hold_last=True):
        self.path = path
        self.rate_hz = rate_hz
        self.hold_last = hold_last  # after the end: repeat the last sample (lying still)
        self.f = open(path)
        self.bad_lines = 0
        self.ended = False
        self._kind = None
        self._src_i = 0
        self._pending = None   # (t_s, x_g, y_g, z_g) read but not yet binned
        self._k = 0
        self._t0 = None
        self._last = (0, 0, 1000)
        first = self.f.readline()
        s = first.strip().lower().replace(" ", "")
        if s.startswith("t_s"):
            cols = s.split(",")
            try:
                self._cols = (cols.index("t_s"), cols.index("ax_g"), cols.index("ay_g"), cols.index("az_g"))
            except ValueError:
                raise ValueError("%s: header needs t_s,ax_g,ay_g,az_g" % path)
            self._kind = "csv"
        else:
            self._kind = "sisfall" if s.endswith(";") else "mg"
            self._pending = self._parse(first)

    def _parse(self, line):
        s = line.strip()
        if not s:
            return None
        try:
            if self._kind == "csv":
                p = s.split(",")
                c = self._cols
                return (float(p[c[0]]), float(p[c[1]]), float(p[c[2]]), float(p[c[3]]))
            if self._kind == "sisfall":
                p = s.rstrip(";").split(",")
                t = self._src_i / 200.0
                self._src_i += 1
                return (t, int(p[0]) * _SISFALL_G, int(p[1]) * _SISFALL_G, int(p[2]) * _SISFALL_G)
            p = s.split()
            t = self._src_i / self.rate_hz
            self._src_i += 1
            return (t, int(p[0]) / 1000, int(p[1]) / 1000, int(p[2]) / 1000)
        except (ValueError, IndexError):
            self.bad_lines += 1
            return None

    def _row(self):
        if self._pending is not None:
            r, self._pending = self._pending, None
            return r
        while True:
            line = self.f.readline()
            if not line:
                return None
            r = self._parse(line)
            if r is not None:
                return r

    def next(self):
        """The next (x, y, z) milli-g sample at rate_hz, or None at the end."""
        if self.ended:
            return self._last if self.hold_last else None
        t_end = (self._k + 1) / self.rate_hz
        sx = sy = sz = 0.0
        n = 0
        while True:
            r = self._row()
            if r is None:
                self.ended = True
                break
            if self._t0 is None:
                self._t0 = r[0]
            if r[0] - self._t0 >= t_end:
                self._pending = r
                break
            sx += r[1]
            sy += r[2]
            sz += r[3]
            n += 1
        self._k += 1
        if n:
            self._last = (int(round(sx / n * 1000)), int(round(sy / n * 1000)), int(round(sz / n * 1000)))
        elif self.ended and not self.hold_last:
            return None
        return self._last

    def close(self):
        self.f.close()


class Lis3dhModel:
    """Register-level LIS3DH (HostI2C device) fed by a SampleFile on the HAL clock."""

    def __init__(self, source, clock, who_am_i=0x33):
        self.src = source
        self.clock = clock
        self.who = who_am_i
        self.regs = bytearray(0x40)
        self.fifo = []
        self.produced = 0
        self.t0 = None
        self.fail = False       # every access raises OSError(EIO)
        self.fail_windows = []  # [(from_ms, to_ms)] of the HAL clock with bus errors
        self.reads = 0

    def _check(self):
        t = self.clock.t
        if self.fail:
            raise OSError(_EIO)
        for a, b in self.fail_windows:
            if a <= t < b:
                raise OSError(_EIO)

    def _fill(self):
        if self.t0 is None:
            return
        rate = self.src.rate_hz
        due = (self.clock.t - self.t0) * rate // 1000
        while self.produced < due:
            s = self.src.next()
            self.produced += 1
            if s is None:
                continue
            self.fifo.append(s)
            if len(self.fifo) > 32:
                self.fifo.pop(0)
                self.regs[0x2F] |= 0x40  # overrun

    def writeto_mem(self, reg, buf):
        self._check()
        for i in range(len(buf)):
            self.regs[(reg & 0x7F) + i] = buf[i]
        if (reg & 0x7F) == 0x20 and buf[0] & 0xF0 and self.t0 is None:
            self.t0 = self.clock.t

    def readfrom_mem(self, reg, n):
        self._check()
        self.reads += 1
        r = reg & 0x7F
        if r == 0x0F:
            return bytes((self.who,))
        self._fill()
        if r == 0x2F:
            k = len(self.fifo)
            v = (self.regs[0x2F] & 0x40) | (0x20 if k == 0 else 0) | (min(k, 32) & 0x1F)
            if k >= 32:
                v = 0x40 | 0x1F
            return bytes((v,))
        if r == 0x28:
            out = bytearray()
            for _ in range(n // 6):
                x, y, z = self.fifo.pop(0) if self.fifo else (0, 0, 0)
                out += struct.pack("<hhh", _raw(x), _raw(y), _raw(z))
            self.regs[0x2F] &= ~0x40
            return bytes(out)
        return bytes(self.regs[r:r + n])


def _raw(mg):
    v = mg // 4
    if v > 2047:
        v = 2047
    elif v < -2048:
        v = -2048
    return v << 4


class NmeaUart:
    """A GNSS UART replaying an NMEA log at ``bytes_per_s`` of the HAL clock."""

    def __init__(self, path, clock, bytes_per_s=960):
        self.f = open(path, "rb")
        self.clock = clock
        self.rate = bytes_per_s
        self.t0 = clock.t
        self.sent = 0
        self.ended = False

    def any(self):
        return 0 if self.ended else 1

    def read(self, n=-1):
        due = (self.clock.t - self.t0) * self.rate // 1000 - self.sent
        if n > 0 and due > n:
            due = n
        if due <= 0 or self.ended:
            return None
        b = self.f.read(due)
        if not b:
            self.ended = True
            return None
        self.sent += len(b)
        return b

    def write(self, b):
        return len(b)  # receiver configuration commands are accepted and ignored
