"""Server side of the SIP user agent: requests from the centre (or anyone) get one answer.

A MESSAGE (the centre's separate reply) is handed to the request handler, whose return
value is the status we answer (200 by default, 500 when the handler fails); OPTIONS gets
200, INVITE 488 (a gateway has no voice path), BYE/CANCEL 481, anything else 405; an ACK
gets nothing.

Invariant (RFC 3261 17.2, server transactions): a request is decided once; its
retransmissions (same top-Via branch, sent-by and method) get the same response bytes
again for timer J (64·T1 over UDP, 0 over TCP/TLS). At most :data:`MAX_SERVER_TX` answers
are kept (bounded against floods). A request without a Via branch is refused unanswered.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Callable

from gateway.adapters.sip._config import ALLOW, CONTENT_TYPE, RequestHandler, UaConfig
from gateway.adapters.sip._errors import SipError
from gateway.adapters.sip._message import Headers, SipRequest, SipResponse, tag_of, top_via
from gateway.adapters.sip._transport import Peer, Reply, StreamConnection

__all__ = ["MAX_SERVER_TX", "ServerTransactions"]

log = logging.getLogger(__name__)

MAX_SERVER_TX = 1024      # answered requests kept for retransmissions (bounded against floods)
REASONS = {100: "Trying", 200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 415: "Unsupported Media Type", 481: "Call/Transaction Does Not Exist",
           486: "Busy Here", 488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable"}


class ServerTransactions:
    """See the module doc. ``handler``: the MESSAGE handler (settable); ``token``: a fresh
    random token (To tags); ``rejects``: the UA's counter of refused input."""

    def __init__(self, config: UaConfig, *, handler: RequestHandler | None, token: Callable[[], str],
                 stats: collections.Counter[str], rejects: collections.Counter[str]) -> None:
        self.config = config
        self.handler = handler
        self._token = token
        self.stats = stats
        self.rejects = rejects
        self._server: collections.OrderedDict[tuple[str, str, str], bytes] = collections.OrderedDict()

    def on_request(self, req: SipRequest, reply: Reply, peer: Peer, conn: StreamConnection | None) -> None:
        """A request from any transport (``conn`` None: UDP): answer it, or repeat the answer."""
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
        while len(self._server) > MAX_SERVER_TX:
            self._server.popitem(last=False)
        loop = asyncio.get_running_loop()
        loop.call_later(self.config.timers.j(conn is not None), self._server.pop, key, None)
        self._safe_reply(reply, data)

    def _decide(self, req: SipRequest, peer: Peer) -> tuple[int, list[tuple[str, str]]]:
        if req.method == "MESSAGE":
            if self.handler is None:
                return 200, []
            try:
                return int(self.handler(req, peer)), []
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
        return SipResponse(status, REASONS.get(status, "Unknown"), Headers.of(pairs))

    def _safe_reply(self, reply: Reply, data: bytes) -> None:
        try:
            reply(data)
        except SipError as exc:
            self.stats["reply_failures"] += 1
            log.warning("sip: could not answer a request: %s", exc)
