# The rare downlink frames of the App (app.py): CONFIG_GET, CONFIG, OTA, ERROR and
# unknown types, malformed ACK/FEEDBACK/TIME. App._dispatch() imports this per such frame and drops it again
# (RAM); ACK, FEEDBACK and TIME stay in app.py.
import sys
import wire


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
    # ERROR 3 "seq=<S> highest=<H>" (docs/protocol.md "Replay recovery"): the gateway
    # refused our frame S as already seen and holds no event S of ours (it would have
    # answered ACK DUPLICATE), e.g. after a re-flash restarted our counter, or a re-key.
    # Never use a seq at or below H again, and give a queued event S a fresh seq.
    if not p or p[0] != wire.E_REPLAY:
        return
    s = h = None
    for tok in bytes(p[1:]).split():
        if tok[:4] == b"seq=":
            s = _num(tok[4:])
        elif tok[:8] == b"highest=":
            h = _num(tok[8:])
    c = app.seq
    if h is not None and h >= c._next:
        # store.Counter: the next next() reserves a new block from h + 1 in flash before
        # it hands the value out (done here, not in store.py: rare code stays out of RAM)
        c._next = c._limit = h + 1
    if s is not None:
        for e in app.queue.entries():
            if e[0] == s:
                app.queue.reseq(s, app.seq.next())
                return


def _num(b):
    # a u32 in decimal, else None (never raises on what the gateway sent)
    try:
        v = int(b)
    except ValueError:
        return None
    return v if 0 <= v < 0xFFFFFFFF else None


def _cfgtool():
    import cfgtool  # loaded for one CONFIG frame, then dropped again (RAM)
    sys.modules.pop("cfgtool", None)
    return cfgtool
