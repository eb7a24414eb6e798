"""A small SIP user agent for MESSAGE only (RFC 3261 + RFC 3428), on asyncio.

Client side: :meth:`SipUserAgent.async_send_message` runs one non-INVITE client
transaction per attempt (tables in :mod:`._transaction`; timers E/F/K over UDP, F only
over TCP/TLS), answers 401/407 digest challenges (MD5, SHA-256, ``qop=auth``;
:mod:`._digest`) and returns the final 2xx response — whose body may carry the centre's
reply — or raises a :class:`~._errors.SipError`. The answered challenge is cached and
sent pre-emptively with the next MESSAGE (next ``nc``), so an alarm does not pay a 401
round trip; a stale or new challenge is answered once more, a second non-stale one for
the same realm means the credentials are wrong (:class:`SipAuthError`).

The alarm path uses :meth:`SipUserAgent.send_message_now` instead: once the destination
is known (and, over TCP/TLS, the connection is up) it puts the MESSAGE on the wire before
returning and reports the final response from the response's own receive callback — no
task, no event-loop hop either way (docs/scaip.md "Latency"). A challenge on that path is
learnt and the caller goes on with :meth:`async_send_message`.

Server side: a MESSAGE from the centre (the separate reply) is handed to the request
handler, whose return value is the status we answer (200 by default); retransmissions
of it get the same response again (server transaction, timer J). OPTIONS gets 200,
INVITE 488 (a gateway has no voice path), anything else 405.

Transports: UDP (one socket; responses to requests go back to the source address,
RFC 3581 style), TCP (connection to the centre or outbound proxy, reused; optional
listener for connections the centre opens), TLS (connection to the centre, certificate
verified against the configured CA and host name; no listener: a gateway has no server
certificate, so the centre must send its requests over our connection). Every call runs
on the event loop; nothing blocks.

Not in scope: INVITE/dialogs, REGISTER, DNS SRV/NAPTR (configure host and port), RFC
3263 failover, SIP over WebSocket, S/MIME.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import logging
import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Callable

from gateway.adapters.sip._digest import Challenge, authorization, choose, parse_challenge
from gateway.adapters.sip._errors import SipAuthError, SipError, SipStatusError, SipTimeout, SipTransportError
from gateway.adapters.sip._message import (
    MAX_MESSAGE_BYTES,
    Headers,
    SipRejection,
    SipRequest,
    SipResponse,
    SipUri,
    parse_message,
    parse_uri,
    tag_of,
    top_via,
)
from gateway.adapters.sip._transaction import Timers, TxDo, TxEvent, TxState, event_for_status, step
from gateway.adapters.sip._transport import Peer, Reply, StreamConnection, UdpEndpoint

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/scaip+xml"
ALLOW = "MESSAGE, OPTIONS"
_MAX_AUTH_ROUNDS = 3
_MAX_CALLS = 1024
_MAX_SERVER_TX = 1024      # answered requests kept for retransmissions (bounded against floods)
_REASONS = {100: "Trying", 200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 415: "Unsupported Media Type", 481: "Call/Transaction Does Not Exist",
            486: "Busy Here", 488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable"}


class Transport(str, enum.Enum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def reliable(self) -> bool:
        return self is not Transport.UDP


@dataclass(frozen=True)
class SipAccount:
    """Digest credentials. With ``realm`` set they are only given to that realm."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None


@dataclass(frozen=True)
class UaConfig:
    """Everything the UA needs; all defaults are RFC 3261's.

    ``target``: the centre's SIP URI (Request-URI and To). ``local_user``: the user part
    of our From/Contact (the SCAIP controller id). ``outbound_proxy``: send every request
    there, with a ``Route`` to it (loose routing). ``advertised_host``: the host in Via
    and Contact when the bound address is a wildcard (default: the local address that
    routes to the centre)."""

    target: str
    local_user: str
    transport: Transport = Transport.UDP
    domain: str | None = None
    outbound_proxy: str | None = None
    local_host: str = "0.0.0.0"
    local_port: int = 0
    advertised_host: str | None = None
    account: SipAccount | None = None
    timers: Timers = field(default_factory=Timers)
    tls_ca_file: str | None = None
    tls_server_name: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    listen: bool = True
    connect_timeout_s: float = 10.0
    user_agent: str = "wt-gateway"
    max_message_bytes: int = MAX_MESSAGE_BYTES


RequestHandler = Callable[[SipRequest, Peer], int]
FinalHandler = Callable[["SipResponse | None", "SipError | None"], None]


@dataclass
class _Call:
    call_id: str
    from_tag: str
    cseq: int = 0


@dataclass
class _AuthState:
    challenge: Challenge
    cnonce: str
    nc: int = 0


@dataclass
class _ClientTx:
    branch: str
    method: str
    data: bytes
    dest: tuple[str, int]
    conn: StreamConnection | None
    future: asyncio.Future[SipResponse]
    interval: float
    state: TxState = TxState.TRYING
    timer_e: asyncio.TimerHandle | None = None
    timer_f: asyncio.TimerHandle | None = None
    timer_k: asyncio.TimerHandle | None = None
    on_final: FinalHandler | None = None        # send_message_now: called instead of completing the future

    def cancel_timers(self) -> None:
        for h in (self.timer_e, self.timer_f, self.timer_k):
            if h is not None:
                h.cancel()
        self.timer_e = self.timer_f = self.timer_k = None


class SipUserAgent:
    """See the module doc. ``rng`` makes tags, branches, Call-IDs and cnonces (default:
    the system's CSPRNG); ``on_request`` handles the centre's MESSAGEs."""

    def __init__(self, config: UaConfig, *, on_request: RequestHandler | None = None,
                 rng: random.Random | None = None) -> None:
        target = parse_uri(config.target)
        if target is None:
            raise ValueError(f"target {config.target!r} is not a SIP URI (e.g. sip:arc@centre.example:5060)")
        proxy = parse_uri(config.outbound_proxy) if config.outbound_proxy else None
        if config.outbound_proxy and proxy is None:
            raise ValueError(f"outbound_proxy {config.outbound_proxy!r} is not a SIP URI")
        self.config = config
        self.target: SipUri = target
        self.proxy: SipUri | None = proxy
        self.transport = Transport(config.transport)
        self._on_request = on_request
        self._rng = rng or random.SystemRandom()
        self.stats: collections.Counter[str] = collections.Counter()
        self.rejects: collections.Counter[str] = collections.Counter()
        self._client: dict[str, _ClientTx] = {}
        self._server: collections.OrderedDict[tuple[str, str, str], bytes] = collections.OrderedDict()
        self._calls: collections.OrderedDict[str, _Call] = collections.OrderedDict()
        self._auth: dict[tuple[bool, str], _AuthState] = {}
        self._udp: UdpEndpoint | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._conns: dict[tuple[str, int], StreamConnection] = {}
        self._inbound: set[StreamConnection] = set()
        self._connecting: dict[tuple[str, int], asyncio.Future[StreamConnection]] = {}
        self._dest: tuple[str, int] | None = None
        self._local: tuple[str, int] = (config.local_host, config.local_port)
        self._advertised: str | None = config.advertised_host
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def auth_state(self) -> list[dict[str, object]]:
        """The digest challenges answered so far (for status): realm, algorithm, proxy, nc."""
        return [{"realm": st.challenge.realm, "algorithm": st.challenge.algorithm, "proxy": st.challenge.proxy,
                 "nc": st.nc} for st in self._auth.values()]

    def set_request_handler(self, handler: RequestHandler | None) -> None:
        self._on_request = handler

    @property
    def rx_wait_s(self) -> float:
        """How long the datagram being handled now waited in the socket before the loop read
        it (kernel receive timestamp; 0.0 over TCP/TLS or without one)."""
        return self._udp.rx_wait_s if self._udp is not None else 0.0

    @property
    def local_address(self) -> tuple[str, int]:
        """Where the centre's requests reach us (UDP socket or TCP listener)."""
        return self._local

    async def async_start(self) -> None:
        if self._started:
            return
        loop = self._loop = asyncio.get_running_loop()
        host, port = self.config.local_host, self.config.local_port
        try:
            if self.transport is Transport.UDP:
                udp = UdpEndpoint(self._on_datagram)
                self._local = udp.open(host, port)[:2]
                self._udp = udp
            elif self.transport is Transport.TCP and self.config.listen:
                self._listener = await loop.create_server(lambda: self._new_conn("tcp", inbound=True), host, port)
                self._local = self._listener.sockets[0].getsockname()[:2]
        except OSError as exc:
            raise SipTransportError(f"cannot bind SIP {self.transport.value} on {host}:{port}: {exc.strerror or exc}",
                                    target=f"{host}:{port}") from None
        self._started = True
        log.info("sip: user agent on %s %s:%s, centre %s%s", self.transport.value, *self._local[:2], self.target,
                 f" via {self.proxy}" if self.proxy else "")

    async def async_close(self) -> None:
        self._started = False
        for tx in list(self._client.values()):
            tx.cancel_timers()
            if not tx.future.done():
                tx.future.set_exception(SipTransportError("user agent closed", target=self._dest_text(tx.dest)))
                tx.future.exception()
        self._client.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        conns = list(self._conns.values()) + list(self._inbound)
        for c in conns:
            c.close()
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for c in conns:
            try:
                await asyncio.wait_for(asyncio.shield(c.closed), 1.0)
            except asyncio.TimeoutError:
                pass
        self._conns.clear()
        self._inbound.clear()

    # ---- client side --------------------------------------------------------------------

    def new_call_id(self) -> str:
        return f"{self._token()}@{self._advertised or 'gateway.invalid'}"

    async def async_send_message(self, body: bytes, *, content_type: str = CONTENT_TYPE,
                                 call_id: str | None = None) -> SipResponse:
        """Send one MESSAGE; return its final 2xx response. ``call_id``: re-sends of one
        logical message share a Call-ID (CSeq grows). Raises :class:`SipError`."""
        if not self._started:
            raise SipTransportError("SIP user agent is not started", target=str(self.target))
        call = self._call(call_id or self.new_call_id())
        answered: set[tuple[bool, str]] = set()
        resp: SipResponse | None = None
        for _ in range(_MAX_AUTH_ROUNDS + 1):
            call.cseq += 1
            resp = await self._transact(call, body, content_type)
            self.stats[f"status_{resp.status // 100}xx"] += 1
            if resp.status in (401, 407):
                self._learn_challenge(resp, answered)
                continue
            if 200 <= resp.status < 300:
                return resp
            raise SipStatusError(f"{self.target} answered {resp.status} {resp.reason}".strip(),
                                 target=str(self.target), status=resp.status, reason=resp.reason)
        assert resp is not None
        raise SipAuthError(f"{self.target} still challenges after {_MAX_AUTH_ROUNDS} answers",
                           target=str(self.target), status=resp.status, reason=resp.reason)

    def send_message_now(self, body: bytes, *, call_id: str, on_final: FinalHandler,
                         content_type: str = CONTENT_TYPE) -> bool:
        """Start one MESSAGE transaction *now* if nothing needs awaiting (destination known,
        over TCP/TLS a usable connection): True once it is on the wire. ``on_final(response,
        None)`` gets a final 2xx, 401 or 407 (the challenge already learnt: go on with
        :meth:`async_send_message`); ``on_final(None, error)`` a failure. Called from the
        receive path or a timer, never from inside this method. False: use
        :meth:`async_send_message`."""
        dest = self._dest
        if not self._started or dest is None:
            return False
        conn: StreamConnection | None = None
        if self.transport.reliable:
            conn = self._conns.get(dest)
            if conn is None or not conn.usable:
                return False
        loop = asyncio.get_running_loop()
        call = self._call(call_id)
        call.cseq += 1
        branch = "z9hG4bK" + self._token()
        req = self._build_request(call, body, content_type, branch, dest, conn)
        t = self.config.timers
        tx = _ClientTx(branch, "MESSAGE", req.to_bytes(), dest, conn, loop.create_future(), interval=t.t1,
                       on_final=lambda resp, err: self._fast_final(resp, err, on_final))
        try:
            self._send(tx)
        except SipError:
            call.cseq -= 1
            return False
        self._client[branch] = tx
        if not self.transport.reliable:
            tx.timer_e = loop.call_later(t.t1, self._fire, tx, TxEvent.TIMER_E, None)
        tx.timer_f = loop.call_later(t.f, self._fire, tx, TxEvent.TIMER_F, None)
        self.stats["requests_sent"] += 1
        self.stats["sent_at_once"] += 1
        return True

    def _fast_final(self, resp: SipResponse | None, err: SipError | None, on_final: FinalHandler) -> None:
        if resp is not None:
            self.stats[f"status_{resp.status // 100}xx"] += 1
            if resp.status in (401, 407):
                try:
                    self._learn_challenge(resp, set())
                except SipAuthError as exc:
                    resp, err = None, exc
            elif not 200 <= resp.status < 300:
                resp, err = None, SipStatusError(f"{self.target} answered {resp.status} {resp.reason}".strip(),
                                                 target=str(self.target), status=resp.status, reason=resp.reason)
        try:
            on_final(resp, err)
        except Exception:                      # the caller's bug must not break the receive path
            log.exception("sip: final-response handler failed")

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id, self._token())
            while len(self._calls) > _MAX_CALLS:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call_id)
        return call

    def _learn_challenge(self, resp: SipResponse, answered: set[tuple[bool, str]]) -> None:
        proxy = resp.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        offered = [c for c in (parse_challenge(v, proxy=proxy) for v in resp.headers.get_all(name)) if c]
        self.stats["challenges"] += 1
        acct = self.config.account
        where = str(self.proxy or self.target)
        if acct is None:
            raise SipAuthError(f"{where} demands digest authentication ({resp.status}) but no account is configured",
                               target=where, status=resp.status, reason=resp.reason)
        ch = choose(offered)
        if ch is None:
            what = ", ".join(f"{c.algorithm}/qop={','.join(c.qop) or '-'}" for c in offered) or "nothing readable"
            raise SipAuthError(f"{where}: no digest challenge we can answer (offered {what}; we do MD5 and "
                               f"SHA-256 with qop=auth)", target=where, status=resp.status, reason=resp.reason)
        if acct.realm is not None and ch.realm != acct.realm:
            raise SipAuthError(f"{where} asks for realm {ch.realm!r}; the account is for {acct.realm!r}",
                               target=where, status=resp.status, reason=resp.reason)
        key = (ch.proxy, ch.realm)
        if key in answered and not ch.stale:
            self.stats["auth_refused"] += 1
            self._auth.pop(key, None)
            raise SipAuthError(f"{where} refused the credentials of {acct.username!r} for realm {ch.realm!r}",
                               target=where, status=resp.status, reason=resp.reason)
        answered.add(key)
        self._auth[key] = _AuthState(ch, cnonce=self._token())

    def _auth_headers(self, uri: str) -> list[tuple[str, str]]:
        acct = self.config.account
        if acct is None:
            return []
        out = []
        for st in self._auth.values():
            st.nc += 1
            out.append((st.challenge.header_name, authorization(
                st.challenge, username=acct.username, password=acct.password, method="MESSAGE", uri=uri,
                nc=st.nc, cnonce=st.cnonce)))
        return out

    async def _transact(self, call: _Call, body: bytes, content_type: str) -> SipResponse:
        loop = asyncio.get_running_loop()
        dest = await self._destination()
        conn = await self._connection(dest) if self.transport.reliable else None
        branch = "z9hG4bK" + self._token()
        req = self._build_request(call, body, content_type, branch, dest, conn)
        t = self.config.timers
        tx = _ClientTx(branch, "MESSAGE", req.to_bytes(), dest, conn, loop.create_future(), interval=t.t1)
        self._client[branch] = tx
        try:
            self._send(tx)
            if not self.transport.reliable:
                tx.timer_e = loop.call_later(t.t1, self._fire, tx, TxEvent.TIMER_E, None)
            tx.timer_f = loop.call_later(t.f, self._fire, tx, TxEvent.TIMER_F, None)
            self.stats["requests_sent"] += 1
            return await tx.future
        finally:
            if tx.state is not TxState.COMPLETED:
                tx.cancel_timers()
                self._client.pop(branch, None)

    def _build_request(self, call: _Call, body: bytes, content_type: str, branch: str, dest: tuple[str, int],
                       conn: StreamConnection | None) -> SipRequest:
        sent_by = self._sent_by(dest, conn)
        uri = str(self.target)
        t = self.transport.value.upper()
        pairs: list[tuple[str, str]] = [("Via", f"SIP/2.0/{t} {sent_by};branch={branch};rport"),
                                        ("Max-Forwards", "70")]
        if self.proxy is not None:
            route = SipUri(self.proxy.scheme, self.proxy.user, self.proxy.host, self.proxy.port,
                           {**self.proxy.params, "lr": ""})
            pairs.append(("Route", f"<{route}>"))
        domain = self.config.domain or self.target.host
        pairs += [("From", f"<sip:{self.config.local_user}@{domain}>;tag={call.from_tag}"),
                  ("To", f"<{uri}>"),
                  ("Call-ID", call.call_id),
                  ("CSeq", f"{call.cseq} MESSAGE"),
                  ("Contact", f"<sip:{self.config.local_user}@{sent_by};transport={self.transport.value}>"),
                  ("User-Agent", self.config.user_agent)]
        pairs += self._auth_headers(uri)
        pairs.append(("Content-Type", content_type))
        return SipRequest("MESSAGE", uri, Headers.of(pairs), body)

    def _send(self, tx: _ClientTx) -> None:
        if tx.conn is not None:
            tx.conn.write(tx.data)
        elif self._udp is not None:
            self._udp.sendto(tx.data, tx.dest)
        else:
            raise SipTransportError("SIP user agent is closed", target=self._dest_text(tx.dest))

    def _fire(self, tx: _ClientTx, event: TxEvent, response: SipResponse | None) -> None:
        st = step(tx.state, event)
        if st is None:
            return
        tx.state, dos = st
        loop = asyncio.get_running_loop()
        t = self.config.timers
        for do in dos:
            if do is TxDo.RETRANSMIT:
                try:
                    self._send(tx)
                    self.stats["retransmissions"] += 1
                except SipError:
                    pass
                tx.interval = t.next_e(tx.state, tx.interval)
                tx.timer_e = loop.call_later(tx.interval, self._fire, tx, TxEvent.TIMER_E, None)
            elif do is TxDo.DELIVER:
                if response is not None:
                    self._complete(tx, response, None)
            elif do is TxDo.TIMEOUT:
                self.stats["timeouts"] += 1
                self._complete(tx, None, SipTimeout(
                    f"no final response from {self._dest_text(tx.dest)} within timer F ({t.f:g} s)",
                    target=self._dest_text(tx.dest)))
            elif do is TxDo.FAIL:
                self._complete(tx, None, SipTransportError(
                    f"connection to {self._dest_text(tx.dest)} lost before the final response",
                    target=self._dest_text(tx.dest)))
            elif do is TxDo.ARM_K:
                tx.cancel_timers()
                tx.timer_k = loop.call_later(t.k(self.transport.reliable), self._fire, tx, TxEvent.TIMER_K, None)
        if tx.state is TxState.TERMINATED:
            tx.cancel_timers()
            self._client.pop(tx.branch, None)

    @staticmethod
    def _complete(tx: _ClientTx, response: SipResponse | None, error: SipError | None) -> None:
        """The transaction's one final outcome: its handler (send_message_now) or its future."""
        if tx.future.done():
            return
        if tx.on_final is not None:
            tx.future.set_result(response)       # (marks it reported; nobody awaits it)
            tx.on_final(response, error)
        elif error is not None:
            tx.future.set_exception(error)
        elif response is not None:
            tx.future.set_result(response)

    # ---- destination and connections ----------------------------------------------------

    async def _destination(self) -> tuple[str, int]:
        if self._dest is not None:
            return self._dest
        uri = self.proxy or self.target
        host, port = uri.bare_host, uri.default_port(self.transport.value)
        try:
            ipaddress.ip_address(host)
            dest = (host, port)
        except ValueError:
            kind = socket.SOCK_DGRAM if self.transport is Transport.UDP else socket.SOCK_STREAM
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
            except OSError as exc:
                raise SipTransportError(f"cannot resolve {host}: {exc}", target=f"{host}:{port}") from None
            if not infos:
                raise SipTransportError(f"cannot resolve {host}", target=f"{host}:{port}")
            dest = tuple(infos[0][4][:2])  # type: ignore[assignment]
        self._dest = dest
        if self._advertised is None:
            self._advertised = self._local_ip_toward(dest)
        return dest

    def _local_ip_toward(self, dest: tuple[str, int]) -> str:
        host = self.config.local_host
        if host not in ("0.0.0.0", "::", ""):
            return host
        family = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(dest)            # no packet is sent; the kernel picks the route
                return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"

    def _sent_by(self, dest: tuple[str, int], conn: StreamConnection | None) -> str:
        host = self._advertised or self._local_ip_toward(dest)
        if conn is not None and self._listener is None and conn.transport is not None:
            port = conn.transport.get_extra_info("sockname")[1]
        else:
            port = self._local[1]
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}"

    def _new_conn(self, label: str, *, inbound: bool = False) -> StreamConnection:
        conn = StreamConnection(self._dispatch, self._conn_lost, self.config.max_message_bytes, label)
        if inbound:
            self._inbound.add(conn)
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.tls_ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.config.tls_cert_file:
            ctx.load_cert_chain(self.config.tls_cert_file, self.config.tls_key_file)
        return ctx

    async def _connection(self, dest: tuple[str, int]) -> StreamConnection:
        conn = self._conns.get(dest)
        if conn is not None and conn.usable:
            return conn
        pending = self._connecting.get(dest)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[StreamConnection] = loop.create_future()
        self._connecting[dest] = fut
        where = self._dest_text(dest)
        tls = self.transport is Transport.TLS
        server_name = self.config.tls_server_name or (self.proxy or self.target).bare_host
        err: SipTransportError
        try:
            ctx = self._ssl_context() if tls else None
        except (OSError, ssl.SSLError) as exc:
            err = SipTransportError(f"TLS set-up failed (CA file {self.config.tls_ca_file!r}, certificate "
                                    f"{self.config.tls_cert_file!r}): {exc}", target=where)
        else:
            try:
                _, new_conn = await asyncio.wait_for(
                    loop.create_connection(lambda: self._new_conn(self.transport.value), dest[0], dest[1], ssl=ctx,
                                           server_hostname=server_name if tls else None),
                    self.config.connect_timeout_s)
            except ssl.SSLCertVerificationError as exc:
                err = SipTransportError(
                    f"TLS: the certificate of {where} did not verify for {server_name!r}: {exc.verify_message}",
                    target=where)
            except ssl.SSLError as exc:
                err = SipTransportError(f"TLS handshake with {where} failed: {exc.reason or exc}", target=where)
            except asyncio.TimeoutError:
                err = SipTransportError(f"connect to {where} timed out after {self.config.connect_timeout_s:g} s",
                                        target=where)
            except OSError as exc:
                err = SipTransportError(f"connect to {where} failed: {exc.strerror or exc}", target=where)
            except asyncio.CancelledError:
                self._connecting.pop(dest, None)
                fut.cancel()
                raise
            else:
                self._conns[dest] = new_conn
                self.stats["connections"] += 1
                self._connecting.pop(dest, None)
                fut.set_result(new_conn)
                return new_conn
        self._connecting.pop(dest, None)
        self.stats["connect_failures"] += 1
        fut.set_exception(err)
        fut.exception()
        raise err

    def _conn_lost(self, conn: StreamConnection, exc: Exception | None) -> None:
        self._inbound.discard(conn)
        for dest, c in list(self._conns.items()):
            if c is conn:
                del self._conns[dest]
        for tx in list(self._client.values()):
            if tx.conn is conn:
                self._fire(tx, TxEvent.TRANSPORT_ERROR, None)

    @staticmethod
    def _dest_text(dest: tuple[str, int]) -> str:
        return f"[{dest[0]}]:{dest[1]}" if ":" in dest[0] else f"{dest[0]}:{dest[1]}"

    def _token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    # ---- incoming -----------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: Peer) -> None:
        msg = parse_message(data, max_bytes=self.config.max_message_bytes)
        udp = self._udp

        def reply(out: bytes) -> None:
            if udp is not None:
                udp.sendto(out, addr)
        self._dispatch(msg, reply, addr, None)

    def _dispatch(self, msg: SipRequest | SipResponse | SipRejection, reply: Reply, peer: Peer,
                  conn: StreamConnection | None) -> None:
        if isinstance(msg, SipRejection):
            self.rejects[msg.reason.value] += 1
            n = self.rejects[msg.reason.value]
            if n <= 5 or n % 100 == 0:
                log.warning("sip: refused a message from %s:%s (%s: %s), %d so far", peer[0], peer[1],
                            msg.reason.value, msg.detail, n)
            return
        if isinstance(msg, SipResponse):
            self._on_response(msg)
        else:
            self._on_request_msg(msg, reply, peer, conn)

    def _on_response(self, resp: SipResponse) -> None:
        via = top_via(resp.headers)
        tx = self._client.get(via.branch or "") if via is not None else None
        cseq = resp.cseq
        if tx is None or cseq is None or cseq[1] != tx.method:
            self.stats["stray_responses"] += 1
            return
        self._fire(tx, event_for_status(resp.status), resp)

    def _on_request_msg(self, req: SipRequest, reply: Reply, peer: Peer, conn: StreamConnection | None) -> None:
        via = top_via(req.headers)
        if via is None or not via.branch:
            self.rejects["via"] += 1
            return
        key = (via.branch, via.sent_by, req.method)
        cached = self._server.get(key)
        if cached is not None:
            self.stats["request_retransmissions"] += 1
            self._safe_reply(reply, cached)
            return
        if req.method == "ACK":
            return
        self.stats[f"requests_in_{req.method.lower()}"[:40]] += 1
        status, extra = self._decide(req, peer)
        data = self._response_to(req, status, extra).to_bytes()
        self._server[key] = data
        while len(self._server) > _MAX_SERVER_TX:
            self._server.popitem(last=False)
        loop = asyncio.get_running_loop()
        loop.call_later(self.config.timers.j(conn is not None), self._server.pop, key, None)
        self._safe_reply(reply, data)

    def _decide(self, req: SipRequest, peer: Peer) -> tuple[int, list[tuple[str, str]]]:
        if req.method == "MESSAGE":
            if self._on_request is None:
                return 200, []
            try:
                return int(self._on_request(req, peer)), []
            except Exception:                    # a handler bug must not kill the UA's receive path
                log.exception("sip: request handler failed for a MESSAGE from %s:%s", peer[0], peer[1])
                return 500, []
        if req.method == "OPTIONS":
            return 200, [("Allow", ALLOW), ("Accept", CONTENT_TYPE)]
        if req.method == "INVITE":
            return 488, [("Allow", ALLOW), ("Warning", '399 gateway "no voice path on this unit"')]
        if req.method in ("BYE", "CANCEL"):
            return 481, []
        return 405, [("Allow", ALLOW)]

    def _response_to(self, req: SipRequest, status: int, extra: list[tuple[str, str]]) -> SipResponse:
        pairs: list[tuple[str, str]] = [("Via", v) for v in req.headers.get_all("Via")]
        to = req.headers.get("To", "") or ""
        if status > 100 and tag_of(to) is None:
            to = f"{to};tag={self._token()}"
        pairs += [("From", req.headers.get("From", "") or ""), ("To", to),
                  ("Call-ID", req.headers.get("Call-ID", "") or ""), ("CSeq", req.headers.get("CSeq", "") or ""),
                  ("Server", self.config.user_agent)]
        pairs += extra
        return SipResponse(status, _REASONS.get(status, "Unknown"), Headers.of(pairs))

    def _safe_reply(self, reply: Reply, data: bytes) -> None:
        try:
            reply(data)
        except SipError as exc:
            self.stats["reply_failures"] += 1
            log.warning("sip: could not answer a request: %s", exc)
