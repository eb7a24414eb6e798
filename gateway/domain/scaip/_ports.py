"""Ports of the SCAIP route (typing.Protocol): what the route tells the forwarder
(:class:`ScaipListener`, implemented by :class:`gateway.domain.centre_leg.CentreLeg`) and
what the forwarder asks of the route (:class:`CentreRoute`, implemented by
:class:`gateway.adapters.sip.ScaipRoute`)."""
from __future__ import annotations

from typing import Any, Protocol

from gateway.domain.model import Event, EventCode
from gateway.domain.scaip._xml import ScaipReply


class ScaipListener(Protocol):
    """What the SCAIP route reports about each event. Called on the event loop, never
    blocking, never from inside :meth:`CentreRoute.submit`."""

    def scaip_delivered(self, event: Event, reply: ScaipReply | None, *, escalated: bool,
                        at: float | None = None) -> None:
        """The centre answered ``snu`` 0: mark the event acknowledged in the journal; if it
        had been escalated, stop the local signal. ``at``: when the answer reached the
        gateway (wall clock; None = now)."""

    def scaip_escalate(self, event: Event, reason: str) -> None:
        """An alarm has no ``snu`` 0 in time (or the centre answered 5, not treated): send it
        on the other route and signal locally. The SCAIP route keeps re-sending."""

    def scaip_refused(self, event: Event, reply: ScaipReply | None, reason: str) -> None:
        """The centre says our message is wrong (``snu`` 1/2/3/7), or it cannot be encoded:
        raise a technical alarm on the other route and send the event there. Never drop it
        silently."""


class CentreRoute(Protocol):
    """The SCAIP route as the forwarder sees it."""

    route: str

    @property
    def healthy(self) -> bool:
        """The centre answered a heartbeat recently."""

    def submit(self, event: Event) -> str | None:
        """Track and send ``event`` (non-blocking; re-sent with the same ``ref`` until the
        centre answers). Returns the ``ref``, or None when the route does not carry this
        event (an information event without ``send_info``) or cannot encode it (then the
        listener hears ``scaip_refused`` soon after)."""

    def carries(self, code: EventCode) -> bool:
        """Whether events of this code go to the centre (alarms and follow-ups always;
        information events only with ``send_info``)."""

    def status(self) -> dict[str, Any]: ...
