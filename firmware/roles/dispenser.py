# Dispenser bridge: a serial link to a medicine dispenser speaking the
# reference protocol of docs/dispenser.md, mapped to welfare events:
#   DUE -> dose_due, TAKEN -> dose_taken, MISSED -> dose_missed (care alarm),
#   REFILL -> refill_due, TAMPER / DOOR,1 -> dispenser_tamper, ERR -> dispenser_error.
# Each dispenser message is ACKed only after its event is in the persistent
# queue (the dispenser retransmits until then); repeats are recognised by id.
# A dispenser that stops answering PINGs raises sensor_fault(2 no data).
from micropython import const
from time import ticks_diff, ticks_add
import struct
import wire
import dline
from role import Role

_RECENT = const(16)
_BUF_MAX = const(128)

# command -> (event code, number of int args, arg ranges)
_MAP = {
    "DUE": (wire.EV_DOSE_DUE, 2),
    "TAKEN": (wire.EV_DOSE_TAKEN, 2),
    "MISSED": (wire.EV_DOSE_MISSED, 2),
    "REFILL": (wire.EV_REFILL_DUE, 1),
    "TAMPER": (wire.EV_DISPENSER_TAMPER, 0),
    "ERR": (wire.EV_DISPENSER_ERROR, 1),
    "DOOR": (0, 1),
    "STAT": (0, 2),
}


class Dispenser(Role):
    ROLE = wire.ROLE_DISPENSER
    NAME = "dispenser"
    SCHEMA = {
        "ping_s": ("i", 30, 5, 600),
        "ping_misses": ("i", 3, 1, 20),
        "door_is_tamper": ("b", True, None, None),
    }

    def start(self):
        self.uart = self.hal.uart("dispenser")
        self._buf = bytearray()
        self._drop = False
        self._recent = []          # ids of messages already turned into events
        self._id = 0
        self._ping_due = self.app.now()
        self._unanswered = 0
        self._fault_open = False
        self.doses_left = None
        self.messages = 0

    def _send(self, cmd, *args):
        self._id = (self._id + 1) & 0xFF
        self.uart.write(dline.build(self._id, cmd, *args))

    def poll(self, now):
        data = self.uart.read(128)
        while data:
            for b in data:
                if b == 0x0A:
                    if not self._drop:
                        self._line(bytes(self._buf))
                    self._buf = bytearray()
                    self._drop = False
                elif not self._drop:
                    self._buf.append(b)
                    if len(self._buf) > _BUF_MAX:
                        self._drop = True      # runaway line: drop up to the newline
                        self.app.reject("dispenser")
                        self._buf = bytearray()
            data = self.uart.read(128)
        left = ticks_diff(self._ping_due, now)
        if left <= 0:
            if self._unanswered >= self.cfg.get("ping_misses") and not self._fault_open:
                self._fault_open = True
                self.app.sensor_fault(2)
            self._unanswered += 1
            self._send("PING")
            left = self.cfg.get("ping_s") * 1000
            self._ping_due = ticks_add(now, left)
        return left

    def _line(self, raw):
        m = dline.parse(raw)
        if m is None:
            if raw.strip():
                self.app.reject("dispenser")
            return
        msg_id, cmd, args = m
        spec = _MAP.get(cmd)
        vals = []
        ok = spec is not None and len(args) == spec[1]
        if ok:
            for a in args:
                try:
                    v = int(a)
                except ValueError:
                    ok = False
                    break
                if not 0 <= v <= 0xFFFF:
                    ok = False
                vals.append(v)
        if ok and spec[1] == 2 and cmd != "STAT" and (vals[0] > 255 or vals[1] > 1439):
            ok = False
        if ok and spec[1] == 1 and vals[0] > 255:
            ok = False
        if not ok:
            self.app.reject("dispenser")
            self.uart.write(dline.build(msg_id, "NAK"))
            return
        self._unanswered = 0
        self._fault_open = False
        self.messages += 1
        if msg_id in self._recent:
            self.uart.write(dline.build(msg_id, "ACK"))   # our ACK was lost: repeat it
            return
        code = spec[0]
        data = b""
        if cmd == "STAT":
            self.doses_left = vals[0]
        elif cmd == "DOOR":
            if vals[0] == 1 and self.cfg.get("door_is_tamper"):
                code = wire.EV_DISPENSER_TAMPER
        elif spec[1] == 2:
            data = struct.pack("<BH", vals[0], vals[1])
        elif spec[1] == 1:
            data = bytes(vals)
        if code:
            if self.app.emit(code, data) is None:
                return  # not stored: no ACK, the dispenser will retransmit
            if cmd == "REFILL":
                self.doses_left = vals[0]
        self._recent.append(msg_id)
        if len(self._recent) > _RECENT:
            self._recent.pop(0)
        self.uart.write(dline.build(msg_id, "ACK"))


ROLE_CLASS = Dispenser
