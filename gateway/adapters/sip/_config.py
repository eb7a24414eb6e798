"""What the SIP user agent is configured with: transport, account, timers, addresses.

Invariant: a :class:`UaConfig` is frozen and holds every default the UA uses (RFC 3261's
timers, MESSAGE size bound, connect timeout); the UA's collaborators (:mod:`._connections`,
:mod:`._client`, :mod:`._server`, :mod:`._auth`) read it and never change it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from gateway.adapters.sip._errors import SipError
from gateway.adapters.sip._message import MAX_MESSAGE_BYTES, SipRequest, SipResponse
from gateway.adapters.sip._transaction import Timers
from gateway.adapters.sip._transport import Peer

__all__ = ["ALLOW", "CONTENT_TYPE", "FinalHandler", "RequestHandler", "SipAccount", "Transport", "UaConfig"]

CONTENT_TYPE = "application/scaip+xml"
ALLOW = "MESSAGE, OPTIONS"


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
