# Emulator of the reference medicine dispenser (docs/dispenser.md).
# Runs under MicroPython (as a HostHal peer in tests and benches) and CPython
# (`python firmware/tools/dispenser_emu.py --port /dev/pts/N` for a HIL bench).
#
# It follows a daily schedule: at each slot's time it sends DUE; the resident
# "takes" the dose after take_delay_min (TAKEN) or never (MISSED after
# missed_after_min). Doses count down; at refill_at it sends REFILL. Extra
# events (TAMPER, ERR, DOOR, raw garbage) come from ``script``. Every message is
# retransmitted every retransmit_ms until the bridge ACKs (or NAKs) its id.
try:
    import dline
except ImportError:  # CPython from the repo root
    import sys
    sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/lib")
    import dline


class DispenserEmulator:
    def __init__(self, uart, schedule=((0, 480), (1, 1200)), days=1, day_start_ms=0,
                 take_delay_min=None, missed_after_min=30, doses=28, refill_at=3,
                 retransmit_ms=2000, script=(), ack_drop=0, answer_pings=True):
        self.uart = uart
        self.doses = doses
        self.refill_at = refill_at
        self.retransmit_ms = retransmit_ms
        self.ack_drop = ack_drop        # ignore this many ACKs (lost on the wire)
        self.answer_pings = answer_pings
        self.outbox = {}                # id -> [line, next_send_ms, sends]
        self.acked = []
        self.nakked = []
        self.sent = []                  # (t_ms, line) of every transmission
        self.pings = 0
        self._id = 0x40
        self._buf = b""
        tl = []
        delays = take_delay_min if isinstance(take_delay_min, dict) else {}
        for d in range(days):
            for slot, minute in schedule:
                t = day_start_ms + (d * 1440 + minute) * 60000
                tl.append((t, "DUE", (slot, minute)))
                delay = delays.get(slot) if delays else take_delay_min
                if isinstance(delay, int):
                    tl.append((t + delay * 60000, "TAKEN", (slot, minute)))
                else:
                    tl.append((t + missed_after_min * 60000, "MISSED", (slot, minute)))
        for ev in script:
            tl.append((ev[0], ev[1], tuple(ev[2:])))
        tl.sort(key=lambda e: e[0])
        self.timeline = tl

    def _send_new(self, now, cmd, args):
        self._id = (self._id + 1) & 0xFF
        line = dline.build(self._id, cmd, *args)
        self.outbox[self._id] = [line, now, 0]

    def service(self, hal):
        now = hal.clock.t
        self._read(now)
        while self.timeline and self.timeline[0][0] <= now:
            t, cmd, args = self.timeline.pop(0)
            if cmd == "GARBAGE":
                self.uart.write(args[0])
                continue
            self._send_new(now, cmd, args)
            if cmd in ("TAKEN", "MISSED"):
                self.doses = max(self.doses - 1, 0)
                if self.doses <= self.refill_at:
                    self._send_new(now, "REFILL", (self.doses,))
        nxt = None
        for i in list(self.outbox):
            ent = self.outbox[i]
            if ent[1] <= now:
                self.uart.write(ent[0])
                self.sent.append((now, ent[0]))
                ent[1] = now + self.retransmit_ms
                ent[2] += 1
            nxt = ent[1] - now if nxt is None else min(nxt, ent[1] - now)
        if self.timeline:
            w = self.timeline[0][0] - now
            nxt = w if nxt is None else min(nxt, w)
        return nxt

    def _read(self, now):
        data = self.uart.read(256)
        while data:
            self._buf += data
            data = self.uart.read(256)
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            m = dline.parse(line)
            if m is None:
                continue
            msg_id, cmd, _args = m
            if cmd == "ACK" and msg_id in self.outbox:
                if self.ack_drop > 0:
                    self.ack_drop -= 1
                    continue
                self.acked.append(self.outbox.pop(msg_id)[0])
            elif cmd == "NAK" and msg_id in self.outbox:
                self.nakked.append(self.outbox.pop(msg_id)[0])
            elif cmd == "PING":
                self.pings += 1
                if self.answer_pings:
                    self._id = (self._id + 1) & 0xFF
                    self.uart.write(dline.build(self._id, "STAT", self.doses, 0))


class _PtyUart:  # CPython stand-alone mode
    def __init__(self, path):
        import os
        import tty
        self.os = os
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(self.fd)
        except Exception:  # not a tty (a fifo or file): raw mode does not apply
            pass

    def read(self, n):
        try:
            return self.os.read(self.fd, n) or None
        except BlockingIOError:
            return None

    def write(self, b):
        return self.os.write(self.fd, b)


class _RealClockHal:
    def __init__(self):
        import time
        self._time = time
        self.t0 = time.monotonic()

    @property
    def clock(self):
        return self

    @property
    def t(self):
        return int((self._time.monotonic() - self.t0) * 1000)


def main(argv=None):
    import argparse
    import time
    ap = argparse.ArgumentParser(description="Reference dispenser emulator on a serial port / pty")
    ap.add_argument("--port", required=True, help="serial device or pty path of the bridge's dispenser UART")
    ap.add_argument("--minute-ms", type=int, default=60000, help="length of one schedule minute (speed up tests)")
    ap.add_argument("--take-delay", type=int, default=None, help="minutes until the dose is taken (default: missed)")
    ap.add_argument("--schedule", default="0:480,1:1200", help="slot:minute,... (minutes after midnight)")
    a = ap.parse_args(argv)
    sched = tuple(tuple(int(x) for x in s.split(":")) for s in a.schedule.split(","))
    hal = _RealClockHal()
    scale = 60000 / a.minute_ms
    emu = DispenserEmulator(_PtyUart(a.port), sched, take_delay_min=a.take_delay)
    for i, e in enumerate(emu.timeline):
        emu.timeline[i] = (int(e[0] / scale), e[1], e[2])
    while True:
        w = emu.service(hal)
        time.sleep(min(w if w is not None else 1000, 200) / 1000)


if __name__ == "__main__":
    main()
