"""Helpers shared by the fleet-ops command modules (config, release, rollout, monitor, stats)."""
from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone


class WallClock:
    """Adapts cfg.clock (a callable) to the ``.time()`` clock port of the domain packages."""

    def __init__(self, fn) -> None:
        self._fn = fn

    def time(self) -> float:
        return self._fn()


def add_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--broker", default=None, metavar="HOST:PORT",
                   help="MQTT broker (default: $FLEET_MQTT or 127.0.0.1:1883)")
    return p


def connect_broker(args, *, client_id: str, manual_ack: bool = False):
    from ..mqtt import MqttClient, parse_broker

    host, port = parse_broker(args.broker or os.environ.get("FLEET_MQTT") or "127.0.0.1:1883")
    return MqttClient(host, port, client_id=client_id, manual_ack=manual_ack).connect()


def parse_day(text: str) -> float:
    """``YYYY-MM-DD`` (UTC midnight) or an RFC 3339 time -> epoch seconds."""
    from ..errors import ValidationError

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-01") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
