# Application framework: one cooperative main loop per device.
#
#   App(hal, cfg, role_cls, fw_version, cfg_path).run()
#
# Each step: read downlink frames, let the role poll its sensors, (re)send
# queued events (alarms first, bounded backoff), send the heartbeat when due,
# feed the watchdog only if everything is healthy, then hal.wait() until the
# next deadline or input (never a busy-wait).
from micropython import const
import struct
from time import ticks_diff, ticks_add
import wire
import store
from evq import Record, SEQ, CLS, TRIES, DUE

_MAX_WAIT_MS = const(60000)
_HB_GAP = const(48)       # keep pending events inside the gateway's 64-seq window
_DL_SAVE_EVERY = const(32)
_FAULT_EVERY_MS = const(600000)


class App:
    def __init__(self, hal, cfg, role_cls, fw_version, cfg_path, boot_slot=None):
        import sys
        import appboot  # the constructor's work is boot-time only (RAM): see appboot.init
        sys.modules.pop("appboot", None)
        self._fresh = False    # an event was queued since this step's _send_events
        appboot.init(self, hal, cfg, role_cls, fw_version, cfg_path, boot_slot)

    # --- services for roles -------------------------------------------------------

    def now(self):
        return self.hal.clock.ticks_ms()

    def epoch_s(self):
        """UTC seconds if the gateway has sent TIME this boot, else None."""
        if self.epoch is None:
            return None
        return self.epoch[0] + ticks_diff(self.now(), self.epoch[1]) // 1000

    def emit(self, code, data=b""):
        """Queue an event persistently and send it at once. Returns its seq (or None if dropped)."""
        seq = self.seq.next()
        ep = self.epoch_s()
        rec = Record(seq, code, self.boot_id, self.now(), ep or 0, data)
        self._fresh = True     # step() sends it before the loop waits again
        return seq if self.queue.push(rec) else None

    def reject(self, reason):
        """Count one bad input (sensor error, bad peer data); reported in the next heartbeat."""
        self.link.count(reason)

    def sensor_fault(self, fault):
        """Count a sensor error; raise a sensor_fault alarm at most every 10 minutes."""
        self.reject("sensor")
        now = self.now()
        if self._last_fault is None or ticks_diff(now, self._last_fault) >= _FAULT_EVERY_MS:
            self._last_fault = now
            self.emit(wire.EV_SENSOR_FAULT, bytes((fault,)))

    # --- boot and loop --------------------------------------------------------------

    def boot(self):
        import sys
        import appboot  # boot-time only: HELLO, config problems, OTA report; then dropped (RAM)
        sys.modules.pop("appboot", None)
        appboot.boot(self)

    def run(self):
        self.boot()
        while True:
            self.hal.wait(self.step())

    def step(self):
        """One loop iteration; returns ms to wait before the next one."""
        now = self.now()
        waits = [_MAX_WAIT_MS, self.cfg.get("wdt_ms") // 2]
        for f in self.link.poll():
            self._dispatch(f)
        try:
            w = self.role.poll(now)
        except OSError:
            # a driver raised (I2C/UART error): count, report, keep running
            self.sensor_fault(1)
            w = 1000
        if w is not None:
            waits.append(w)
        now = self.now()
        self._fresh = False
        waits.append(self._send_events(now))
        waits.append(self._heartbeat(now))
        if self.ota is not None:
            w = self.ota.poll(now)
            if w is not None:
                waits.append(w)
            elif self.ota.state != 1:
                self._ota_drop()   # idle again (committed, failed, or nothing to do)
        if self._fresh:
            # emitted after the send above (low_battery in the heartbeat, OTA result):
            # out now, not at the next wake-up (up to heartbeat_s later)
            self._fresh = False
            waits.append(self._send_events(self.now()))
        if self._healthy(now):
            self._wdt.feed()
        w = min(waits)
        if w > 0 and not len(self.queue) and (self.ota is None or not self.ota.busy()):
            s = self.role.sleep_ok()
            if s is not None:
                self.hal.deep_sleep(s[0], s[1])
        return max(w, 0)

    def _healthy(self, now):
        ok = self.role.healthy() and self.queue.flash_errors < 8
        if ok:
            self._unhealthy = None
        elif self._unhealthy is None:
            self._unhealthy = now
        return ok

    # --- uplink -------------------------------------------------------------------

    def _age_ms(self, rec, now):
        if rec.boot == self.boot_id:
            return max(ticks_diff(now, rec.t_ms), 0)
        ep = self.epoch_s()
        if ep is not None and rec.epoch_s:
            return max(ep - rec.epoch_s, 0) * 1000
        # queued before a reset without wall time: at least our uptime
        return max(ticks_diff(now, self.started_ms), 0)

    def _backoff(self, tries):
        ms = self.cfg.get("retry_ms") << min(tries - 1, 10)
        return min(ms, self.cfg.get("retry_max_ms"))

    def _send_events(self, now):
        """Send due events in order (alarms first); returns ms until the next is due."""
        budget = self.cfg.get("inflight")
        nxt = _MAX_WAIT_MS
        for e in list(self.queue.entries()):
            if e[TRIES] and ticks_diff(e[DUE], now) > 0:
                nxt = min(nxt, ticks_diff(e[DUE], now))
                continue
            if budget == 0:
                nxt = min(nxt, self.cfg.get("retry_ms"))
                break
            rec = self.queue.get(e[SEQ])
            if rec is None:
                self.reject("flash")
                self.queue.ack(e[SEQ])
                continue
            budget -= 1
            flags = wire.F_URGENT if e[CLS] == 1 else 0  # care alarms only
            self.link.send(wire.T_EVENT, wire.event_payload(rec.code, self._age_ms(rec, now), rec.data),
                           flags, e[SEQ])
            e[TRIES] += 1
            e[DUE] = ticks_add(now, self._backoff(e[TRIES]))
            nxt = min(nxt, self._backoff(e[TRIES]))
        return nxt

    def _heartbeat(self, now):
        period = self.cfg.get("heartbeat_s") * 1000
        left = ticks_diff(self._hb_due, now)
        if left > 0:
            return left
        self._hb_due = ticks_add(now, period)
        pct, mv, flags = self.hal.battery()
        low = self.cfg.get("low_battery_pct")
        if pct != 0xFF and pct <= low:
            flags |= 4
            if not self._low_batt:
                self._low_batt = True
                self.emit(wire.EV_LOW_BATTERY, struct.pack("<BH", pct, mv))
        elif pct != 0xFF and pct > low + 5:
            self._low_batt = False
        if len(self.queue) and self.seq.peek() - self.queue.min_seq() >= _HB_GAP:
            # the link is down and events wait: don't push them out of the replay window
            self.skipped_heartbeats += 1
            return period
        up = ticks_diff(now, self.started_ms) // 1000
        self.link.send(wire.T_HEARTBEAT, wire.heartbeat_payload(
            pct, mv, flags, up, len(self.queue), self.link.rejects, self.hal.rssi()))
        self.link.rejects = 0
        self.heartbeats += 1
        return period

    # --- downlink -----------------------------------------------------------------

    def _dispatch(self, f):
        self.gateway_seen = self.gateway_seen or f.authed
        if f.seq - self._dl_saved >= _DL_SAVE_EVERY or f.type in (wire.T_CONFIG, wire.T_OTA_BEGIN, wire.T_TIME):
            # (frames whose replay after a reset would matter are never left unsaved)
            self._save_dlseq(f.seq)
        t = f.type
        p = f.payload
        if t == wire.T_ACK:
            a = wire.parse_u32_u8(p, 3)
            if a is None:
                return _rare(self, f)   # malformed: appdl reports it
            if a[1] in (wire.ACK_STORED, wire.ACK_DUPLICATE):
                self.queue.ack(a[0])
            elif a[1] == wire.ACK_REJECTED:
                # the gateway will never take it (e.g. a code it does not know)
                if self.queue.ack(a[0]):
                    self.gw_rejected += 1
            elif a[1] == wire.ACK_BUSY:
                for e in self.queue.entries():
                    if e[SEQ] == a[0]:
                        e[DUE] = ticks_add(self.now(), self.cfg.get("retry_max_ms"))
        elif t == wire.T_FEEDBACK:
            a = wire.parse_u32_u8(p, 3)
            if a is None or a[1] == 0:
                return _rare(self, f)   # malformed: appdl reports it
            self.feedback[a[0]] = a[1]
            if len(self.feedback) > 8:
                self.feedback.pop(min(self.feedback))
            self.role.on_feedback(a[0], a[1])
        elif t == wire.T_TIME:
            if len(p) != 4:
                return _rare(self, f)   # malformed: appdl reports it
            self.epoch = (struct.unpack("<I", p)[0], self.now())
        else:
            _rare(self, f)

    def _save_dlseq(self, seq):
        try:
            store.write_atomic(self._dir + "/dlseq", struct.pack("<I", seq) + self._dl_fp)
            self._dl_saved = seq
        except OSError:
            self.reject("flash")

    def _ota_drop(self):
        """Forget the OTA module once nothing is in progress (frees its RAM)."""
        o = self.ota
        if o is not None and not o.busy() and self.boot_slot is None and o.state != 1:
            self.ota = None
            import sys
            sys.modules.pop("ota", None)


def _rare(app, f):
    # CONFIG_GET, CONFIG, OTA, ERROR, unknown types and malformed ACK/FEEDBACK/TIME:
    # rare, handled in appdl.py (imported per frame and dropped again: RAM)
    import sys
    import appdl
    sys.modules.pop("appdl", None)
    appdl.dispatch(app, f)
