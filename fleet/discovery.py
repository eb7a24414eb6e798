"""Zeroconf (mDNS/DNS-SD) adapter of the fleet: find gateways on the installer's LAN.

The only fleet module that imports python-zeroconf (imported lazily by its users, so the
fleet's domain and CLI help never load it). It browses the service type of
:mod:`contracts.discovery` — the one the gateway advertises — and reads the TXT
properties the gateway publishes (``contracts.discovery.TXT_*``). Zeroconf errors
become :class:`DiscoveryError`. The fleet never imports the gateway's own adapter.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf

from contracts.discovery import (
    SERVICE_TYPE,
    TXT_ID,
    TXT_VERSION,
    ServiceNames,
    txt_prop,
)
from fleet.errors import FleetError


class DiscoveryError(FleetError):
    """mDNS could not be used (no sockets on the interface, ...)."""

    code = "discovery_error"


@dataclass(frozen=True)
class FoundGateway:
    id: str
    version: str
    host: str
    port: int


def browse(timeout_s: float, *, interfaces: tuple[str, ...] = (), service_type: str = SERVICE_TYPE,
           stop_at: str | None = None) -> list[FoundGateway]:
    """Browse for up to ``timeout_s`` (blocking) and resolve every gateway found, sorted by id.

    With ``stop_at`` (a gateway id) it returns as soon as that gateway is resolved.
    """
    try:
        zc = Zeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All, ip_version=IPVersion.V4Only)
    except OSError as exc:
        raise DiscoveryError(f"cannot open mDNS sockets ({exc}); choose another interface with --mdns-interface",
                             service_type=service_type) from None
    names_seen = ServiceNames()
    found: dict[str, FoundGateway] = {}
    try:
        browser = ServiceBrowser(zc, service_type, handlers=[names_seen])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            names = names_seen.unseen(found)
            for name in names:
                info = zc.get_service_info(service_type, name, timeout=1000)
                if info is None:
                    continue
                addresses = info.parsed_addresses()
                host = addresses[0] if addresses else (info.server or "").rstrip(".")
                gw = FoundGateway(txt_prop(info.properties, TXT_ID) or name.split(".")[0],
                                  txt_prop(info.properties, TXT_VERSION), host, info.port or 0)
                found[name] = gw
                if gw.id == stop_at:
                    browser.cancel()
                    return [gw]
            time.sleep(0.1)
        browser.cancel()
    finally:
        zc.close()
    return sorted(found.values(), key=lambda g: g.id)
