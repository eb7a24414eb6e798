"""Root exception of the SIP adapter; socket and TLS errors are translated into these."""
from __future__ import annotations


class SipError(Exception):
    """A MESSAGE could not be delivered. ``target`` is where it went (host:port),
    ``status`` the final SIP status when there was one."""

    def __init__(self, message: str, *, target: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.target = target
        self.status = status


class SipTimeout(SipError):
    """No final response within timer F (64 × T1): the transaction timed out."""


class SipTransportError(SipError):
    """The socket or TLS session failed (connection refused, reset, certificate mismatch)."""


class SipStatusError(SipError):
    """A final response other than 2xx (after any digest challenge was answered)."""

    def __init__(self, message: str, *, target: str | None = None, status: int | None = None,
                 reason: str = "") -> None:
        super().__init__(message, target=target, status=status)
        self.reason = reason


class SipAuthError(SipStatusError):
    """A 401/407 we cannot answer: no account, no supported algorithm/qop, or the
    credentials were refused (a second non-stale challenge for the same realm)."""
