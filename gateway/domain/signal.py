"""LocalSignal implementations (the port is gateway.domain.uplink_ports.LocalSignal)."""
from __future__ import annotations

import logging

from gateway.domain.model import Event

log = logging.getLogger("gateway.local_signal")


class LoggingLocalSignal:
    """Logs the escalation and remembers which alarms are being signalled.

    A hardware implementation (buzzer/LED via GPIO) replaces it in the composition root.
    """

    def __init__(self) -> None:
        self.active: dict[str, Event] = {}

    def alarm_unacknowledged(self, event: Event) -> None:
        self.active[event.event_id] = event
        log.critical("LOCAL SIGNAL ON: alarm %s (%s from %s) not acknowledged by the platform",
                     event.event_id, event.code.type_name, event.device_id)

    def alarm_acknowledged(self, event: Event) -> None:
        if self.active.pop(event.event_id, None) is not None:
            log.warning("local signal off: alarm %s acknowledged", event.event_id)
