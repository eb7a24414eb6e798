# A minimal gateway peer for host simulations (MicroPython or CPython): decodes
# uplink frames, journals events by seq, ACKs them (STORED / DUPLICATE) and can
# send authenticated downlink frames. Used by firmware tests and bench/.
import wire
import wire_gw


class SimGateway:
    def __init__(self, uart, device_id, key, ack=True, epoch_s=1795413600, keep=None):
        self.uart = uart
        self.device_id = device_id
        self.auth = wire.Auth(key) if key else None
        self.dec = wire.StreamDecoder()
        self.window = wire.ReplayWindow()
        self.ack = ack            # False: the gateway is "down" (frames are dropped)
        self.ack_events = True    # False: EVENT frames are dropped (a lossy uplink), the rest arrives
        self.events = []          # (seq, code, age_ms, data) stored, in arrival order
        self.journal = {}
        self.frames = []          # accepted uplink Frames (of the types in ``keep``; None = all)
        self.keep = keep
        self.counts = {}          # type -> frames received
        self.rejects = {}
        self.dl_seq = 1
        self.last = {}            # type -> last Frame of that type
        self.epoch_s = epoch_s    # answer every HELLO with TIME (None: don't)
        self.t0 = None

    def service(self, hal=None):
        data = self.uart.read(4096)
        if not data:
            return None
        for item in self.dec.feed(data):
            f = wire.decode(item, self.auth) if item is not None else "oversize"
            if isinstance(f, str):
                self.rejects[f] = self.rejects.get(f, 0) + 1
                continue
            if not self.ack:
                continue
            if self.keep is None or f.type in self.keep:
                self.frames.append(f)
            self.counts[f.type] = self.counts.get(f.type, 0) + 1
            self.last[f.type] = f
            if f.type == wire.T_EVENT:
                if self.ack_events:
                    self._event(f)
            else:
                self.window.accept(f.seq) if self.window.check(f.seq) else None
            if f.type == wire.T_HELLO and self.epoch_s is not None:
                now = hal.clock.t if hal is not None else 0
                self.send(wire.T_TIME, wire.struct.pack("<I", self.epoch_s + now // 1000))
        return None

    def _event(self, f):
        if f.seq in self.journal:
            self.send(wire.T_ACK, wire.ack_payload(f.seq, wire.ACK_DUPLICATE))
            return
        if not self.window.check(f.seq):
            self.rejects["replay"] = self.rejects.get("replay", 0) + 1
            self.send(wire.T_ERROR, wire.error_payload(wire.E_REPLAY, "seq=%d highest=%d" % (f.seq, self.window.highest)))
            return
        self.window.accept(f.seq)
        ev = wire_gw.parse_event(f.payload)
        if isinstance(ev, str):
            self.rejects[ev] = self.rejects.get(ev, 0) + 1
            self.send(wire.T_ACK, wire.ack_payload(f.seq, wire.ACK_REJECTED))
            return
        self.journal[f.seq] = ev
        self.events.append((f.seq, ev[0], ev[1], ev[2]))
        self.send(wire.T_ACK, wire.ack_payload(f.seq, wire.ACK_STORED))

    def send(self, type, payload, seq=None, flags=0):
        if seq is None:
            seq = self.dl_seq
            self.dl_seq += 1
        self.uart.write(wire.encode(type, wire.F_DOWNLINK | flags, self.device_id, seq, payload, self.auth))
        return seq

    def codes(self):
        return [e[1] for e in self.events]

    def of_type(self, t):
        return [f for f in self.frames if f.type == t]
