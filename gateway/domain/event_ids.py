"""Ids of the events the gateway raises itself (rule alarms, technical alarms); docs/mqtt.md.

- ``<gateway>-g<counter:010d>``: the normal case. The counter is the journal's durable
  gateway counter (reserved in blocks, never reused), so the id is the platform's
  idempotency key across re-sends and restarts.
- ``<gateway>-t<epoch ms:013d>``: the fallback when no counter can be reserved (disk full,
  block used up). An alarm is never dropped for want of an id: it gets a time-based one.

:class:`GatewayEventIds` issues both: the counter id, else a time-based id that never
repeats within the issuer (two alarms in one millisecond get consecutive milliseconds, so
the journal's de-duplication on ``event_id`` cannot swallow the second). One gateway
should have one issuer, shared by everything that raises events (the forwarder's
technical alarms and the rule engine), so their fallback ids cannot collide either.
"""
from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("gateway.domain.event_ids")


class GatewayCounter(Protocol):
    def next_gateway_counter(self) -> int:
        """Durable counter for gateway-raised event ids; never reused. May raise (disk full)."""


def gateway_event_id(gateway_id: str, counter: int) -> str:
    """``<gateway>-g<counter:010d>``."""
    return f"{gateway_id}-g{counter:010d}"


def time_based_event_id(gateway_id: str, now: float) -> str:
    """``<gateway>-t<epoch ms:013d>``: when the gateway counter is unavailable."""
    return _time_id(gateway_id, int(now * 1000))


def _time_id(gateway_id: str, epoch_ms: int) -> str:
    return f"{gateway_id}-t{epoch_ms:013d}"


def is_gateway_event_id(gateway_id: str, event_id: str) -> bool:
    """True for an id this gateway assigned itself (either form)."""
    return event_id.startswith((f"{gateway_id}-g", f"{gateway_id}-t"))


class GatewayEventIds:
    """The issuer of one gateway's own event ids (see the module doc)."""

    def __init__(self, gateway_id: str, counter: GatewayCounter) -> None:
        self.gateway_id = gateway_id
        self.counter = counter
        self.time_based = 0            # ids issued without a counter (health/diagnostics)
        self._last_ms = -1

    def next(self, now: float) -> str:
        """The next id: ``-g<counter>``, or ``-t<ms>`` (unique here) when the counter fails.
        ``now`` is the wall clock of the raising event (epoch seconds)."""
        try:
            return gateway_event_id(self.gateway_id, self.counter.next_gateway_counter())
        except Exception as exc:  # noqa: BLE001 - hwm file unwritable and the block used up
            log.error("gateway counter unavailable (%s); using a time-based event id", exc)
            ms = max(int(now * 1000), self._last_ms + 1)
            self._last_ms = ms
            self.time_based += 1
            return _time_id(self.gateway_id, ms)


__all__ = ["GatewayCounter", "GatewayEventIds", "gateway_event_id", "is_gateway_event_id", "time_based_event_id"]
