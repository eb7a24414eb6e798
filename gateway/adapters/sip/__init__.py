"""SIP adapter: a small user agent for MESSAGE only, and the SCAIP route built on it.

- :class:`SipUserAgent` (:mod:`._ua`): RFC 3261 non-INVITE client and server
  transactions over UDP, TCP and TLS, RFC 3428 MESSAGE, digest authentication (MD5,
  SHA-256, ``qop=auth``) on 401/407. Its collaborators: :mod:`._config` (``UaConfig``,
  ``SipAccount``, ``Transport``), :mod:`._connections` (transports, destination),
  :mod:`._client` (client transactions, timers E/F/K), :mod:`._server` (answers, timer J),
  :mod:`._auth` (answered digest challenges).
- :mod:`._message`: SIP parser/serializer that never raises (fuzzed), bounded sizes.
- :class:`ScaipRoute` (:mod:`._route`): drives :mod:`gateway.domain.scaip` (reply state
  machine, heartbeats) over the UA and reports to a ``ScaipListener``.

Socket, TLS and resolver errors become :class:`SipError` subclasses here. Why our own
UA and not pjsua2: docs/scaip.md, "SIP stack".
"""
from gateway.adapters.sip._config import CONTENT_TYPE, SipAccount, Transport, UaConfig
from gateway.adapters.sip._digest import Challenge, authorization, choose, digest_response, parse_challenge
from gateway.adapters.sip._errors import SipAuthError, SipError, SipStatusError, SipTimeout, SipTransportError
from gateway.adapters.sip._message import (
    MAX_MESSAGE_BYTES,
    Headers,
    SipRejection,
    SipRejectReason,
    SipRequest,
    SipResponse,
    SipUri,
    StreamDecoder,
    parse_message,
    parse_uri,
    top_via,
)
from gateway.adapters.sip._route import ScaipRoute, ScaipSettings
from gateway.adapters.sip._transaction import CLIENT_TRANSITIONS, Timers, TxState
from gateway.adapters.sip._ua import SipUserAgent

__all__ = [
    "CLIENT_TRANSITIONS", "CONTENT_TYPE", "MAX_MESSAGE_BYTES", "Challenge", "Headers", "ScaipRoute", "ScaipSettings",
    "SipAccount", "SipAuthError", "SipError", "SipRejectReason", "SipRejection", "SipRequest", "SipResponse",
    "SipStatusError", "SipTimeout", "SipTransportError", "SipUri", "SipUserAgent", "StreamDecoder", "Timers",
    "Transport", "TxState", "UaConfig", "authorization", "choose", "digest_response", "parse_challenge",
    "parse_message", "parse_uri", "top_via",
]
