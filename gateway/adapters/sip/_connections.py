"""The SIP user agent's transports: the UDP socket, TCP/TLS connections, the destination.

- UDP: one socket; responses to requests go back to the source address (RFC 3581 style).
- TCP: a connection to the centre (or the outbound proxy), reused; an optional listener for
  connections the centre opens.
- TLS: a connection to the centre, the certificate verified against the configured CA and
  host name; no listener (a gateway has no server certificate, so the centre must send its
  requests over our connection).

The destination (the proxy, else the centre) is resolved once and kept; the host we
advertise in Via/Contact is the configured one, else the local address that routes there.
Every incoming message, from any transport, goes to one ``dispatch`` callback; a lost
connection is reported to ``on_lost`` (its client transactions fail).

Invariant: at most one outgoing connection per destination, and at most one connect attempt
in flight for it (concurrent callers share it); socket, TLS and resolver errors leave this
module as :class:`~._errors.SipTransportError` naming the address. Runs on the event loop.
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import socket
import ssl
from typing import Callable

from gateway.adapters.sip._config import Transport, UaConfig
from gateway.adapters.sip._errors import SipTransportError
from gateway.adapters.sip._message import SipUri, parse_message
from gateway.adapters.sip._transport import Dispatch, Peer, StreamConnection, UdpEndpoint

__all__ = ["Connections", "dest_text"]

Dest = tuple[str, int]


def dest_text(dest: Dest) -> str:
    """``host:port``, the host bracketed when it is IPv6."""
    return f"[{dest[0]}]:{dest[1]}" if ":" in dest[0] else f"{dest[0]}:{dest[1]}"


class Connections:
    """See the module doc. ``target``/``proxy``: the centre's URI and the outbound proxy's."""

    def __init__(self, config: UaConfig, *, transport: Transport, target: SipUri, proxy: SipUri | None,
                 dispatch: Dispatch, on_lost: Callable[[StreamConnection], None],
                 stats: collections.Counter[str]) -> None:
        self.config = config
        self.transport = transport
        self.target = target
        self.proxy = proxy
        self._dispatch = dispatch
        self._on_lost = on_lost
        self.stats = stats
        self._udp: UdpEndpoint | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._conns: dict[Dest, StreamConnection] = {}
        self._inbound: set[StreamConnection] = set()
        self._connecting: dict[Dest, asyncio.Future[StreamConnection]] = {}
        self._dest: Dest | None = None
        self._local: tuple[str, int] = (config.local_host, config.local_port)
        self.advertised: str | None = config.advertised_host

    @property
    def local(self) -> tuple[str, int]:
        """Where the centre's requests reach us (UDP socket or TCP listener)."""
        return self._local

    @property
    def rx_wait_s(self) -> float:
        """How long the datagram being handled now waited in the socket (0.0 over TCP/TLS)."""
        return self._udp.rx_wait_s if self._udp is not None else 0.0

    @property
    def dest(self) -> Dest | None:
        """The destination, once resolved."""
        return self._dest

    # ---- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Bind the UDP socket, or the TCP listener (``listen``). Raises SipTransportError."""
        loop = asyncio.get_running_loop()
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

    async def close(self) -> None:
        """Close the socket, the listener and every connection (waits up to 1 s for each)."""
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

    # ---- sending ------------------------------------------------------------------------
    def send(self, data: bytes, dest: Dest, conn: StreamConnection | None) -> None:
        """On ``conn`` if given, else on the UDP socket. Raises SipTransportError."""
        if conn is not None:
            conn.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, dest)
        else:
            raise SipTransportError("SIP user agent is closed", target=dest_text(dest))

    def usable_connection(self, dest: Dest) -> StreamConnection | None:
        """The open connection to ``dest``, if it can take a message now."""
        conn = self._conns.get(dest)
        return conn if conn is not None and conn.usable else None

    # ---- destination and connections ----------------------------------------------------
    async def destination(self) -> Dest:
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
        if self.advertised is None:
            self.advertised = self._local_ip_toward(dest)
        return dest

    def _local_ip_toward(self, dest: Dest) -> str:
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

    def sent_by(self, dest: Dest, conn: StreamConnection | None) -> str:
        """The Via sent-by (and Contact host:port) of a request to ``dest``."""
        host = self.advertised or self._local_ip_toward(dest)
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

    async def connection(self, dest: Dest) -> StreamConnection:
        """The connection to ``dest``: the open one, the one being made, or a new one."""
        conn = self._conns.get(dest)
        if conn is not None and conn.usable:
            return conn
        pending = self._connecting.get(dest)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[StreamConnection] = loop.create_future()
        self._connecting[dest] = fut
        where = dest_text(dest)
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
        self._on_lost(conn)

    # ---- incoming -----------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: Peer) -> None:
        msg = parse_message(data, max_bytes=self.config.max_message_bytes)
        udp = self._udp

        def reply(out: bytes) -> None:
            if udp is not None:
                udp.sendto(out, addr)
        self._dispatch(msg, reply, addr, None)
