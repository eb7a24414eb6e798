# Serial link to the gateway: frames out (with seq and tag), frames in (decoded,
# authenticated, replay-checked). Every rejected input is counted per reason;
# ``rejects`` is reported and reset by the next heartbeat. A device with a key
# accepts only authenticated downlink frames (every type) and checks the replay
# window after the tag: nothing unauthenticated moves the window.
from micropython import const
import wire

_READ_CHUNK = const(128)
_READ_MAX = const(1024)  # per poll, so a flood cannot starve the main loop


class Link:
    def __init__(self, uart, device_id, key, seq, dl_highest=0):
        self._uart = uart
        self.device_id = device_id
        self._auth = wire.Auth(key) if key else None
        self._seq = seq
        self._dec = wire.StreamDecoder()
        self.window = wire.ReplayWindow(dl_highest)
        self.rejects = 0      # since the last heartbeat
        self.reasons = {}     # reason -> count since boot
        self.rx_frames = 0
        self.tx_frames = 0

    def count(self, reason):
        self.rejects += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def send(self, type, payload, flags=0, seq=None):
        """Write one frame; returns its seq (a fresh one unless ``seq`` is given)."""
        if seq is None:
            seq = self._seq.next()
        self._uart.write(wire.encode(type, flags, self.device_id, seq, payload, self._auth))
        self.tx_frames += 1
        return seq

    def error(self, code, msg=""):
        return self.send(wire.T_ERROR, wire.error_payload(code, msg))

    def poll(self):
        """Accepted downlink frames that arrived since the last poll (maybe [])."""
        out = []
        got = 0
        while got < _READ_MAX:
            data = self._uart.read(_READ_CHUNK)
            if not data:
                break
            got += len(data)
            for item in self._dec.feed(data):
                f = self._accept(item)
                if f is not None:
                    out.append(f)
        return out

    def _accept(self, item):
        if item is None:
            self.count("oversize")
            return None
        f = wire.decode(item, self._auth)
        if isinstance(f, str):
            if f != "empty":  # a bare delimiter is a resync, not an error
                self.count(f)
            return None
        if f.device_id != self.device_id:
            self.count("unknown_device")
            return None
        if not f.flags & wire.F_DOWNLINK:
            # an uplink frame (ours reflected, or another device's): never act on it
            self.count("bad_auth")
            return None
        if self._auth is not None and not f.authed:
            # a keyed device acts on no unauthenticated downlink, ERROR included, and its
            # window (RAM, then flash in App._dispatch) moves only for authenticated frames:
            # a forged frame with seq 0xFFFFFFFF must not cut the gateway off
            self.count("unauthenticated")
            return None
        if not self.window.check(f.seq):
            self.count("replay")
            return None
        self.window.accept(f.seq)
        self.rx_frames += 1
        return f
