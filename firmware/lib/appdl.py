# The rare downlink frames of the App (app.py): CONFIG_GET, CONFIG, OTA, ERROR and
# unknown types, malformed ACK/FEEDBACK/TIME. App._dispatch() imports this per such frame and drops it again
# (RAM); ACK, FEEDBACK and TIME stay in app.py.
import sys
import wire

_WINDOW = 64  # the gateway's replay window


def _bad(app, f):
    app.reject("bad_payload")
    app.link.error(wire.E_BAD_PAYLOAD, "type 0x%02x seq %d" % (f.type, f.seq))


def dispatch(app, f):
    t = f.type
    p = f.payload
    if t == wire.T_CONFIG_GET:
        if p:
            return _bad(app, f)
        _cfgtool().send_report(app)
    elif t == wire.T_CONFIG:
        if not _cfgtool().handle_set(app, f):
            return _bad(app, f)
    elif t in (wire.T_OTA_BEGIN, wire.T_OTA_CHUNK, wire.T_OTA_END):
        if app.ota is None:
            import ota  # rarely needed: imported per transfer, dropped when idle (RAM)
            app.ota = ota.Ota(app)
        app.ota.handle(f)
    elif t == wire.T_ERROR:
        _on_error(app, p)
    elif t in (wire.T_ACK, wire.T_FEEDBACK, wire.T_TIME):
        _bad(app, f)   # App._dispatch found its payload malformed
    else:
        app.reject("unknown_type")
        app.link.error(wire.E_UNKNOWN_TYPE, "type 0x%02x is not a downlink type" % t)


def _on_error(app, p):
    if p and p[0] == wire.E_REPLAY:
        # The gateway answers DUPLICATE for events it has; "replay" for our last
        # event means it never stored it and it fell out of the window: re-number it.
        s = app._last_event_seq
        if s and app.queue.get(s) is not None and app.seq.peek() - 1 - s >= _WINDOW:
            app.queue.reseq(s, app.seq.next())


def _cfgtool():
    import cfgtool  # loaded for one CONFIG frame, then dropped again (RAM)
    sys.modules.pop("cfgtool", None)
    return cfgtool
