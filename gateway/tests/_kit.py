"""Plain helpers shared by the gateway tests (fixtures are in conftest.py).

The reusable test kit lives in ``gateway/testing`` (clock, stimuli, waiting, platform
simulator, broker, emulator); this module holds what only these tests need:

- paths: :data:`ROOT` (the repository), :data:`GATEWAY_EXE` (the installed ``gateway`` script);
- :func:`open_pty`: a raw pseudo-terminal for serial-link tests;
- in-memory fakes of domain ports: :class:`FakeJournal` (Journal: events, state, gateway
  counter — with a switch to make the counter fail as on a full disk), :class:`FakeSink`
  (EventSink);
- :func:`offline_config` / :class:`OfflineGateway`: the real composition root wired to a
  :class:`~gateway.testing.clock.FakeClock` and a FakePublisher, without serial, status
  server or zeroconf.
"""
from __future__ import annotations

import asyncio
import os
import sys
import tty
from pathlib import Path
from typing import Any, Callable

from gateway.domain.model import Event

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_EXE = str(Path(sys.executable).with_name("gateway"))


def open_pty() -> tuple[int, str]:
    """(master fd, slave path) of a raw pty; the slave is closed (the gateway opens it by path)."""
    master, slave = os.openpty()
    tty.setraw(master)
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


class FakeJournal:
    """In-memory Journal port: what ingress and the rule engine use.

    ``events`` by id, ``state`` (the key-value store), ``appends``/``state_writes`` counts,
    ``counter`` the last gateway counter handed out. Set ``counter_error`` to an exception
    and ``next_gateway_counter`` raises it (the high-water-mark file cannot be written).
    """

    def __init__(self, counter: int = 0) -> None:
        self.events: dict[str, Event] = {}
        self.state: dict[str, bytes] = {}
        self.appends = 0
        self.state_writes = 0
        self.counter = counter
        self.counter_error: Exception | None = None

    def append(self, event: Event) -> bool:
        self.appends += 1
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        return True

    def contains(self, event_id: str) -> bool:
        return event_id in self.events

    def get_state(self, key: str) -> bytes | None:
        return self.state.get(key)

    def set_state(self, key: str, value: bytes) -> None:
        self.state[key] = bytes(value)
        self.state_writes += 1

    def next_gateway_counter(self) -> int:
        if self.counter_error is not None:
            raise self.counter_error
        self.counter += 1
        return self.counter


class FakeSink:
    """EventSink that records what was submitted (``events``) and reports it stored at once."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event, on_stored: Callable[[Event, bool], None] | None = None) -> None:
        self.events.append(event)
        if on_stored is not None:
            on_stored(event, True)


def offline_config(tmp_path: Path, gateway_id: str = "gw-test", **sections: Any):
    """A validated config for an in-process gateway: journal under ``tmp_path``, no status
    server, no zeroconf; ``sections`` are config overrides (``devices={...}``, ``ble={...}``)."""
    from gateway.config import load_config

    overrides: dict[str, Any] = {"gateway": {"id": gateway_id, "data_dir": str(tmp_path / "gw")},
                                 "status": {"enabled": False}, "discovery": {"enabled": False}}
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_config(None, env={}, overrides=overrides)


class OfflineGateway:
    """The real wiring (bootstrap: journal + writer, ingress, forwarder, rule engine) on a
    private event loop the test drives, with a FakeClock and a FakePublisher route.
    ``settle()`` lets the journal writer and the loop catch up; ``close()`` tears down."""

    def __init__(self, tmp_path: Path, gateway_id: str = "gw-test", **sections: Any) -> None:
        from gateway.daemon import bootstrap
        from gateway.testing.clock import FakeClock
        from gateway.testing.platform import FakePublisher

        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.pub = FakePublisher(clock=self.clock)
        self.cfg = offline_config(tmp_path, gateway_id, **sections)
        self.rt = bootstrap(self.cfg, clock=self.clock, loop=self.loop, publisher=self.pub, serial=False,
                            advertise=False)

    def settle(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            self.rt.writer.run_pending()
            self.loop.run_until_complete(asyncio.sleep(0))

    def published(self, leaf: str | None = None) -> list[Any]:
        """Decoded publications (wt.alarm/1 / wt.event/1 ...), optionally only on topics ending ``/leaf``."""
        from gateway.domain.payload import Published, decode_published

        out = [decode_published(p.payload) for p in self.pub.published
               if leaf is None or p.topic.endswith("/" + leaf)]
        return [d for d in out if isinstance(d, Published)]

    def close(self) -> None:
        try:
            self.rt.writer.stop()
        finally:
            self.rt.journal.close()
            self.loop.close()
