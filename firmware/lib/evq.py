# Persistent event queue: one small file per unacknowledged event on littlefs.
#
# Each record is written with store.write_atomic (tmp + rename, CRC), so a power
# cut at any flash write leaves either the complete record or none. Bounded:
# when full, the oldest telemetry is evicted first; alarms are evicted only for a
# newer alarm, care alarms last. A record is deleted only when the gateway acks.
from micropython import const
import os
import struct
import store
from wire import event_class

_HDR = "<IBBHII"
_HDR_LEN = const(16)
# index entry fields
SEQ = const(0)
CLS = const(1)
TRIES = const(2)
DUE = const(3)
_RAM = const(4)


class Record:
    def __init__(self, seq, code, boot, t_ms, epoch_s, data):
        self.seq = seq
        self.code = code
        self.boot = boot
        self.t_ms = t_ms
        self.epoch_s = epoch_s
        self.data = data

    def pack(self):
        return struct.pack(_HDR, self.seq, self.code, event_class(self.code) & 0xFF,
                           self.boot, self.t_ms, self.epoch_s) + self.data


def _unpack(b):
    if b is None or len(b) < _HDR_LEN:
        return None
    seq, code, _cls, boot, t, ep = struct.unpack(_HDR, b[:_HDR_LEN])
    if event_class(code) < 0:
        return None
    return Record(seq, code, boot, t, ep, bytes(b[_HDR_LEN:]))


class EventQueue:
    def __init__(self, directory, capacity=32):
        self._dir = directory
        self.capacity = capacity
        self.dropped = 0
        self.corrupt = 0
        self.flash_errors = 0
        self.evicted = 0     # seq of the last event evicted to make room
        self._items = []  # [seq, cls, tries, due_ms, ram_record|None]
        store.mkdirs(directory)
        for name in os.listdir(directory):
            path = directory + "/" + name
            r = None if name.endswith(".t") else _unpack(store.read_checked(path))
            if r is None or name != "%08x" % r.seq:
                self.corrupt += 0 if name.endswith(".t") else 1
                store.remove(path)
                continue
            self._items.append([r.seq, event_class(r.code), 0, 0, None])
        self._sort()

    def _sort(self):
        # alarms first (care, then technical), then sequence order
        self._items.sort(key=lambda e: ((2, 0, 1)[e[CLS]], e[SEQ]))

    def __len__(self):
        return len(self._items)

    def max_seq(self):
        m = 0
        for e in self._items:
            if e[SEQ] > m:
                m = e[SEQ]
        return m

    def min_seq(self):
        return min(e[SEQ] for e in self._items) if self._items else 0

    def entries(self):
        """Index entries in send order (alarms first, then by seq). Do not mutate SEQ/CLS."""
        return self._items

    def _victim(self, cls):
        # telemetry goes first; a technical alarm may displace an older technical
        # alarm, a care alarm may displace anything older; telemetry never an alarm
        order = (0, 2, 1) if cls == 1 else ((0, 2) if cls == 2 else (0,))
        for want in order:
            best = None
            for e in self._items:
                if e[CLS] == want and (best is None or e[SEQ] < best[SEQ]):
                    best = e
            if best is not None:
                return best
        return None

    def push(self, rec):
        """Store ``rec``. False if the queue is full of alarms and ``rec`` is telemetry."""
        cls = event_class(rec.code)
        while len(self._items) >= self.capacity:   # (a loop: the capacity may have shrunk)
            v = self._victim(cls)
            if v is None:
                self.dropped += 1
                return False
            self.dropped += 1
            self.evicted = v[SEQ]
            self.ack(v[SEQ])
        ram = None
        try:
            store.write_atomic(self._path(rec.seq), rec.pack())
        except OSError:
            # flash full or failing: keep the event in RAM rather than lose it
            self.flash_errors += 1
            ram = rec
        self._items.append([rec.seq, cls, 0, 0, ram])
        self._sort()
        return True

    def _path(self, seq):
        return "%s/%08x" % (self._dir, seq)

    def get(self, seq):
        for e in self._items:
            if e[SEQ] == seq:
                if e[_RAM] is not None:
                    return e[_RAM]
                return _unpack(store.read_checked(self._path(seq)))
        return None

    def ack(self, seq):
        for i, e in enumerate(self._items):
            if e[SEQ] == seq:
                del self._items[i]
                if e[_RAM] is None:
                    store.remove(self._path(seq))
                return True
        return False

    def reseq(self, old, new):
        """Give a pending event a fresh seq (the gateway proved it never stored it)."""
        r = self.get(old)
        if r is None:
            return False
        r.seq = new
        self.ack(old)
        self.push(r)
        return True
