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

Transports: UDP, TCP (optional listener) and TLS (no listener); every call runs on the
event loop; nothing blocks.

Not in scope: INVITE/dialogs, REGISTER, DNS SRV/NAPTR (configure host and port), RFC
3263 failover, SIP over WebSocket, S/MIME.

This module is the facade; it wires the UA's collaborators and keeps the public names:

- :mod:`._config`: :class:`UaConfig`, :class:`SipAccount`, :class:`Transport`, ``CONTENT_TYPE``.
- :mod:`._connections`: the UDP socket, TCP/TLS connections, resolving the destination.
- :mod:`._client`: MESSAGE requests and their client transactions (timers E/F/K).
- :mod:`._server`: the answers to incoming requests (server transactions, timer J).
- :mod:`._auth`: the digest challenges answered so far (pre-emptive answers, ``nc``).

Invariant: every message received on any transport goes through :meth:`SipUserAgent._dispatch`
once — a rejection is counted (and logged, rate-limited), a response goes to its client
transaction, a request to the server side; nothing received raises into the transport.
"""
from __future__ import annotations

import collections
import logging
import random

from gateway.adapters.sip._auth import DigestAuth
from gateway.adapters.sip._client import ClientTransactions
from gateway.adapters.sip._config import CONTENT_TYPE, FinalHandler, RequestHandler, SipAccount, Transport, UaConfig
from gateway.adapters.sip._connections import Connections
from gateway.adapters.sip._errors import SipAuthError, SipError, SipStatusError, SipTransportError
from gateway.adapters.sip._message import SipRejection, SipRequest, SipResponse, SipUri, parse_uri
from gateway.adapters.sip._server import ServerTransactions
from gateway.adapters.sip._transport import Peer, Reply, StreamConnection

__all__ = ["CONTENT_TYPE", "SipAccount", "SipUserAgent", "Transport", "UaConfig"]

log = logging.getLogger(__name__)

_MAX_AUTH_ROUNDS = 3


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
        self._rng = rng or random.SystemRandom()
        self.stats: collections.Counter[str] = collections.Counter()
        self.rejects: collections.Counter[str] = collections.Counter()
        self._net = Connections(config, transport=self.transport, target=target, proxy=proxy,
                                dispatch=self._dispatch, on_lost=self._conn_lost, stats=self.stats)
        self._auth = DigestAuth(config.account, where=str(proxy or target), token=self._token, stats=self.stats)
        self._client = ClientTransactions(config, transport=self.transport, target=target, proxy=proxy,
                                          net=self._net, auth=self._auth, token=self._token, stats=self.stats)
        self._server = ServerTransactions(config, handler=on_request, token=self._token, stats=self.stats,
                                          rejects=self.rejects)
        self._started = False

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def auth_state(self) -> list[dict[str, object]]:
        """The digest challenges answered so far (for status): realm, algorithm, proxy, nc."""
        return self._auth.state

    def set_request_handler(self, handler: RequestHandler | None) -> None:
        self._server.handler = handler

    @property
    def rx_wait_s(self) -> float:
        """How long the datagram being handled now waited in the socket before the loop read
        it (kernel receive timestamp; 0.0 over TCP/TLS or without one)."""
        return self._net.rx_wait_s

    @property
    def local_address(self) -> tuple[str, int]:
        """Where the centre's requests reach us (UDP socket or TCP listener)."""
        return self._net.local

    async def async_start(self) -> None:
        if self._started:
            return
        await self._net.open()
        self._started = True
        log.info("sip: user agent on %s %s:%s, centre %s%s", self.transport.value, *self._net.local[:2], self.target,
                 f" via {self.proxy}" if self.proxy else "")

    async def async_close(self) -> None:
        self._started = False
        self._client.close()
        await self._net.close()

    # ---- client side --------------------------------------------------------------------

    def new_call_id(self) -> str:
        return f"{self._token()}@{self._net.advertised or 'gateway.invalid'}"

    async def async_send_message(self, body: bytes, *, content_type: str = CONTENT_TYPE,
                                 call_id: str | None = None) -> SipResponse:
        """Send one MESSAGE; return its final 2xx response. ``call_id``: re-sends of one
        logical message share a Call-ID (CSeq grows). Raises :class:`SipError`."""
        if not self._started:
            raise SipTransportError("SIP user agent is not started", target=str(self.target))
        call = self._client.call(call_id or self.new_call_id())
        answered: set[tuple[bool, str]] = set()
        resp: SipResponse | None = None
        for _ in range(_MAX_AUTH_ROUNDS + 1):
            call.cseq += 1
            resp = await self._client.transact(call, body, content_type)
            self.stats[f"status_{resp.status // 100}xx"] += 1
            if resp.status in (401, 407):
                self._auth.learn(resp, answered)
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
        dest = self._net.dest
        if not self._started or dest is None:
            return False
        conn: StreamConnection | None = None
        if self.transport.reliable:
            conn = self._net.usable_connection(dest)
            if conn is None:
                return False
        return self._client.start_now(call_id, body, content_type, dest, conn,
                                      lambda resp, err: self._fast_final(resp, err, on_final))

    def _fast_final(self, resp: SipResponse | None, err: SipError | None, on_final: FinalHandler) -> None:
        if resp is not None:
            self.stats[f"status_{resp.status // 100}xx"] += 1
            if resp.status in (401, 407):
                try:
                    self._auth.learn(resp, set())
                except SipAuthError as exc:
                    resp, err = None, exc
            elif not 200 <= resp.status < 300:
                resp, err = None, SipStatusError(f"{self.target} answered {resp.status} {resp.reason}".strip(),
                                                 target=str(self.target), status=resp.status, reason=resp.reason)
        try:
            on_final(resp, err)
        except Exception:                      # the caller's bug must not break the receive path
            log.exception("sip: final-response handler failed")

    def _token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    # ---- incoming -----------------------------------------------------------------------

    def _conn_lost(self, conn: StreamConnection) -> None:
        self._client.connection_lost(conn)

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
            self._client.on_response(msg)
        else:
            self._server.on_request(msg, reply, peer, conn)
