"""Ports of the SCAIP route (typing.Protocol), implemented by the forwarder in phase 2."""
from __future__ import annotations

from typing import Protocol

from gateway.domain.model import Event
from gateway.domain.scaip._xml import ScaipReply


class ScaipListener(Protocol):
    """What the SCAIP route reports about each event. Called on the event loop, never
    blocking. Planned implementation: the domain forwarder (docs/scaip.md, "Phase 2")."""

    def scaip_delivered(self, event: Event, reply: ScaipReply | None, *, escalated: bool) -> None:
        """The centre answered ``snu`` 0: mark the event acknowledged in the journal; if it
        had been escalated, stop the local signal."""

    def scaip_escalate(self, event: Event, reason: str) -> None:
        """An alarm has no ``snu`` 0 in time (or the centre answered 5, not treated): send it
        on the other route and signal locally. The SCAIP route keeps re-sending."""

    def scaip_refused(self, event: Event, reply: ScaipReply | None, reason: str) -> None:
        """The centre says our message is wrong (``snu`` 1/2/3/7): raise a technical alarm
        on the other route and send the event there. Never drop it silently."""
