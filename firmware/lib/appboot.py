# Boot-time part of the App (app.py): the constructor's state, HELLO, configuration
# problems, flash problems, the OTA result report, the watchdog, role start.
# Imported by App() and App.boot() and dropped again right away (its code is not
# needed once the loop runs: RAM).
import json
import struct
import store
import wire
from evq import EventQueue
from link import Link


def init(app, hal, cfg, role_cls, fw_version, cfg_path, boot_slot):
    app.hal = hal
    app.cfg = cfg
    app.fw_version = fw_version
    app.cfg_path = cfg_path
    app.boot_slot = boot_slot   # OTA slot under test (confirm after health check)
    d = hal.data_dir
    app._dir = d
    clock = hal.clock
    app.boot_id = store.Counter(d + "/boot", 1, 1).next() & 0xFFFF
    app.queue = EventQueue(d + "/q", cfg.get("queue_max"))
    app.seq = store.Counter(d + "/seq", app.queue.max_seq() + 1)
    k = cfg.get("key")
    app.link = link = Link(hal.uart("link"), hal.device_id(), bytes.fromhex(k) if k else None, app.seq)
    # The downlink window is bound to the key it was built under (docs/protocol.md
    # "Re-keying"): dlseq = highest u32 + the key's 4-byte fingerprint. A new key starts
    # an empty window (frames under the old key no longer verify); a 4-byte file (older
    # firmware) is kept as it is.
    app._dl_fp = link._auth.mac(b"wt dlseq")[:4] if link._auth is not None else b"\0\0\0\0"
    b = store.read_checked(d + "/dlseq")
    app._dl_saved = struct.unpack("<I", b[:4])[0] if b is not None and (
        len(b) == 4 or b[4:] == app._dl_fp) else 0
    link.window = wire.ReplayWindow(app._dl_saved)
    app.started_ms = clock.ticks_ms()
    app.epoch = None            # (epoch_s, ticks_ms) from the gateway's TIME
    app.gateway_seen = False    # an authenticated downlink frame arrived this boot
    app.feedback = {}           # alarm seq -> last FEEDBACK state
    app.heartbeats = 0
    app.skipped_heartbeats = 0
    app.gw_rejected = 0
    app.ota = None
    app._hb_due = app.started_ms
    app._low_batt = False
    app._last_fault = None
    app._unhealthy = None
    app._wdt = None
    app.role = role_cls(app)


def boot(app):
    cfg = app.cfg
    app.link.send(wire.T_HELLO, wire.hello_payload(app.role.ROLE, app.hal.reset_cause(),
                                                    cfg.version, app.fw_version))
    for p in cfg.problems:
        app.reject("config")
        app.link.error(wire.E_BAD_CONFIG, p)
    if app.queue.corrupt:
        for _ in range(app.queue.corrupt):
            app.reject("flash")
    ota = None
    if _ota_pending(app):
        import ota as ota_mod
        ota = app.ota = ota_mod.Ota(app)
    if ota is not None:
        ota.report_boot()
        app._ota_drop()
    app._wdt = app.hal.wdt(cfg.get("wdt_ms"))
    app.role.start()


def _ota_pending(app):
    """At boot: is there OTA business (trial slot, result to report, partial download)?"""
    d = app._dir + "/ota"
    if app.boot_slot is not None or store.exists(d + "/incoming"):
        return True
    try:
        with open(d + "/state") as f:
            return bool(json.load(f).get("result"))
    except (OSError, ValueError, AttributeError):
        return store.exists(d + "/state.t")
