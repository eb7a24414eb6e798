"""The fleet's only paho-mqtt module: a small blocking-friendly MQTT v5 client adapter.

* ``connect()`` waits for CONNACK; paho return codes become :class:`MqttError`.
* ``subscribe()`` waits for SUBACK and routes messages to handlers by filter; shared
  subscriptions (``$share/<group>/<filter>``) are matched on ``<filter>``.
* ``publish()`` waits for the broker's PUBACK (QoS 1); ``publish_nowait()`` does not.
* ``manual_ack=True`` lets a consumer PUBACK only after it has stored the message
  (at-least-once into the database): handlers get a :class:`Message`; call ``ack(msg)``.
* :class:`BrokerSettings` says where and as whom: ``mqtt://`` or ``mqtts://`` (TLS, the
  server certificate and host name always verified against ``ca_file`` or the system trust
  store), username/password, client certificate (mutual TLS). :func:`parse_url` builds it;
  a password is never taken from a URL (it would end up in shell history and ``ps``) and
  never appears in ``repr``, ``url`` or an error message.
* Refusals become :class:`MqttError` with the fix: a failed TLS handshake, a refused login
  (CONNACK), a subscription or a publication the broker's ACL denies (SUBACK / PUBACK
  reason code >= 0x80).

Handlers run on paho's network thread: they must be quick (queue the work).
"""
from __future__ import annotations

import queue
import ssl
import struct
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from contracts.topics import strip_share
from fleet.errors import FleetError

_PUBACK = struct.Struct("!BBH")


class MqttError(FleetError):
    code = "mqtt_error"
    exit_code = 69


DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and who the fleet is to it. ``password`` never shows in ``repr``."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: bool = False
    ca_file: Path | None = None          # TLS: CA of the broker's certificate (None: system trust store)
    cert_file: Path | None = None        # TLS: client certificate (mutual TLS)
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``mqtts://fleet@broker:8883`` — for messages and logs (never the password)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def check(self) -> "BrokerSettings":
        """Refuse combinations that cannot work, naming the option to fix."""
        if (self.cert_file or self.key_file or self.ca_file) and not self.tls:
            raise MqttError(f"a CA or client certificate was given but the broker URL {self.url} is not TLS; "
                            "write mqtts://HOST[:8883]", broker=self.url)
        if self.key_file and not self.cert_file:
            raise MqttError("--broker-key was given without --broker-cert (the client certificate)", broker=self.url)
        if self.password is not None and not self.username:
            raise MqttError("a broker password was given without a user name; add --broker-user NAME",
                            broker=self.url)
        for what, path in (("--broker-ca", self.ca_file), ("--broker-cert", self.cert_file),
                           ("--broker-key", self.key_file)):
            if path is not None and not Path(path).is_file():
                raise MqttError(f"{what} {path}: no such file", broker=self.url, option=what)
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+, server certificate and host name verified; the client certificate if given."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=str(self.ca_file) if self.ca_file else None)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise MqttError(f"cannot load the TLS files for {self.url} ({exc}); check --broker-ca, --broker-cert "
                            "and --broker-key (PEM files; the key must match the certificate)",
                            broker=self.url) from None
        return ctx


def parse_url(url: str, **overrides) -> BrokerSettings:
    """``mqtt://host[:port]``, ``mqtts://[user@]host[:port]`` or ``host[:port]`` -> settings.

    ``overrides`` (username, password, ca_file, cert_file, key_file) fill in what the URL
    does not say. A password inside the URL is refused.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "mqtt", text
    scheme = scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise MqttError(f"broker URL {url!r} has scheme {scheme!r}; write mqtt://HOST:1883 or mqtts://HOST:8883")
    tls = scheme in ("mqtts", "ssl")
    rest = rest.rstrip("/")
    user = None
    if "@" in rest:
        creds, rest = rest.rsplit("@", 1)
        if ":" in creds:
            raise MqttError("the broker URL contains a password; passwords never go on the command line — put it in "
                            "a file readable only by you and give --broker-password-file FILE "
                            "(or FLEET_MQTT_PASSWORD_FILE)")
        user = creds or None
    host, port = parse_broker(rest, default_port=DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    values: dict[str, Any] = {"host": host, "port": port, "tls": tls, "username": user}
    for k, v in overrides.items():
        if v is not None:
            values[k] = Path(v) if k.endswith("_file") else v
    return BrokerSettings(**values).check()


def read_password_file(path: str | Path) -> str:
    """The first line of ``path`` (a trailing newline is not part of the password)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MqttError(f"cannot read the broker password file {path} ({exc.__class__.__name__}); "
                        "create it with one line, readable only by the fleet user (chmod 600)") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise MqttError(f"the broker password file {path} is empty")
    return line


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


Handler = Callable[[str, bytes], None]
RawHandler = Callable[[Message], None]


class _BufferedSocket:
    """Read-ahead wrapper for paho's plain TCP socket.

    paho reads each packet with several tiny ``recv`` calls (type byte, length bytes,
    body) and a ``select`` per packet. This wrapper reads up to 256 KiB at a time and
    serves the small reads from the buffer; ``pending()`` (which paho already honours for
    TLS sockets) tells paho's loop not to wait in ``select`` while buffered bytes remain.
    """

    __slots__ = ("_sock", "_buf")

    def __init__(self, sock) -> None:
        self._sock = sock
        self._buf = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if not self._buf:
            data = self._sock.recv(max(bufsize, 262144))   # BlockingIOError propagates to paho
            if not data:
                return b""
            if len(data) <= bufsize:
                return data
            self._buf += data
        out = bytes(self._buf[:bufsize])
        del self._buf[:bufsize]
        return out

    def pending(self) -> int:
        return len(self._buf)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _Client(paho.Client):
    def loop_read(self, max_packets: int = 1):  # type: ignore[override]
        """Read every packet already buffered, not one packet per ``select``."""
        rc = super().loop_read(max_packets)
        for _ in range(10000):
            sock = self._sock
            if rc or not isinstance(sock, _BufferedSocket) or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc

    def _create_socket(self):  # type: ignore[override]
        sock = super()._create_socket()
        if self._transport == "tcp" and not self._ssl:
            return _BufferedSocket(sock)
        return sock


def _match_filter(sub: str) -> tuple[str, ...]:
    """The filter's levels, without a ``$share/<group>/`` prefix."""
    return tuple(strip_share(sub).split("/"))


def _matches(flt: tuple[str, ...], levels: list[str]) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); paho's helper builds a trie per call."""
    n = len(levels)
    for i, f in enumerate(flt):
        if f == "#":
            return True
        if i >= n or (f != "+" and f != levels[i]):
            return False
    return n == len(flt)


class MqttClient:
    def __init__(self, host: str, port: int, *, client_id: str | None = None, keepalive_s: int = 30,
                 manual_ack: bool = False, max_inflight: int = 1000,
                 will: tuple[str, bytes, int, bool] | None = None,
                 session_expiry_s: int | None = None, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings(host, port)
        self.host, self.port = host, port
        self._cid = client_id or f"fleet-{uuid.uuid4().hex[:10]}"
        self._c = _Client(CallbackAPIVersion.VERSION2, client_id=self._cid,
                              protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack,
                              reconnect_on_failure=True)
        if self.settings.tls:
            self._c.tls_set_context(self.settings.ssl_context())
        if self.settings.username:
            self._c.username_pw_set(self.settings.username, self.settings.password)
        self._c.max_inflight_messages_set(max_inflight)
        self._c.max_queued_messages_set(0)
        self._keepalive = keepalive_s
        self._session_expiry = session_expiry_s
        if will:
            t, p, q, r = will
            self._c.will_set(t, p, qos=q, retain=r)
        self._routes: list[tuple[tuple[str, ...], Callable, bool]] = []
        self._connected = threading.Event()
        self._connack = threading.Event()           # any CONNACK, accepted or refused
        self._conn_rc: object = None
        self._subacks: dict[int, threading.Event] = {}
        self._sub_refused: dict[int, str] = {}
        self._pub_refused: dict[int, str] = {}
        self._lock = threading.Lock()
        self._c.on_connect = self._on_connect
        self._c.on_message = self._on_message
        self._c.on_subscribe = self._on_subscribe
        self._c.on_disconnect = self._on_disconnect
        self._c.on_publish = self._on_publish
        self.delivered = 0
        self.unrouted = 0

    @property
    def client_id(self) -> str:
        return self._cid

    @classmethod
    def from_settings(cls, settings: BrokerSettings, **kwargs) -> "MqttClient":
        return cls(settings.host, settings.port, settings=settings, **kwargs)

    # -- lifecycle --------------------------------------------------------------
    def connect(self, timeout_s: float = 10.0) -> "MqttClient":
        props = None
        if self._session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry
        url = self.settings.url
        try:
            self._c.connect(self.host, self.port, keepalive=self._keepalive,
                            clean_start=self._session_expiry is None, properties=props)
        except ssl.SSLCertVerificationError as exc:
            raise MqttError(f"TLS: the certificate of {url} was not accepted ({exc.verify_message}); give the CA that "
                            "signed the broker's certificate with --broker-ca and connect by the host name the "
                            "certificate names", broker=url) from None
        except ssl.SSLError as exc:
            raise MqttError(f"TLS handshake with {url} failed ({exc.reason or exc}); the broker may require a client "
                            "certificate (--broker-cert/--broker-key) or a newer TLS version", broker=url) from None
        except OSError as exc:
            raise MqttError(f"cannot reach MQTT broker {url} ({exc}); check --broker", broker=url) from None
        self._c.loop_start()
        if not self._connack.wait(timeout_s):
            self._c.loop_stop()
            hint = " (a TLS listener? use mqtts://)" if not self.settings.tls else \
                " (the broker may have closed the TLS session: a client certificate required?)"
            raise MqttError(f"no CONNACK from {url} within {timeout_s}s{hint}", broker=url)
        if not self._connected.is_set():
            self._c.loop_stop()
            rc = self._conn_rc
            reason = str(rc)
            fix = ("check --broker-user and --broker-password-file" if self.settings.username else
                   "the broker does not take anonymous clients: give --broker-user and --broker-password-file")
            if "authoriz" not in reason.lower() and "password" not in reason.lower():
                fix = "see the broker's log"
            raise MqttError(f"{url} refused the connection: {reason}; {fix}", broker=url, reason=reason)
        return self

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def __enter__(self) -> "MqttClient":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscribe --------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler | None = None, *, qos: int = 1,
                  timeout_s: float = 10.0) -> "queue.Queue[Message] | None":
        """Route matching messages to ``handler(topic, payload)``; without a handler, return a
        queue that receives every matching :class:`Message` (bounded by ``maxsize=100000``)."""
        if handler is not None:
            self._subscribe(topic_filter, handler, False, qos, timeout_s)
            return None
        q: queue.Queue[Message] = queue.Queue(maxsize=100000)
        self._subscribe(topic_filter, q.put, True, qos, timeout_s)
        return q

    def subscribe_raw(self, topic_filter: str, handler: RawHandler, *, qos: int = 1, timeout_s: float = 10.0) -> None:
        self._subscribe(topic_filter, handler, True, qos, timeout_s)

    def route(self, topic_filter: str, handler: Callable, *, raw: bool = True) -> None:
        """Register a handler without subscribing. Call before ``connect()`` when the session
        is persistent: the broker redelivers unacknowledged messages right after CONNACK,
        before any SUBSCRIBE, and a message without a handler would be dropped."""
        entry = (_match_filter(topic_filter), handler, raw)
        with self._lock:
            if entry not in self._routes:
                self._routes.append(entry)

    def _subscribe(self, topic_filter: str, handler: Callable, raw: bool, qos: int, timeout_s: float) -> None:
        self.route(topic_filter, handler, raw=raw)
        with self._lock:
            rc, mid = self._c.subscribe(topic_filter, qos=qos)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                raise MqttError(f"subscribe {topic_filter!r} failed: {paho.error_string(rc)}")
            ev = self._subacks.setdefault(mid, threading.Event())
        if not ev.wait(timeout_s):
            raise MqttError(f"no SUBACK for {topic_filter!r} within {timeout_s}s")
        with self._lock:
            refused = self._sub_refused.pop(mid, None)
        if refused is not None:
            raise MqttError(f"{self.settings.url} refused the subscription {topic_filter!r}: {refused}; the broker "
                            f"user {self.settings.username or '(anonymous)'} needs read access to it in the broker's "
                            "ACL (docs/mosquitto.acl)", topic=topic_filter, reason=refused)

    def ack(self, msg: Message) -> None:
        """PUBACK a message received with manual_ack=True (after it is stored)."""
        self._c.ack(msg.mid, msg.qos)

    def ack_many(self, msgs: list[Message]) -> None:
        """PUBACK many QoS 1 messages with one queued write (in receive order, as MQTT requires).

        paho queues one packet and wakes its loop once per ``ack()``; for a batch of
        thousands that is two syscalls per message. The v5 PUBACK for success is 4 bytes
        (0x40, 2, packet id), so the batch is written as one buffer.
        """
        queue = getattr(self._c, "_packet_queue", None)
        mids = [m.mid for m in msgs if m.qos == 1]
        if queue is None or not mids:
            for m in msgs:
                self.ack(m)
            return
        for m in msgs:
            if m.qos == 2:
                self.ack(m)
        blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
        queue(PacketTypes.PUBACK << 4, blob, 0, 0)

    # -- publish ----------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, timeout_s: float = 10.0) -> None:
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise MqttError(f"publish to {topic} failed: {exc}") from None
        if qos and not info.is_published():
            raise MqttError(f"broker did not acknowledge the publish to {topic} within {timeout_s}s")
        with self._lock:
            refused = self._pub_refused.pop(info.mid, None)
        if refused is not None:
            raise MqttError(f"{self.settings.url} refused the publish to {topic}: {refused}; the broker user "
                            f"{self.settings.username or '(anonymous)'} needs write access to it in the broker's "
                            "ACL (docs/mosquitto.acl)", topic=topic, reason=refused)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False):
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info

    # -- paho callbacks (network thread) ----------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._conn_rc = reason_code
        if not reason_code.is_failure:
            self._connected.set()
        self._connack.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if getattr(reason_code, "is_failure", False):
            with self._lock:
                self._pub_refused[mid] = str(reason_code)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            bad = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
            if bad:
                self._sub_refused[mid] = ", ".join(bad)
            ev = self._subacks.setdefault(mid, threading.Event())
        ev.set()

    def _on_message(self, client, userdata, msg) -> None:
        topic = msg.topic
        levels = topic.split("/")
        routed = False
        for flt, handler, raw in self._routes:
            if _matches(flt, levels):
                routed = True
                if raw:
                    handler(Message(topic, msg.payload, msg.qos, msg.retain, msg.mid))
                else:
                    handler(topic, msg.payload)
        self.delivered += 1
        if not routed:
            self.unrouted += 1


def connect(url: str | BrokerSettings, *, client_id: str | None = None, **kwargs) -> MqttClient:
    """``mqtt(s)://host[:port]`` (or ``host:port``, or settings) -> a connected :class:`MqttClient`."""
    settings = url if isinstance(url, BrokerSettings) else parse_url(url)
    return MqttClient.from_settings(settings, client_id=client_id, **kwargs).connect()


def parse_broker(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host[:port]`` -> (host, port); default port 1883. A URL's scheme is ignored."""
    if "://" in text:
        text = text.split("://", 1)[1].rstrip("/")
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(default_port))
    try:
        p = int(port)
    except ValueError:
        raise MqttError(f"broker {text!r} is not host:port; write e.g. 127.0.0.1:1883") from None
    if not 0 < p < 65536:
        raise MqttError(f"broker port {p} is out of range (1-65535)")
    return host or "127.0.0.1", p


