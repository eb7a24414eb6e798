# Base class of a device role. A role turns sensor input into events with
# app.emit(code, data) and reacts to gateway feedback; the App owns the link,
# the queue, heartbeats, the watchdog and OTA. See firmware/README.md.
from micropython import const

IDLE_MS = const(60000)


class Role:
    ROLE = 0          # wire role byte (wire.ROLE_*)
    NAME = ""
    # role settings: key -> (kind, default, lo, hi), see cfgtool.py; or the name of a
    # lib module exporting SCHEMA (then the table is loaded only when cfgtool needs it)
    SCHEMA: "dict | str" = {}

    def __init__(self, app):
        self.app = app
        self.hal = app.hal
        self.cfg = app.cfg

    def start(self):
        """Called once after boot, before the first poll."""

    def poll(self, now_ms):
        """Do due work; return ms until the next call is needed (None = idle)."""
        return None

    def on_feedback(self, ref_seq, state):
        """FEEDBACK from the gateway about our alarm ``ref_seq`` (wire state 1..3)."""

    def on_config(self, cfg):
        self.cfg = cfg

    def healthy(self):
        """False stops the watchdog feed (a stuck sensor then resets the device)."""
        return True

    def sleep_ok(self):
        """(ms, [wake pin names]) if the device may deep-sleep now, else None."""
        return None
