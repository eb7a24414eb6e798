"""The forwarder's leg at a SCAIP alarm receiving centre (docs/scaip.md): the route's listener.

:class:`CentreLeg` owns the SCAIP route (:class:`~gateway.domain.scaip.CentreRoute`, built by
the factory with the leg as its :class:`~gateway.domain.scaip.ScaipListener`) and the
:class:`~gateway.domain.scaip.CentreFeed` (follow-ups in journal order). It decides whether an
alarm copy goes to the centre and translates what the centre answers into the forwarder's
own steps, through the small :class:`AlarmDesk` port — never into its internals:

- ``snu`` 0 on an alarm: the leg's table moves ``open`` → ``done`` and the alarm is
  acknowledged exactly like the platform's ``received`` ack (:meth:`AlarmDesk.acknowledge`);
  on a follow-up: the feed is done with it.
- no ``snu`` 0 in time (or ``snu`` 5): the forwarder's escalation, once per alarm.
- ``snu`` 1/2/3/7 (or not encodable): the leg moves ``open`` → ``refused``; the alarm is
  escalated on the other routes, or a technical alarm ``alarm_unacknowledged`` (``data.reason``
  ``scaip_refused``) is raised there — never silently dropped, never a technical alarm
  about a technical alarm.

Invariant: every alarm reaches the centre at most once per lifecycle (its
:class:`~gateway.domain.alarms.CentreState` leaves ``none`` once): the route re-sends it by
itself with the same ``ref`` until the centre answers. Pure; runs on the event loop.
"""
from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Protocol

from gateway.domain.alarm_book import AlarmBook
from gateway.domain.alarms import Alarm, AlarmEvent, AlarmState, CentreEvent, CentreState
from gateway.domain.journal_types import AppendResult
from gateway.domain.model import Event, EventCode
from gateway.domain.payload import AckStatus
from gateway.domain.ports import Clock
from gateway.domain.scaip import CentreFeed, CentreRoute, ScaipListener, ScaipReply
from gateway.domain.uplink_ports import JournalFront

__all__ = ["AlarmDesk", "CentreFactory", "CentreLeg"]

log = logging.getLogger(__name__)

CentreFactory = Callable[[ScaipListener], CentreRoute]


class AlarmDesk(Protocol):
    """What the leg asks of the forwarder (implemented by :class:`gateway.domain.forwarder.Forwarder`)."""

    def acknowledge(self, event_id: str, status: AckStatus, *, by: AlarmEvent,
                    event: Event | None = None) -> None: ...

    def escalate(self, a: Alarm, cause: dict[str, Any]) -> None: ...

    def raise_technical(self, code: EventCode, data: dict[str, Any] | None = None, *,
                        avoid_centre: bool = False) -> None: ...


class CentreLeg:
    """The SCAIP centre as one of the forwarder's alarm routes (see module doc).

    ``first``: alarms go to the centre alone before MQTT (``[scaip] role = "primary"``);
    ``owns_delivery``: no MQTT route, the feed marks journal rows delivered;
    ``window``: follow-ups open at the centre at once.
    """

    def __init__(self, factory: CentreFactory, *, desk: AlarmDesk, book: AlarmBook, journal: JournalFront,
                 clock: Clock, stats: collections.Counter, first: bool = True, window: int = 8,
                 owns_delivery: bool = False) -> None:
        self._desk = desk
        self._book = book
        self._clock = clock
        self.stats = stats
        self.first = first
        self.route: CentreRoute = factory(self)
        self.feed = CentreFeed(journal=journal, route=self.route, window=window,  # type: ignore[arg-type]
                               owns_delivery=owns_delivery, stats=stats)

    # ---- lifecycle (driven by the forwarder) ---------------------------------------------
    def start(self) -> None:
        self.feed.start()

    def poll(self, now: float) -> None:
        self.feed.poll(now)

    def flush(self, now: float) -> None:
        self.feed.flush(now)

    def stored(self, e: Event, r: AppendResult) -> None:
        """A non-alarm event's journal outcome: the feed decides whether the centre gets it."""
        self.feed.stored(e, r)

    # ---- alarms to the centre ------------------------------------------------------------
    def takes(self, a: Alarm, *, all_routes: bool, mqtt_up: bool) -> bool:
        """Whether this copy of ``a`` goes to the centre: never handed yet, and the centre
        comes first, or no broker is up, or it is an escalation (every route)."""
        return a.centre is CentreState.NONE and (all_routes or self.first or not mqtt_up)

    def hand(self, a: Alarm) -> None:
        """Give ``a`` to the SCAIP route (non-blocking; the route reports back, never from inside)."""
        a.centre_fire(CentreEvent.HANDED)
        self.route.submit(a.event)
        self.stats["centre_submissions"] += 1
        a.record.route = self.route.route

    def status(self) -> dict[str, Any]:
        """The route's status with the feed's (``gateway status`` ``scaip``)."""
        scaip = self.route.status()
        scaip["feed"] = self.feed.status()
        return scaip

    # ---- ScaipListener ---------------------------------------------------------------------
    def scaip_delivered(self, event: Event, reply: ScaipReply | None, *, escalated: bool,
                        at: float | None = None) -> None:
        """``snu`` 0: an alarm is acknowledged as by the platform's ``received``; a follow-up is
        done. ``at``: when the answer reached the gateway's socket (latency, like a PUBACK's)."""
        if not event.is_alarm:
            self.stats["centre_followups_delivered"] += 1
            self.feed.finished(event.event_id)
            return
        self.stats["centre_acks"] += 1
        a = self._book.get(event.event_id)
        if a is None and self._book.acknowledged(event.event_id):
            return                        # the platform acknowledged it first: nothing changes
        if a is not None:
            if a.centre is CentreState.OPEN:
                a.centre_fire(CentreEvent.SNU_OK)
            rec = a.record
            rec.snu = 0
            rec.centre_latency_ms = round(((at if at is not None else self._clock.time()) - event.received_at)
                                          * 1000.0, 3)
            if rec.latency_ms is None:
                rec.latency_ms = rec.centre_latency_ms
        self._desk.acknowledge(event.event_id, AckStatus.RECEIVED, by=AlarmEvent.CENTRE_ACK, event=event)

    def scaip_escalate(self, event: Event, reason: str) -> None:
        """The centre did not answer ``snu`` 0 in time (or said 5): the forwarder's escalation."""
        a = self._book.get(event.event_id)
        if a is None or a.escalations or a.state is AlarmState.ACKNOWLEDGED:
            self.stats["centre_escalations_ignored"] += 1     # acknowledged meanwhile, or escalated already
            return
        self.stats["centre_escalations"] += 1
        self._desk.escalate(a, {"reason": "scaip_no_answer", "detail": reason, "route": "scaip"})

    def scaip_refused(self, event: Event, reply: ScaipReply | None, reason: str) -> None:
        """``snu`` 1/2/3/7 (or not encodable): the centre never takes this message. A technical
        alarm on the other routes, the alarm itself there too; never dropped silently."""
        self.stats["centre_refused"] += 1
        snu = int(reply.snu) if reply is not None else None
        detail = reason + (f" ({reply.ste})" if reply is not None and reply.ste else "")
        log.error("the alarm centre refused %s %s: %s", event.code.type_name, event.event_id, detail)
        cause = {"reason": "scaip_refused", "snu": snu, "detail": detail, "route": "scaip"}
        a = self._book.get(event.event_id) if event.is_alarm else None
        if a is not None:
            if a.centre is CentreState.OPEN:
                a.centre_fire(CentreEvent.SNU_WRONG)
            a.record.snu = snu
            if not a.escalations:
                self._desk.escalate(a, cause)        # other routes, signal, technical alarm
                return
        if not event.is_alarm:
            self.feed.finished(event.event_id)     # MQTT carries it as telemetry (if there is MQTT)
        if event.code is EventCode.ALARM_UNACKNOWLEDGED:
            self.stats["centre_refused_technical"] += 1   # never a technical alarm about a technical alarm
            return
        self._desk.raise_technical(EventCode.ALARM_UNACKNOWLEDGED, {
            "event_id": event.event_id, "device": event.device_id, "type": event.code.type_name, **cause},
            avoid_centre=True)
