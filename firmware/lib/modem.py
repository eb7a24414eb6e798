# AT-command driver for an LTE-M/NB-IoT modem on a UART: SIMCom SIM7080G dialect here,
# Quectel BG95 in modem_bg95.py (same flow, other PDP/MQTT/power-down commands).
#
# Every command has a timeout_ms; a missing answer raises ModemTimeout, an ERROR /
# +CME ERROR answer raises ModemError (both carry the command). Unsolicited result
# codes (URCs) that arrive between answers update the state flags (PDP lost, MQTT
# dropped, registration changed) and are counted, never treated as answers.
#
#   m = Modem(uart, ticks_ms, wait_ms)
#   m.start(timeout_ms=2000); m.registration(); m.attach(); m.mqtt_connect(...)
#   m.mqtt_subscribe(topic); m.mqtt_publish(topic, payload, qos=1); m.listen(timeout_ms)
#   m.inbox -> [(topic, payload text)] received; m.power_off()
# TLS (certificate upload into the modem, SSL context) is in modem_tls.py, loaded for
# the session set-up only (RAM).
from micropython import const
from time import ticks_diff, ticks_add

# registration status (3GPP 27.007 +CREG/+CGREG/+CEREG <stat>)
REG_NONE = const(0)
REG_HOME = const(1)
REG_SEARCHING = const(2)
REG_DENIED = const(3)
REG_UNKNOWN = const(4)
REG_ROAMING = const(5)

_MAX_LINE = const(256)
_SLICE_MS = const(20)
_INBOX = const(8)
# unsolicited lines that carry a received MQTT message (SIM7080, BG95)
_RX = ("+SMSUB:", "+QMTRECV:")


class ModemError(Exception):
    """The modem answered ERROR (or +CME ERROR: n) to ``cmd``."""

    def __init__(self, cmd, reason):
        super().__init__("%s: %s" % (cmd, reason))
        self.cmd = cmd
        self.reason = reason


class ModemTimeout(ModemError):
    """No final answer to ``cmd`` within its timeout."""


def make(uart, ticks_ms, wait_ms=None, dialect="sim7080"):
    """A driver for ``dialect`` ("sim7080" or "bg95"); ValueError names a bad one."""
    if dialect == "sim7080":
        return Modem(uart, ticks_ms, wait_ms)
    if dialect == "bg95":
        from modem_bg95 import Bg95
        return Bg95(uart, ticks_ms, wait_ms)
    raise ValueError("modem dialect %r unknown; use sim7080 or bg95" % (dialect,))


def _default_wait(ms):
    import time
    time.sleep_ms(ms)


class Modem:
    DIALECT = "sim7080"

    def __init__(self, uart, ticks_ms, wait_ms=None):
        self.uart = uart
        self._ticks = ticks_ms
        self._wait = wait_ms if wait_ms is not None else _default_wait
        self._rx = b""
        self.urcs = 0
        self.timeouts = 0
        self.errors = 0
        self.pdp_active = False
        self.mqtt_up = False
        self.reg = REG_UNKNOWN
        self.powered_down = False
        self.inbox = []        # received MQTT messages: (topic, payload text), at most _INBOX
        self.inbox_dropped = 0

    # -- transport ------------------------------------------------------------------
    def _pull(self):
        b = self.uart.read(256)
        if b:
            self._rx += b
            if len(self._rx) > 4 * _MAX_LINE:  # runaway garbage: keep the tail
                self._rx = self._rx[-_MAX_LINE:]
            return True
        return False

    def _line(self, deadline):
        """Next non-empty line (str) before deadline, else None."""
        while True:
            i = self._rx.find(b"\n")
            while i >= 0:
                raw = self._rx[:i]
                self._rx = self._rx[i + 1:]
                s = raw.strip()
                if s:
                    try:
                        return s.decode()
                    except UnicodeError:
                        self.errors += 1
                i = self._rx.find(b"\n")
            if not self._pull():
                left = ticks_diff(deadline, self._ticks())
                if left <= 0:
                    return None
                self._wait(left if left < _SLICE_MS else _SLICE_MS)

    def _urc(self, line):
        # unsolicited codes we act on; others are just counted
        if line.startswith("+APP PDP:"):
            self.pdp_active = "DEACTIVE" not in line
        elif line.startswith("+SMSTATE:"):
            self.mqtt_up = line.rstrip().endswith("1")
        elif line.startswith("+CEREG:") or line.startswith("+CGREG:") or line.startswith("+CREG:"):
            parts = line.split(":", 1)[1].split(",")
            # URC form "+CEREG: <stat>[,...]" (1 field) vs answer form "<n>,<stat>"
            try:
                self.reg = int(parts[0])
            except ValueError:
                pass
        elif line in ("NORMAL POWER DOWN", "POWER DOWN", "POWERED DOWN"):
            self.powered_down = True
            self.pdp_active = self.mqtt_up = False
        elif line.startswith(_RX):
            self._message(line)
        self.urcs += 1

    def _message(self, line):
        # +SMSUB: "<topic>","<payload>" | +QMTRECV: <cli>,<msgid>,"<topic>","<payload>";
        # the payload (JSON) holds quotes itself: the topic ends at the first '","'
        i = line.find('"')
        j = line.find('","', i + 1)
        if i < 0 or j < 0 or not line.endswith('"') or len(line) < j + 4:
            self.errors += 1
            return
        if len(self.inbox) >= _INBOX:
            self.inbox_dropped += 1
            return
        self.inbox.append((line[i + 1:j], line[j + 3:-1]))

    def drain(self):
        """Handle URCs that arrived while idle (non-blocking)."""
        self._pull()
        deadline = self._ticks()
        while True:
            line = self._line(deadline)
            if line is None:
                return
            self._urc(line)

    def command(self, cmd, timeout_ms=1000, prefix=None):
        """Send ``cmd``; return the info lines starting with ``prefix`` (or all info lines).

        Raises ModemTimeout / ModemError. Lines not answering this command are URCs.
        """
        self.drain()
        self.uart.write(cmd.encode() + b"\r")
        deadline = ticks_add(self._ticks(), timeout_ms)
        info = []
        while True:
            line = self._line(deadline)
            if line is None:
                self.timeouts += 1
                raise ModemTimeout(cmd, "no answer in %d ms" % timeout_ms)
            if line == "OK":
                return info
            if line == "ERROR" or line.startswith("+CME ERROR") or line.startswith("+CMS ERROR"):
                self.errors += 1
                raise ModemError(cmd, line)
            if line == cmd:  # echo (ATE1)
                continue
            if line.startswith(_RX):  # a message, even while its own SUB command runs
                self._urc(line)
                continue
            if line in ("NORMAL POWER DOWN", "POWER DOWN", "POWERED DOWN"):
                self._urc(line)
                if cmd.startswith("AT+CPOWD"):
                    return info
                continue
            if prefix is not None:
                if line.startswith(prefix):
                    info.append(line[len(prefix):].strip())
                else:
                    self._urc(line)
            elif line.startswith("+") and ":" in line and not cmd.startswith("AT" + line.split(":")[0]):
                self._urc(line)
            else:
                info.append(line)

    # -- modem functions ---------------------------------------------------------------
    def start(self, timeout_ms=2000):
        """Probe (AT), echo off, numeric errors. Raises ModemTimeout if it is dead."""
        self.powered_down = False
        self.command("AT", timeout_ms)
        self.command("ATE0", 1000)
        self.command("AT+CMEE=1", 1000)

    def sim_ready(self, timeout_ms=5000):
        r = self.command("AT+CPIN?", timeout_ms, "+CPIN:")
        return bool(r) and r[0] == "READY"

    def signal(self, timeout_ms=1000):
        """RSSI in dBm, or None when unknown (CSQ 99)."""
        r = self.command("AT+CSQ", timeout_ms, "+CSQ:")
        if not r:
            return None
        try:
            v = int(r[0].split(",")[0])
        except ValueError:
            return None
        if v == 99:
            return None
        return -113 + 2 * v

    def registration(self, timeout_ms=1000):
        """Best registration status over LTE (CEREG) and GPRS/2G (CGREG)."""
        best = REG_UNKNOWN
        for cmd, pfx in (("AT+CEREG?", "+CEREG:"), ("AT+CGREG?", "+CGREG:")):
            try:
                r = self.command(cmd, timeout_ms, pfx)
            except ModemError as e:
                if isinstance(e, ModemTimeout):
                    raise
                continue  # command not supported by this modem
            if r:
                parts = r[0].split(",")
                try:
                    st = int(parts[1] if len(parts) > 1 else parts[0])
                except ValueError:
                    continue
                if st in (REG_HOME, REG_ROAMING):
                    self.reg = st
                    return st
                if best == REG_UNKNOWN or st == REG_DENIED:
                    best = st
        self.reg = best
        return best

    def registered(self, timeout_ms=1000):
        return self.registration(timeout_ms) in (REG_HOME, REG_ROAMING)

    def attach(self, apn="", timeout_ms=10000):
        """Activate the PDP context (data bearer)."""
        if apn:
            self.command('AT+CNCFG=0,1,"%s"' % apn, 1000)
        r = self.command("AT+CNACT?", 1000, "+CNACT:")
        for line in r:
            p = line.split(",")
            if p[0] == "0" and len(p) > 1 and p[1] == "1":
                self.pdp_active = True
                return
        self.command("AT+CNACT=0,1", timeout_ms)
        deadline = ticks_add(self._ticks(), timeout_ms)
        while not self.pdp_active:
            line = self._line(deadline)
            if line is None:
                self.timeouts += 1
                raise ModemTimeout("AT+CNACT=0,1", "PDP not active in %d ms" % timeout_ms)
            self._urc(line)

    def mqtt_connect(self, host, port, client_id, keepalive_s=60, username="", password="",
                     timeout_ms=15000):
        conf = (("URL", '"%s",%d' % (host, port)), ("CLIENTID", '"%s"' % client_id),
                ("KEEPTIME", str(keepalive_s)), ("CLEANSS", "0"), ("QOS", "1"))
        for k, v in conf:
            self.command('AT+SMCONF="%s",%s' % (k, v), 1000)
        if username:
            self.command('AT+SMCONF="USERNAME","%s"' % username, 1000)
            self.command('AT+SMCONF="PASSWORD","%s"' % password, 1000)
        self.command("AT+SMCONN", timeout_ms)
        self.mqtt_up = True

    def send_data(self, cmd, payload, timeout_ms, prompt=b">"):
        """``cmd`` that answers with ``prompt`` (``>`` of a publish; DOWNLOAD / CONNECT of a
        file upload), then ``payload`` (bytes, or an open file: streamed); returns (the
        deadline) at OK."""
        self.drain()
        self.uart.write(cmd.encode() + b"\r")
        deadline = ticks_add(self._ticks(), timeout_ms)
        while True:
            # whole lines first (echo, URCs, an ERROR instead of the prompt), then a prompt
            # that is a line of its own or the start of what is left ("> " has no line end)
            i = self._rx.find(b"\n")
            while i >= 0:
                ln = self._rx[:i].strip()
                self._rx = self._rx[i + 1:]
                if ln == prompt:
                    break
                if ln.startswith(b"ERROR") or ln.startswith(b"+CME ERROR"):
                    self.errors += 1
                    self.mqtt_up = self.mqtt_up and prompt != b">"
                    raise ModemError(cmd, ln.decode())
                if ln and ln != cmd.encode():
                    try:
                        self._urc(ln.decode())
                    except UnicodeError:
                        self.errors += 1
                i = self._rx.find(b"\n")
            if i >= 0:
                break
            rest = self._rx.lstrip()
            if rest.startswith(prompt):
                self._rx = rest[len(prompt):]
                break
            if not self._pull():
                left = ticks_diff(deadline, self._ticks())
                if left <= 0:
                    self.timeouts += 1
                    raise ModemTimeout(cmd, "no prompt in %d ms" % timeout_ms)
                self._wait(left if left < _SLICE_MS else _SLICE_MS)
        if isinstance(payload, (bytes, bytearray)):
            self.uart.write(payload)
        else:   # a file (a certificate): never whole in RAM
            buf = bytearray(128)
            mv = memoryview(buf)
            n = payload.readinto(buf)
            while n:
                self.uart.write(mv[:n])
                n = payload.readinto(buf)
        while True:
            line = self._line(deadline)
            if line is None:
                self.timeouts += 1
                raise ModemTimeout(cmd, "no answer after the data in %d ms" % timeout_ms)
            if line == "OK":
                return deadline
            if line == "ERROR" or line.startswith("+CME ERROR"):
                self.errors += 1
                self.mqtt_up = False
                raise ModemError(cmd, line)
            self._urc(line)

    def await_urc(self, cmd, prefix, deadline):
        """The text after ``prefix`` of the next such unsolicited line before deadline."""
        while True:
            line = self._line(deadline)
            if line is None:
                self.timeouts += 1
                raise ModemTimeout(cmd, "no %s" % prefix)
            if line.startswith(prefix):
                return line[len(prefix):].strip()
            self._urc(line)

    def mqtt_publish(self, topic, payload, qos=1, retain=False, timeout_ms=10000):
        """Publish; returns when the modem reports the broker's PUBACK (QoS 1) as OK."""
        if isinstance(payload, str):
            payload = payload.encode()
        cmd = 'AT+SMPUB="%s",%d,%d,%d' % (topic, len(payload), qos, 1 if retain else 0)
        self.send_data(cmd, payload, timeout_ms)

    def mqtt_subscribe(self, topic, qos=1, timeout_ms=5000):
        """Subscribe; received messages land in ``inbox`` (ModemError if refused)."""
        self.command('AT+SMSUB="%s",%d' % (topic, qos), timeout_ms)

    def listen(self, timeout_ms):
        """Handle what the modem says for ``timeout_ms`` or until a message is in ``inbox``."""
        deadline = ticks_add(self._ticks(), timeout_ms)
        while not self.inbox:
            line = self._line(deadline)
            if line is None:
                return
            self._urc(line)

    def mqtt_disconnect(self, timeout_ms=3000):
        try:
            self.command("AT+SMDISC", timeout_ms)
        finally:
            self.mqtt_up = False

    def power_off(self, timeout_ms=5000):
        """Normal power down (the modem deregisters from the network)."""
        try:
            self.command("AT+CPOWD=1", timeout_ms)
        except ModemTimeout:
            if not self.powered_down:
                raise
        self.powered_down = True
        self.pdp_active = self.mqtt_up = False
