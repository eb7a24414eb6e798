# ST LIS3DH 3-axis accelerometer over I2C (also LIS2DH12: same registers).
#
# High-resolution mode (12 bit), +-8 g (4 mg/LSB), ODR 25/50/100/200 Hz, samples
# collected in the 32-deep FIFO (stream mode) so the main loop can sleep between
# reads (32 samples = 640 ms at 50 Hz). Every bus error raises OSError (the role
# counts them); nothing here retries or sleeps in a loop.
#
#   acc = Lis3dh(i2c, addr=0x19, rate_hz=50); acc.start()
#   for x, y, z in acc.read(): ...      # milli-g
from micropython import const
import struct

ADDR_SDO_LOW = const(0x18)
ADDR_SDO_HIGH = const(0x19)
WHO_AM_I_VALUE = const(0x33)

_WHO_AM_I = const(0x0F)
_CTRL_REG1 = const(0x20)
_CTRL_REG4 = const(0x23)
_CTRL_REG5 = const(0x24)
_OUT_X_L = const(0x28)
_FIFO_CTRL = const(0x2E)
_FIFO_SRC = const(0x2F)
_AUTO_INC = const(0x80)
_FIFO_DEPTH = const(32)
_MG_PER_LSB = const(4)  # +-8 g, high resolution

# ODR field of CTRL_REG1 (bits 7..4)
RATES = {10: 0x2, 25: 0x3, 50: 0x4, 100: 0x5, 200: 0x6, 400: 0x7}


class SensorError(OSError):
    """The part does not answer as a LIS3DH (wrong WHO_AM_I)."""


class Lis3dh:
    def __init__(self, i2c, addr=ADDR_SDO_HIGH, rate_hz=50):
        if rate_hz not in RATES:
            raise ValueError("rate_hz: %r not supported; use one of %s" % (rate_hz, sorted(RATES)))
        self.i2c = i2c
        self.addr = addr
        self.rate_hz = rate_hz
        self.overruns = 0
        self._one = bytearray(1)

    def _w(self, reg, val):
        self._one[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def _r(self, reg):
        return self.i2c.readfrom_mem(self.addr, reg, 1)[0]

    def start(self):
        """Check identity and configure. Raises SensorError / OSError."""
        who = self._r(_WHO_AM_I)
        if who != WHO_AM_I_VALUE:
            raise SensorError("LIS3DH WHO_AM_I is 0x%02x, expected 0x33" % who)
        self._w(_CTRL_REG1, (RATES[self.rate_hz] << 4) | 0x07)  # normal mode, XYZ on
        self._w(_CTRL_REG4, 0x88 | (0x2 << 4))                  # BDU, +-8 g, high resolution
        self._w(_CTRL_REG5, 0x40)                               # FIFO enable
        self._w(_FIFO_CTRL, 0x80)                               # stream mode
        return who

    def read(self):
        """All samples waiting in the FIFO as [(x, y, z)] in milli-g (may be empty)."""
        src = self._r(_FIFO_SRC)
        if src & 0x40:
            self.overruns += 1
        n = 0 if src & 0x20 else (src & 0x1F) + (1 if src & 0x40 else 0)
        if n > _FIFO_DEPTH:
            n = _FIFO_DEPTH
        if n == 0:
            return []
        buf = self.i2c.readfrom_mem(self.addr, _OUT_X_L | _AUTO_INC, 6 * n)
        out = []
        for i in range(0, 6 * n, 6):
            x, y, z = struct.unpack_from("<hhh", buf, i)
            out.append(((x >> 4) * _MG_PER_LSB, (y >> 4) * _MG_PER_LSB, (z >> 4) * _MG_PER_LSB))
        return out

    def power_down(self):
        self._w(_CTRL_REG1, 0x00)
