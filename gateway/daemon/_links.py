"""The byte links a gateway talks to devices over, by name: a declared port and a table.

Every link (pyserial port, emulated pipe, GATT frame/health link) implements
:class:`Link`. The table routes downlinks by link name and lists link status; it does not
start or stop anything. Whoever adds a link owns its lifecycle: the runtime starts and
stops the serial/emulated links given to it (``stop`` may block, it runs in a thread),
the BLE supervisor its GATT links (on the loop).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

log = logging.getLogger("gateway.daemon")


class Link(Protocol):
    """A byte link to one or more devices (gateway.adapters.transports.ByteLink)."""

    name: str

    def send(self, data: bytes) -> None:
        """Queue bytes for transmission; never blocks the loop."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """May block (a reader thread is joined): the runtime calls it off the loop."""

    def status(self) -> dict[str, Any]:
        """``name``, ``kind``, ``state`` and counters for the status snapshot."""


class LinkTable(Mapping[str, Link]):
    """Links by name. ``send`` never raises for an unknown name (logged: the device moved)."""

    def __init__(self) -> None:
        self._links: dict[str, Link] = {}

    def add(self, link: Link) -> None:
        self._links[link.name] = link

    def remove(self, name: str) -> None:
        self._links.pop(name, None)

    def send(self, link_name: str, data: bytes) -> None:
        link = self._links.get(link_name)
        if link is None:
            log.warning("no link %s for a %d-byte downlink", link_name, len(data))
            return
        link.send(data)

    def status(self) -> list[dict[str, Any]]:
        return [ln.status() for ln in self._links.values()]

    def __getitem__(self, name: str) -> Link:
        return self._links[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)
