"""Client side of the SIP user agent: MESSAGE requests and their non-INVITE transactions.

One transaction per attempt (RFC 3261 17.1.2; the table is :mod:`._transaction`): timer E
retransmits over UDP (T1 doubling up to T2), timer F (64·T1) gives up, timer K absorbs
retransmitted final responses over UDP. A transaction ends in exactly one outcome: its
future (:meth:`ClientTransactions.transact`, awaited) or its ``on_final`` handler
(:meth:`ClientTransactions.start_now`, the alarm path: nothing awaits, the outcome comes
from the response's own receive callback or a timer). Re-sends of one logical message
share a Call-ID (:class:`Call`, CSeq grows); the last :data:`MAX_CALLS` Call-IDs are kept.

Invariant: a live transaction is in the table by its branch until it terminates (or its
awaiting caller gives up), its timers are cancelled when it leaves, and a response is
matched to it by the top Via's branch and the CSeq method — anything else is a stray.
"""
from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Callable

from gateway.adapters.sip._auth import DigestAuth
from gateway.adapters.sip._config import FinalHandler, Transport, UaConfig
from gateway.adapters.sip._connections import Connections, dest_text
from gateway.adapters.sip._errors import SipError, SipTimeout, SipTransportError
from gateway.adapters.sip._message import Headers, SipRequest, SipResponse, SipUri, top_via
from gateway.adapters.sip._transaction import TxDo, TxEvent, TxState, event_for_status, step
from gateway.adapters.sip._transport import StreamConnection

__all__ = ["Call", "ClientTransactions", "MAX_CALLS"]

MAX_CALLS = 1024


@dataclass
class Call:
    call_id: str
    from_tag: str
    cseq: int = 0


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


class ClientTransactions:
    """See the module doc. ``token``: a fresh random token (tags, branches)."""

    def __init__(self, config: UaConfig, *, transport: Transport, target: SipUri, proxy: SipUri | None,
                 net: Connections, auth: DigestAuth, token: Callable[[], str],
                 stats: collections.Counter[str]) -> None:
        self.config = config
        self.transport = transport
        self.target = target
        self.proxy = proxy
        self._net = net
        self._auth = auth
        self._token = token
        self.stats = stats
        self._client: dict[str, _ClientTx] = {}
        self._calls: collections.OrderedDict[str, Call] = collections.OrderedDict()

    def call(self, call_id: str) -> Call:
        """The Call-ID's state (from-tag, CSeq), new or the kept one."""
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = Call(call_id, self._token())
            while len(self._calls) > MAX_CALLS:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call_id)
        return call

    # ---- starting a transaction ---------------------------------------------------------
    async def transact(self, call: Call, body: bytes, content_type: str) -> SipResponse:
        """One attempt (the caller has advanced the CSeq): its final response, or a SipError."""
        loop = asyncio.get_running_loop()
        dest = await self._net.destination()
        conn = await self._net.connection(dest) if self.transport.reliable else None
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

    def start_now(self, call_id: str, body: bytes, content_type: str, dest: tuple[str, int],
                  conn: StreamConnection | None, on_final: FinalHandler) -> bool:
        """Put one attempt on the wire now; its outcome goes to ``on_final`` (never from inside
        this method). False (nothing sent, the CSeq unchanged) when the send fails."""
        loop = asyncio.get_running_loop()
        call = self.call(call_id)
        call.cseq += 1
        branch = "z9hG4bK" + self._token()
        req = self._build_request(call, body, content_type, branch, dest, conn)
        t = self.config.timers
        tx = _ClientTx(branch, "MESSAGE", req.to_bytes(), dest, conn, loop.create_future(), interval=t.t1,
                       on_final=on_final)
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

    def _build_request(self, call: Call, body: bytes, content_type: str, branch: str, dest: tuple[str, int],
                       conn: StreamConnection | None) -> SipRequest:
        sent_by = self._net.sent_by(dest, conn)
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
        pairs += self._auth.headers(uri)
        pairs.append(("Content-Type", content_type))
        return SipRequest("MESSAGE", uri, Headers.of(pairs), body)

    def _send(self, tx: _ClientTx) -> None:
        self._net.send(tx.data, tx.dest, tx.conn)

    # ---- the transaction's life ---------------------------------------------------------
    def on_response(self, resp: SipResponse) -> None:
        """A response from any transport: to its transaction, else counted as a stray."""
        via = top_via(resp.headers)
        tx = self._client.get(via.branch or "") if via is not None else None
        cseq = resp.cseq
        if tx is None or cseq is None or cseq[1] != tx.method:
            self.stats["stray_responses"] += 1
            return
        self._fire(tx, event_for_status(resp.status), resp)

    def connection_lost(self, conn: StreamConnection) -> None:
        """The transactions on ``conn`` fail (transport error)."""
        for tx in list(self._client.values()):
            if tx.conn is conn:
                self._fire(tx, TxEvent.TRANSPORT_ERROR, None)

    def close(self) -> None:
        """Fail every awaited transaction (the UA is closing) and forget them all."""
        for tx in list(self._client.values()):
            tx.cancel_timers()
            if not tx.future.done():
                tx.future.set_exception(SipTransportError("user agent closed", target=dest_text(tx.dest)))
                tx.future.exception()
        self._client.clear()

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
                    f"no final response from {dest_text(tx.dest)} within timer F ({t.f:g} s)",
                    target=dest_text(tx.dest)))
            elif do is TxDo.FAIL:
                self._complete(tx, None, SipTransportError(
                    f"connection to {dest_text(tx.dest)} lost before the final response",
                    target=dest_text(tx.dest)))
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
