"""An emulated LTE-M modem on a pseudo-terminal (CPython, tests/benches): SIMCom SIM7080G
or Quectel BG95 command set (``dialect``).

    emu = ModemEmulator(dialect="bg95").start()   # emu.path = "/dev/pts/N" for the device side
    emu.coverage = False                   # registration drops to "searching"
    emu.publishes                          # [(topic, payload bytes, qos, retain)]
    emu.forward_to = ("127.0.0.1", 8883)   # connect/subscribe/publish go to a real MQTT broker
    emu.files                              # the modem's file system (uploaded certificates)
    emu.stop()

It answers the AT commands of firmware/lib/modem.py, modem_bg95.py and modem_tls.py the
way the SIM7080G (or BG95) does: echo until ATE0, ``+CME ERROR: n`` after AT+CMEE=1, the
``> `` prompt of AT+SMPUB, ``DOWNLOAD`` / ``CONNECT`` of a file upload, ``+APP PDP`` /
``+SMSTATE`` unsolicited codes, ``NORMAL POWER DOWN``, received messages as ``+SMSUB:`` /
``+QMTRECV:``. Like the modems it speaks MQTT 3.1.1 to the broker (so a broker PUBACKs a
publish its ACL refuses), with the client id, user name and password, clean-session
flag and TLS context (CA, client certificate and key from its file system, SNI) the
device configured. Without a broker (``forward_to`` None) ``platform_ack`` answers each
alarm with a ``wt.ack/1`` on the device's ack topic, as a platform would. Faults:
``coverage`` (registration and data), ``lose_registration()`` (drops a live session
with URCs), ``silent`` (a hung modem: no answers), ``fail_connect`` and
``fail_publish`` counters, ``sim_ready``. Everything received is in ``log``.
"""
from __future__ import annotations

import collections
import json
import os
import re
import select
import ssl
import tempfile
import threading
import time
import tty

_SMPUB = re.compile(r'^AT\+SMPUB="([^"]*)",(\d+),([012]),([01])$')
_SMCONF = re.compile(r'^AT\+SMCONF="([A-Z]+)",(.*)$')
_QUOTED = re.compile(r'"([^"]*)"')


class ModemEmulator:
    def __init__(self, *, coverage: bool = True, sim_ready: bool = True, imei: str = "869951030000001",
                 dialect: str = "sim7080"):
        if dialect not in ("sim7080", "bg95"):
            raise ValueError(f"dialect {dialect!r}: use sim7080 or bg95")
        self.dialect = dialect
        self.coverage = coverage
        self.sim_ready = sim_ready
        self.silent = False
        self.imei = imei
        self.fail_connect = 0      # next N AT+SMCONN answer ERROR
        self.fail_publish = 0      # next N AT+SMPUB answer ERROR after the payload
        self.publish_delay_s = 0.0
        self.forward_to: tuple[str, int] | None = None
        self.platform_ack = True   # no broker: ack alarms on the device's ack topic
        self.files: dict[str, bytes] = {}
        self.ssl: dict[str, str] = {}        # the TLS settings the device made
        self.subscriptions: list[str] = []
        self.connect_refused: int | None = None   # CONNACK code of the last refused connect
        self.publishes: list[tuple[str, bytes, int, bool]] = []
        self.log: list[str] = []
        self.powered = True
        self.echo = True
        self.cmee = 0
        self.pdp = False
        self.mqtt = False
        self.conf: dict[str, str] = {}
        self._opened = False
        self._fs = False
        self._bg_user: tuple[str, str] = ("", "")
        self._bg_clean = True
        self._mqtt_client = None
        self._urcs: collections.deque[str] = collections.deque()   # from the broker's thread
        self._tmp = tempfile.mkdtemp(prefix="wt-modem-")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "ModemEmulator":
        self._thread = threading.Thread(target=self._run, name="modem-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._mqtt_close()
        import shutil
        shutil.rmtree(self._tmp, ignore_errors=True)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "ModemEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- fault injection ---------------------------------------------------------------
    def lose_registration(self) -> None:
        """Coverage lost now: URCs tell the device that data and MQTT are gone."""
        with self._lock:
            self.coverage = False
            if self.pdp:
                self.pdp = False
                self._send("\r\n+APP PDP: 0,DEACTIVE\r\n" if self.dialect == "sim7080"
                           else '\r\n+QIURC: "pdpdeact",1\r\n')
            if self.mqtt:
                self.mqtt = False
                self._mqtt_close()
                self._send("\r\n+SMSTATE: 0\r\n" if self.dialect == "sim7080" else "\r\n+QMTSTAT: 0,1\r\n")

    # -- io ------------------------------------------------------------------------------
    def _send(self, s: str | bytes) -> None:
        data = s.encode() if isinstance(s, str) else s
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def _ok(self, *info: str) -> None:
        for line in info:
            self._send(f"\r\n{line}\r\n")
        self._send("\r\nOK\r\n")

    def _err(self, code: int = 100) -> None:
        self._send(f"\r\n+CME ERROR: {code}\r\n" if self.cmee else "\r\nERROR\r\n")

    def _flush_urcs(self) -> None:
        while self._urcs:
            self._send(self._urcs.popleft())

    def _run(self) -> None:
        buf = b""
        pending: tuple | None = None     # a data phase: ("pub", topic, n, qos, retain, msgid) | ("file", name, n)
        while not self._stop.is_set():
            if self._urcs and not self.silent and self.powered:
                with self._lock:
                    self._flush_urcs()
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            buf += chunk
            while True:
                if pending is not None:
                    n = pending[2]
                    if len(buf) < n:
                        break
                    data, buf = buf[:n], buf[n:]
                    kind, pending = pending, None
                    if kind[0] == "file":
                        with self._lock:
                            self._file_done(kind[1], data)
                        continue
                    _, t, n, qos, retain, msgid = kind
                    if self.dialect == "bg95":
                        self._send("\r\nOK\r\n")  # data accepted; the result follows as a URC
                    if self.publish_delay_s:  # the network round trip (coverage may go meanwhile)
                        time.sleep(self.publish_delay_s)
                    with self._lock:
                        self._publish(t, data, qos, retain, msgid)
                    continue
                i = buf.find(b"\r")
                if i < 0:
                    break
                line, buf = buf[:i].decode(errors="replace").strip(), buf[i + 1:]
                if buf[:1] == b"\n":
                    buf = buf[1:]
                if not line:
                    continue
                self.log.append(line)
                if not self.powered or self.silent:
                    continue
                with self._lock:
                    if self.echo:
                        self._send(line + "\r\n")
                    pending = self._command(line) if self.dialect == "sim7080" or not line.upper().startswith(
                        ("AT+QI", "AT+QMT", "AT+QPOWD", "AT+QF", "AT+QSSL")) else self._quectel(line)

    def _file_done(self, name: str, data: bytes) -> None:
        self.files[name] = data
        if self.dialect == "bg95":
            self._send(f"\r\n+QFUPL: {len(data)},{sum(data) & 0xFFFF:x}\r\n\r\nOK\r\n")
        else:
            self._ok()

    # -- the AT command set ------------------------------------------------------------------
    def _command(self, cmd: str):
        u = cmd.upper()
        if u == "AT":
            self._ok()
        elif u in ("ATE0", "ATE1"):
            self.echo = u == "ATE1"
            self._ok()
        elif u.startswith("AT+CMEE="):
            self.cmee = int(u.split("=")[1] or 0)
            self._ok()
        elif u in ("ATI", "AT+GMR"):
            self._ok("SIM7080 R1951.03 (emulated)")
        elif u in ("AT+CGSN", "AT+GSN"):
            self._ok(self.imei)
        elif u == "AT+CPIN?":
            if self.sim_ready:
                self._ok("+CPIN: READY")
            else:
                self._err(10)  # SIM not inserted
        elif u == "AT+CSQ":
            self._ok("+CSQ: 18,99" if self.coverage else "+CSQ: 99,99")
        elif u in ("AT+CEREG?", "AT+CGREG?"):
            name = u[3:8]
            self._ok(f"+{name}: 0,{1 if self.coverage else 2}")
        elif u == "AT+CREG?":
            self._ok(f"+CREG: 0,{1 if self.coverage else 2}")
        elif u.startswith("AT+CNCFG="):
            self._ok()
        elif u == "AT+CNACT?":
            ip = '"10.64.0.7"' if self.pdp else '"0.0.0.0"'
            self._ok(f"+CNACT: 0,{1 if self.pdp else 0},{ip}", '+CNACT: 1,0,"0.0.0.0"')
        elif u == "AT+CNACT=0,1":
            if not self.coverage:
                self._err(30)  # no network service
            else:
                self._ok()
                self.pdp = True
                self._send("\r\n+APP PDP: 0,ACTIVE\r\n")
        elif u == "AT+CNACT=0,0":
            self.pdp = False
            self._ok()
            self._send("\r\n+APP PDP: 0,DEACTIVE\r\n")
        elif _SMCONF.match(cmd):
            m = _SMCONF.match(cmd)
            self.conf[m.group(1)] = m.group(2)
            self._ok()
        elif u == "AT+CFSINIT":
            self._fs = True
            self._ok()
        elif u == "AT+CFSTERM":
            self._fs = False
            self._ok()
        elif u.startswith("AT+CFSWFILE="):
            m = re.match(r'^AT\+CFSWFILE=3,"([^"]+)",0,(\d+),(\d+)$', cmd)
            if not m or not self._fs or int(m.group(2)) > 10240:
                self._err(50)
                return None
            self._send("\r\nDOWNLOAD\r\n")
            return ("file", m.group(1), int(m.group(2)))
        elif u.startswith("AT+CSSLCFG="):
            args = _QUOTED.findall(cmd)
            what = args[0].lower() if args else ""
            if what == "convert" and not all(n in self.files for n in args[1:]):
                self._err(50)           # converting a file the modem does not have
                return None
            if what == "convert":
                self.ssl["ca" if cmd.split(",")[1] == "2" else "cert"] = args[1]
                if len(args) > 2:
                    self.ssl["key"] = args[2]
            elif what in ("sni", "sslversion"):
                self.ssl[what] = args[1] if len(args) > 1 else cmd.rsplit(",", 1)[1]
            self._ok()
        elif u.startswith("AT+SMSSL="):
            args = _QUOTED.findall(cmd)
            self.ssl["enabled"] = cmd.split("=")[1].split(",")[0]
            self.ssl["smssl_ca"] = args[0] if args else ""
            self.ssl["smssl_cert"] = args[1] if len(args) > 1 else ""
            self._ok()
        elif u.startswith("AT+SMSUB="):
            m = re.match(r'^AT\+SMSUB="([^"]+)",([012])$', cmd)
            if not m or not self.mqtt or not self._subscribe(m.group(1), int(m.group(2))):
                self._err(3)
            else:
                self._ok()
        elif u == "AT+SMCONN":
            if self.fail_connect > 0:
                self.fail_connect -= 1
                self._err(3)
            elif not (self.pdp and self.coverage):
                self._err(3)
            elif not self._mqtt_open():
                self._err(3)
            else:
                self.mqtt = True
                self._ok()
        elif u == "AT+SMSTATE?":
            self._ok(f"+SMSTATE: {1 if self.mqtt else 0}")
        elif u == "AT+SMDISC":
            if self.mqtt:
                self.mqtt = False
                self._mqtt_close()
                self._ok()
            else:
                self._err(3)
        elif _SMPUB.match(cmd):
            m = _SMPUB.match(cmd)
            if not self.mqtt:
                self._err(3)
                return None
            self._send("> ")
            return ("pub", m.group(1), int(m.group(2)), int(m.group(3)), m.group(4) == "1", None)
        elif u.startswith("AT+CPOWD="):
            self._send("\r\nNORMAL POWER DOWN\r\n")
            self.powered = False
            self.pdp = self.mqtt = False
            self._mqtt_close()
        elif u == "AT+CCLK?":
            self._ok(time.strftime('+CCLK: "%y/%m/%d,%H:%M:%S+00"', time.gmtime()))
        else:
            self._send("\r\nERROR\r\n")
        return None

    def _quectel(self, cmd: str):
        """The Quectel BG95 commands (3GPP ones are shared with the SIM7080 set)."""
        u = cmd.upper()
        if u.startswith("AT+QICSGP="):
            self._ok()
        elif u == "AT+QIACT?":
            self._ok(*(['+QIACT: 1,1,1,"10.64.0.7"'] if self.pdp else []))
        elif u == "AT+QIACT=1":
            if not self.coverage:
                self._err(30)
            else:
                self.pdp = True
                self._ok()
        elif u.startswith("AT+QMTCFG="):
            args = cmd.split("=", 1)[1].split(",")
            what = args[0].strip('"').lower()
            if what == "ssl":
                self.ssl["enabled"] = args[2] if len(args) > 2 else "0"
                self.ssl["ctx"] = args[3] if len(args) > 3 else "0"
            elif what == "session" and len(args) > 2:
                self._bg_clean = args[2] == "1"
            self._ok()
        elif u.startswith("AT+QSSLCFG="):
            args = cmd.split("=", 1)[1].split(",", 2)
            if len(args) == 3:
                self.ssl[args[0].strip('"').lower()] = args[2].strip('"')
            self._ok()
        elif u.startswith("AT+QFDEL="):
            name = (_QUOTED.findall(cmd) or [""])[0]
            if self.files.pop(name, None) is None:
                self._err(405)          # file not found
            else:
                self._ok()
        elif u.startswith("AT+QFUPL="):
            m = re.match(r'^AT\+QFUPL="([^"]+)",(\d+),(\d+)$', cmd)
            if not m:
                self._err(50)
                return None
            self._send("\r\nCONNECT\r\n")
            return ("file", m.group(1), int(m.group(2)))
        elif u.startswith("AT+QMTOPEN="):
            m = re.match(r'^AT\+QMTOPEN=0,"([^"]*)",(\d+)$', cmd)
            if not m:
                self._err(50)
                return None
            self.conf["URL"] = f'"{m.group(1)}",{m.group(2)}'
            self._ok()
            ok = self.pdp and self.coverage and self.fail_connect <= 0
            self._send(f"\r\n+QMTOPEN: 0,{0 if ok else 3}\r\n")
            self._opened = ok
        elif u.startswith("AT+QMTCONN="):
            args = _QUOTED.findall(cmd)
            self.conf["CLIENTID"] = f'"{args[0]}"' if args else '""'
            self._bg_user = (args[1], args[2]) if len(args) > 2 else ("", "")
            self._ok()
            if self._opened and self.fail_connect <= 0 and self._mqtt_open():
                self.mqtt = True
                self._send("\r\n+QMTCONN: 0,0,0\r\n")
            elif self._opened and self.connect_refused is not None:
                self._send(f"\r\n+QMTCONN: 0,0,{self.connect_refused}\r\n")   # CONNACK refused
            else:
                self.fail_connect = max(0, self.fail_connect - 1)
                self._send("\r\n+QMTCONN: 0,2\r\n")
        elif u.startswith("AT+QMTSUB="):
            m = re.match(r'^AT\+QMTSUB=0,(\d+),"([^"]+)",([012])$', cmd)
            if not m or not self.mqtt:
                self._err(3)
                return None
            self._ok()
            ok = self._subscribe(m.group(2), int(m.group(3)))
            self._send(f"\r\n+QMTSUB: 0,{m.group(1)},0,{m.group(3) if ok else 128}\r\n")
        elif u.startswith("AT+QMTPUBEX="):
            m = re.match(r'^AT\+QMTPUBEX=0,(\d+),([012]),([01]),"([^"]*)",(\d+)$', cmd)
            if not m or not self.mqtt:
                self._err(3)
                return None
            self._send("> ")
            return ("pub", m.group(4), int(m.group(5)), int(m.group(2)), m.group(3) == "1", int(m.group(1)))
        elif u == "AT+QMTDISC=0":
            self._ok()
            self.mqtt = self._opened = False
            self._mqtt_close()
            self._send("\r\n+QMTDISC: 0,0\r\n")
        elif u == "AT+QPOWD=1":
            self._ok()
            self._send("\r\nPOWERED DOWN\r\n")
            self.powered = False
            self.pdp = self.mqtt = False
            self._mqtt_close()
        else:
            self._send("\r\nERROR\r\n")
        return None

    def _publish(self, t: str, payload: bytes, qos: int, retain: bool, msgid: int | None = None) -> None:
        bg95 = self.dialect == "bg95"
        if self.fail_publish > 0 or not self.coverage or not self.mqtt:
            self.fail_publish = max(0, self.fail_publish - 1)
            if bg95:
                self._send(f"\r\n+QMTPUBEX: 0,{msgid},2\r\n")
            else:
                self._err(3)
            return
        if self._mqtt_client is not None:
            info = self._mqtt_client.publish(t, payload, qos=qos, retain=retain)
            try:
                info.wait_for_publish(timeout=5)
            except RuntimeError:
                self._send(f"\r\n+QMTPUBEX: 0,{msgid},2\r\n" if bg95 else "\r\nERROR\r\n")
                return
            if not info.is_published():
                self._send(f"\r\n+QMTPUBEX: 0,{msgid},2\r\n" if bg95 else "\r\nERROR\r\n")
                return
        self.publishes.append((t, payload, qos, retain))
        if self._mqtt_client is None and self.platform_ack and t.endswith("/alarm"):
            ack_topic = t[:-len("alarm")] + "ack"
            if ack_topic in self.subscriptions:
                body = json.dumps({"schema": "wt.ack/1", "event_id": json.loads(payload)["event_id"],
                                   "status": "received", "by": "emulated-platform"}, separators=(",", ":"))
                self._deliver(ack_topic, body.encode())
        if bg95:
            self._send(f"\r\n+QMTPUBEX: 0,{msgid},0\r\n")
        else:
            self._ok()

    # -- received messages -------------------------------------------------------------------
    def _deliver(self, topic: str, payload: bytes) -> None:
        """A message from the broker, as the modem reports it (queued: any thread)."""
        text = payload.decode(errors="replace")
        self._urcs.append(f'\r\n+SMSUB: "{topic}","{text}"\r\n' if self.dialect == "sim7080"
                          else f'\r\n+QMTRECV: 0,1,"{topic}","{text}"\r\n')

    def _subscribe(self, topic: str, qos: int) -> bool:
        c = self._mqtt_client
        if c is not None:
            done = threading.Event()
            granted: list = []

            def on_subscribe(client, userdata, mid, reason_codes, properties=None):
                granted.extend(reason_codes)
                done.set()

            c.on_subscribe = on_subscribe
            c.subscribe(topic, qos)
            if not done.wait(5) or not granted or any(getattr(r, "is_failure", False) or r == 128 for r in granted):
                return False
            # messages that waited in a persistent session came right after CONNACK, before
            # this SUBACK: the modem reports them before it answers the subscribe
            self._flush_urcs()
        if topic not in self.subscriptions:
            self.subscriptions.append(topic)
        return True

    # -- optional forwarding to a real broker ----------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS context the device configured, or None for plain MQTT."""
        st = self.ssl
        if st.get("enabled", "0") != "1":
            return None
        bg95 = self.dialect == "bg95"
        ca = st.get("cacert") if bg95 else st.get("smssl_ca")
        cert = st.get("clientcert") if bg95 else (st.get("smssl_cert") or None)
        key = st.get("clientkey") if bg95 else st.get("key")
        if not ca or ca not in self.files:
            raise ssl.SSLError(f"CA file {ca!r} not in the modem")
        ctx = ssl.create_default_context(cadata=self.files[ca].decode())
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if bg95 and st.get("seclevel") == "0":
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert:
            paths = []
            for n in (cert, key):
                if not n or n not in self.files:
                    raise ssl.SSLError(f"client file {n!r} not in the modem")
                p = os.path.join(self._tmp, n)
                with open(p, "wb") as f:
                    f.write(self.files[n])
                paths.append(p)
            ctx.load_cert_chain(paths[0], paths[1])
        return ctx

    def _mqtt_open(self) -> bool:
        self.connect_refused = None
        if self.forward_to is None:
            return True
        import paho.mqtt.client as mqtt  # test tool: the only paho use in firmware/tests

        host, port = self.forward_to
        cid = self.conf.get("CLIENTID", '"emu"').strip('"')
        if self.dialect == "sim7080":
            user = self.conf.get("USERNAME", '""').strip('"')
            pw = self.conf.get("PASSWORD", '""').strip('"')
            clean = self.conf.get("CLEANSS", "1") != "0"
        else:
            user, pw = self._bg_user
            clean = self._bg_clean
        # MQTT 3.1.1, as the modems speak it
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                        clean_session=clean)
        if user:
            c.username_pw_set(user, pw or None)
        try:
            ctx = self._tls_context()
        except (ssl.SSLError, ValueError):
            return False
        if ctx is not None:
            c.tls_set_context(ctx)
        result: list[int] = []
        done = threading.Event()

        def on_connect(client, userdata, flags, rc, properties=None):
            result.append(int(getattr(rc, "value", rc)))
            done.set()

        c.on_connect = on_connect
        c.on_connect_fail = lambda client, userdata: done.set()
        c.on_message = lambda client, userdata, msg: self._deliver(msg.topic, msg.payload)
        try:
            c.connect(host, port, keepalive=30)   # (the certificate is checked for this name)
        except (OSError, ssl.SSLError):
            return False
        c.loop_start()
        done.wait(5)
        if not c.is_connected():
            self.connect_refused = 5 if result and result[0] else None   # 3.1.1: not authorised
            c.loop_stop()
            return False
        self._mqtt_client = c
        return True

    def _mqtt_close(self) -> None:
        c, self._mqtt_client = self._mqtt_client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()


# MicroPython-side UART over the emulator's pty for test scripts (prepend to a script):
# like hal.host.PtyUart (unbuffered writes, reads what poll() offers) plus wait(ms),
# which returns as soon as bytes arrive: the modem driver's wait function.
MPY_PTY_UART = '''
import select as _select
class PtyUart:
    def __init__(self, path):
        self.f = open(path, "r+b")
        self._p = _select.poll()
        self._p.register(self.f, _select.POLLIN)
    def any(self):
        return 1 if self._p.poll(0) else 0
    def read(self, n=-1):
        out = b""
        while (n < 0 or len(out) < n) and self._p.poll(0):
            b = self.f.read(1)
            if not b:
                break
            out += b
        return out or None
    def write(self, b):
        return self.f.write(b)
    def wait(self, ms):
        self._p.poll(ms)
'''
