# Cellular uplink for the GPS tracker away from home: queued events are published
# straight to the platform broker through the modem's MQTT client, with the same
# payloads the gateway publishes (docs/mqtt.md wt.alarm/1, wt.event/1) on
# wt/v1/dev/{dev}/alarm | event. event_id = "<dev>-<seq:08x>", exactly what the
# gateway would use for the same event, so a receiver de-duplicates an event that
# arrives over both paths.
#
# A session: start -> SIM -> registered? -> PDP -> TLS context (modem_tls) -> MQTT
# connect (the device's own user name and password, persistent session) -> subscribe
# to wt/v1/dev/{dev}/ack -> publish (QoS 1) -> wait for the platform's acks ->
# disconnect. Any failure ends the session, names the step (no_modem, no_sim,
# no_coverage, attach, tls, connect, subscribe, publish, no_ack) and backs off
# exponentially (retry_ms doubling up to retry_max_ms).
#
# Delivery: telemetry leaves the queue at the broker's PUBACK, an ALARM only at the
# platform's wt.ack/1 for its event_id on the device's ack topic (docs/mqtt.md): an
# MQTT 3.1.1 broker PUBACKs a publish its ACL refuses, so a PUBACK proves nothing. An
# alarm without an ack stays queued and is published again next session (same
# event_id, attempt + 1); an ack that arrives while the tracker is offline waits in its
# persistent session and is read at the next connect.
import json
import struct
import sys
from time import ticks_diff, ticks_add
from modem import ModemError

CLASS_NAMES = ("event", "care", "technical")
# code -> (type, class, struct format, field names); same as docs/protocol.md §2
EVENTS = {
    0x01: ("button_press", 1, "", ()),
    0x02: ("button_cancel", 0, "", ()),
    0x10: ("fall_detected", 1, "<HBB", ("peak_cg", "placement", "confidence")),
    0x11: ("fall_cancelled", 0, "<HBB", ("peak_cg", "placement", "confidence")),
    0x40: ("gps_position", 0, "<iihBBB", ("lat", "lon", "alt_m", "fix_quality", "sats", "zone")),
    0x41: ("geofence_exit", 1, "<iihBBB", ("lat", "lon", "alt_m", "fix_quality", "sats", "zone")),
    0x42: ("geofence_enter", 0, "<iihBBB", ("lat", "lon", "alt_m", "fix_quality", "sats", "zone")),
    0x43: ("gps_no_fix", 0, "", ()),
    0x60: ("low_battery", 2, "<BH", ("battery_pct", "battery_mv")),
    0x61: ("tamper", 2, "", ()),
    0x62: ("self_test_failed", 2, "<B", ("check",)),
    0x63: ("power_off", 2, "<B", ("reason",)),
    0x64: ("charger_idle", 2, "<H", ("hours",)),
    0x65: ("sensor_fault", 2, "<B", ("fault",)),
}

R_OK = ""
R_NO_MODEM = "no_modem"
R_NO_SIM = "no_sim"
R_NO_COVERAGE = "no_coverage"
R_ATTACH = "attach"
R_TLS = "tls"
R_CONNECT = "connect"
R_SUBSCRIBE = "subscribe"
R_PUBLISH = "publish"
R_NO_ACK = "no_ack"
R_UNKNOWN_CODE = "unknown_code"
_ACKED = ("received", "accepted", "resolved")


def _days_to_civil(z):
    # days since 1970-01-01 -> (y, m, d)  (H. Hinnant's algorithm, integers only)
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y, m, d)


def civil_to_days(y, m, d):
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def rfc3339(epoch_ms):
    """2026-11-23T06:00:00.123Z from integer epoch milliseconds (None -> None)."""
    if epoch_ms is None:
        return None
    days, ms = divmod(epoch_ms, 86400000)
    y, m, d = _days_to_civil(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        y, m, d, ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000)


def _e7(v):
    sign = "-" if v < 0 else ""
    v = -v if v < 0 else v
    return "%s%d.%07d" % (sign, v // 10000000, v % 10000000)


def _jstr(s):
    return "null" if s is None else '"%s"' % s


def topic(dev_hex, code, leaf=None):
    """The device topic of event ``code`` (alarm / event), or of ``leaf`` ("ack")."""
    if leaf is None:
        e = EVENTS.get(code)
        leaf = "alarm" if e is not None and e[1] else "event"
    return "wt/v1/dev/%s/%s" % (dev_hex, leaf)


def ack_id(payload):
    """The event_id a wt.ack/1 payload (text) acknowledges, else None (never raises)."""
    try:
        a = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(a, dict) or a.get("schema") != "wt.ack/1" or a.get("status") not in _ACKED:
        return None
    e = a.get("event_id")
    return e if isinstance(e, str) else None


def event_json(dev_hex, role, seq, code, data, occurred_ms, sent_ms, attempt=1, test=False):
    """The wt.alarm/1 or wt.event/1 payload (bytes), or None for an unknown code/data."""
    e = EVENTS.get(code)
    if e is None:
        return None
    name, cls, fmt, fields = e
    try:
        vals = struct.unpack(fmt, data) if fmt else ()
    except ValueError:
        return None
    if len(vals) != len(fields):
        return None
    parts = []
    for i in range(len(fields)):
        v = vals[i]
        parts.append('"%s":%s' % (fields[i], _e7(v) if fields[i] in ("lat", "lon") else str(v)))
    t_occ = rfc3339(occurred_ms)
    # "gateway" is null: no gateway handled it (the tracker published directly);
    # received_at is when the device raised it (no hop in between).
    body = ('{"schema":"wt.%s/1","event_id":"%s-%08x","gateway":null,"device":"%s","role":"%s",'
            '"class":"%s","type":"%s","test":%s,"occurred_at":%s,"received_at":%s,"sent_at":%s,'
            '"attempt":%d,"route":"primary","data":{%s}}') % (
        "alarm" if cls else "event", dev_hex, seq, dev_hex, role, CLASS_NAMES[cls], name,
        "true" if test else "false", _jstr(t_occ), _jstr(t_occ), _jstr(rfc3339(sent_ms)),
        attempt, ",".join(parts))
    return body.encode()


def _unacked(sent, wait):
    for e in sent:
        if e in wait:
            return True
    return False


class CellularUplink:
    def __init__(self, modem, dev_hex, host, port, ticks_ms, role="gps", apn="",
                 retry_ms=30000, retry_max_ms=900000, keepalive_s=60, creds=None, files="",
                 ack_wait_ms=10000, data=None, reject=None):
        self.modem = modem
        self.dev = dev_hex
        self.host = host
        self.port = port
        self.role = role
        self.apn = apn
        self._ticks = ticks_ms
        self.retry_ms = retry_ms
        self.retry_max_ms = retry_max_ms
        self.keepalive_s = keepalive_s
        self.fails = 0
        self._due = None
        self.last_reason = R_OK
        self.sessions = 0
        self.published = 0
        self.attempts = {}  # seq -> publications so far (attempt counter)
        # the device's identity: from <data> (cellular.json, cell/) when ``data`` is given,
        # else ``creds`` as modem_cred.credentials() returns it (None: no user, no TLS - a
        # bench broker) and ``files``, the directory of its TLS files
        if data is not None:
            import modem_cred  # once per load (RAM)
            sys.modules.pop("modem_cred", None)
            creds = modem_cred.credentials(data, dev_hex, reject)
            files = data + "/cell"
        self.creds = creds or {"user": "", "password": "", "tls": None}
        self.files = files
        self.uploaded = False   # TLS files copied into the modem (once per load)
        self.ack_wait_ms = ack_wait_ms
        self.acked = 0          # alarms the platform acknowledged
        self.stray = 0          # messages on the ack topic that acked nothing we hold

    def wait_ms(self, now):
        """0 if a session may start now, else ms until the backoff expires."""
        if self._due is None:
            return 0
        left = ticks_diff(self._due, now)
        return left if left > 0 else 0

    def _fail(self, reason, now):
        self.fails += 1
        self.last_reason = reason
        ms = self.retry_ms << min(self.fails - 1, 12)
        if ms > self.retry_max_ms:
            ms = self.retry_max_ms
        self._due = ticks_add(now, ms)
        return reason

    def connect(self):
        """Bring the modem to MQTT-connected. Returns R_OK or the failing step."""
        m = self.modem
        try:
            m.start()
        except ModemError:
            return R_NO_MODEM
        try:
            if not m.sim_ready():
                return R_NO_SIM
        except ModemError:
            return R_NO_SIM
        try:
            if not m.registered():
                return R_NO_COVERAGE
        except ModemError:
            return R_NO_COVERAGE
        try:
            m.attach(self.apn)
        except ModemError:
            return R_ATTACH
        cr = self.creds
        if cr["tls"] is not None:
            import modem_tls  # session set-up only (RAM)
            sys.modules.pop("modem_tls", None)
            try:
                modem_tls.setup(m, self.host, cr["tls"], self.files, self.uploaded)
            except (ModemError, OSError):
                self.uploaded = False
                return R_TLS
            self.uploaded = True
        try:
            m.mqtt_connect(self.host, self.port, "wt-" + self.dev, self.keepalive_s,
                           cr["user"] if cr["password"] else "", cr["password"], timeout_ms=10000)
        except ModemError:
            return R_CONNECT
        try:
            m.mqtt_subscribe(topic(self.dev, 0, "ack"))
        except ModemError:
            self._close()
            return R_SUBSCRIBE
        return R_OK

    def _acks(self, wait, done):
        """Alarms of ``wait`` (event_id -> seq) the platform acknowledged -> ``done``."""
        m = self.modem
        t = topic(self.dev, 0, "ack")
        for tp, p in m.inbox:
            seq = wait.pop(ack_id(p), None) if tp == t else None
            if seq is None:
                self.stray += 1
                continue
            self.attempts.pop(seq, None)
            self.acked += 1
            if seq not in done:
                done.append(seq)
        del m.inbox[:]

    def send(self, items, epoch_ms_now, budget_ms=12000):
        """Publish ``items`` = [(seq, code, data, occurred_epoch_ms)] in the given order.

        Returns (delivered seqs, reason): telemetry once the broker PUBACKed it, alarms
        once the platform acknowledged them (wt.ack/1), unknown codes at once (they can
        never be sent; the caller drops them; counted). A session publishes for at most
        ``budget_ms`` (after at least one item) and then waits up to ``ack_wait_ms`` for
        the acks, so the caller's loop and watchdog are never held much longer.
        """
        now = self._ticks()
        self.sessions += 1
        done = []
        reason = self.connect()
        if reason:
            return done, self._fail(reason, now)
        m = self.modem
        wait = {}   # event_id -> seq of every alarm here: an ack may come for any of them
        for it in items:
            e = EVENTS.get(it[1])
            if e is not None and e[1]:
                wait["%s-%08x" % (self.dev, it[0])] = it[0]
        self._acks(wait, done)   # acks that waited in the session for earlier publications
        sent = []                # alarms published in this session
        pub = 0
        for seq, code, data, occ in items:
            if seq in done:
                continue
            if pub and ticks_diff(self._ticks(), now) >= budget_ms:
                break  # out of time for this session (after at least one); nothing failed
            attempt = self.attempts.get(seq, 0) + 1
            payload = event_json(self.dev, self.role, seq, code, data, occ, epoch_ms_now, attempt)
            if payload is None:
                done.append(seq)
                self.last_reason = R_UNKNOWN_CODE
                continue
            self.attempts[seq] = attempt
            try:
                m.mqtt_publish(topic(self.dev, code), payload, 1)
            except ModemError:
                self._close()
                return done, self._fail(R_PUBLISH, now)
            self.published += 1
            pub += 1
            eid = "%s-%08x" % (self.dev, seq)
            if eid in wait:
                sent.append(eid)
            else:
                self.attempts.pop(seq, None)
                done.append(seq)   # telemetry: the broker's PUBACK is all there is
            self._acks(wait, done)
        deadline = ticks_add(self._ticks(), self.ack_wait_ms)
        left = self.ack_wait_ms
        while _unacked(sent, wait) and left > 0:
            m.listen(left)
            self._acks(wait, done)
            left = ticks_diff(deadline, self._ticks())
        self._close()
        if _unacked(sent, wait):
            # published but not acknowledged (refused by the broker's ACL, or the platform
            # is slow): kept, and published again next session with the same event_id
            return done, self._fail(R_NO_ACK, now)
        self.fails = 0
        self._due = None
        self.last_reason = R_OK
        return done, R_OK

    def _close(self):
        try:
            self.modem.mqtt_disconnect()
        except ModemError:
            pass  # the session is over either way; counted in modem.errors/timeouts

    def power_off(self):
        try:
            self.modem.power_off()
            return True
        except ModemError:
            return False
