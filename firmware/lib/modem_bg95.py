# Quectel BG95/BG96/BG77 dialect of the modem driver: PDP with AT+QIACT, MQTT with
# AT+QMTOPEN / AT+QMTCONN / AT+QMTSUB / AT+QMTPUBEX / AT+QMTDISC (results arrive as
# unsolicited +QMT... codes after the OK; received messages as +QMTRECV), power down
# with AT+QPOWD. Registration, SIM and signal are the 3GPP commands of the base class;
# TLS (AT+QFUPL, AT+QSSLCFG, AT+QMTCFG="ssl") is in modem_tls.py.
from time import ticks_add
from modem import Modem, ModemError

_CTX = 1   # PDP context id
_CLI = 0   # MQTT client index


class Bg95(Modem):
    DIALECT = "bg95"

    def __init__(self, uart, ticks_ms, wait_ms=None):
        Modem.__init__(self, uart, ticks_ms, wait_ms)
        self._msgid = 0

    def _urc(self, line):
        if line.startswith("+QMTSTAT:"):
            self.mqtt_up = False  # the broker link dropped
        elif line.startswith("+QIURC:") and "pdpdeact" in line:
            self.pdp_active = False
        Modem._urc(self, line)

    def attach(self, apn="", timeout_ms=10000):
        if apn:
            self.command('AT+QICSGP=%d,1,"%s"' % (_CTX, apn), 1000)
        for line in self.command("AT+QIACT?", 1000, "+QIACT:"):
            p = line.split(",")
            if p[0] == str(_CTX) and len(p) > 1 and p[1] == "1":
                self.pdp_active = True
                return
        self.command("AT+QIACT=%d" % _CTX, timeout_ms)  # answers OK once active
        self.pdp_active = True

    def mqtt_connect(self, host, port, client_id, keepalive_s=60, username="", password="",
                     timeout_ms=15000):
        self.command('AT+QMTCFG="version",%d,4' % _CLI, 1000)
        self.command('AT+QMTCFG="keepalive",%d,%d' % (_CLI, keepalive_s), 1000)
        self.command('AT+QMTCFG="session",%d,0' % _CLI, 1000)
        cmd = 'AT+QMTOPEN=%d,"%s",%d' % (_CLI, host, port)
        self.command(cmd, 1000)
        r = self.await_urc(cmd, "+QMTOPEN:", ticks_add(self._ticks(), timeout_ms)).split(",")
        if len(r) < 2 or r[1].strip() != "0":
            self.errors += 1
            raise ModemError(cmd, "open result %s" % ",".join(r[1:]))
        cmd = 'AT+QMTCONN=%d,"%s"' % (_CLI, client_id)
        if username:
            cmd += ',"%s","%s"' % (username, password)
        self.command(cmd, 1000)
        r = self.await_urc(cmd, "+QMTCONN:", ticks_add(self._ticks(), timeout_ms)).split(",")
        # +QMTCONN: <client>,<result>[,<ret_code>]: 0 = sent, ret_code 0 = accepted
        if len(r) < 2 or r[1].strip() != "0" or (len(r) > 2 and r[2].strip() != "0"):
            self.errors += 1
            raise ModemError(cmd, "connect result %s" % ",".join(r[1:]))
        self.mqtt_up = True

    def mqtt_subscribe(self, topic, qos=1, timeout_ms=5000):
        self._msgid = self._msgid % 65535 + 1
        cmd = 'AT+QMTSUB=%d,%d,"%s",%d' % (_CLI, self._msgid, topic, qos)
        self.command(cmd, 1000)
        r = self.await_urc(cmd, "+QMTSUB:", ticks_add(self._ticks(), timeout_ms)).split(",")
        # +QMTSUB: <client>,<msgid>,<result>[,<granted qos>]: result 0 = SUBACK; qos 128 = refused
        if len(r) < 3 or r[2].strip() != "0" or (len(r) > 3 and r[3].strip() == "128"):
            self.errors += 1
            raise ModemError(cmd, "subscribe result %s" % ",".join(r[1:]))

    def mqtt_publish(self, topic, payload, qos=1, retain=False, timeout_ms=10000):
        if isinstance(payload, str):
            payload = payload.encode()
        self._msgid = self._msgid % 65535 + 1
        cmd = 'AT+QMTPUBEX=%d,%d,%d,%d,"%s",%d' % (_CLI, self._msgid if qos else 0, qos,
                                                    1 if retain else 0, topic, len(payload))
        deadline = self.send_data(cmd, payload, timeout_ms)
        # +QMTPUBEX: <client>,<msgid>,<result>: 0 = PUBACK, 1 = retransmitting, 2 = failed
        while True:
            r = self.await_urc(cmd, "+QMTPUBEX:", deadline).split(",")
            if len(r) >= 3 and r[1].strip() == str(self._msgid if qos else 0):
                if r[2].strip() == "0":
                    return
                if r[2].strip() == "2":
                    self.errors += 1
                    self.mqtt_up = False
                    raise ModemError(cmd, "publish failed")

    def mqtt_disconnect(self, timeout_ms=3000):
        cmd = "AT+QMTDISC=%d" % _CLI
        try:
            self.command(cmd, timeout_ms)
            self.await_urc(cmd, "+QMTDISC:", ticks_add(self._ticks(), timeout_ms))
        finally:
            self.mqtt_up = False

    def power_off(self, timeout_ms=5000):
        try:
            self.command("AT+QPOWD=1", timeout_ms)
            if not self.powered_down:
                self.await_urc("AT+QPOWD=1", "POWERED DOWN", ticks_add(self._ticks(), timeout_ms))
        except ModemError:
            if not self.powered_down:
                raise
        self.powered_down = True
        self.pdp_active = self.mqtt_up = False
