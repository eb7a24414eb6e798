"""Zeroconf (mDNS/DNS-SD) adapter: advertise this gateway, discover gateways on the LAN.

The only gateway module that imports python-zeroconf. The service type and its TXT
properties are the shared contract :mod:`contracts.discovery`: ``id`` (pseudonymous gateway
id), ``version`` and ``status_port`` (the port is also the SRV port), so a technician's
laptop (``gateway discover``, the fleet's commissioning) can find the gateway and read its
status endpoint.
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf
from zeroconf.asyncio import AsyncZeroconf

from contracts.discovery import (
    SERVICE_TYPE,
    TXT_ID,
    TXT_STATUS_PORT,
    TXT_VERSION,
    ServiceNames,
    txt_prop,
)
from gateway.errors import GatewayError

log = logging.getLogger("gateway.adapters.discovery")

DEFAULT_SERVICE_TYPE = SERVICE_TYPE   # the contract: contracts/discovery.py


class DiscoveryError(GatewayError):
    """Root exception of gateway.adapters.discovery (zeroconf errors are translated to it)."""

    def __init__(self, message: str, *, service_type: str = "") -> None:
        super().__init__(message)
        self.service_type = service_type


@dataclass(frozen=True)
class FoundGateway:
    id: str
    version: str
    host: str
    addresses: tuple[str, ...]
    port: int
    status_url: str
    name: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interfaces(interfaces: tuple[str, ...] | list[str]) -> Any:
    from zeroconf import InterfaceChoice

    return list(interfaces) if interfaces else InterfaceChoice.All


def _addresses_for(interfaces: tuple[str, ...] | list[str]) -> list[bytes]:
    ips = [i for i in interfaces if _is_ipv4(i)]
    if not ips:
        try:
            ips = [socket.gethostbyname(socket.gethostname())]
        except OSError:
            ips = ["127.0.0.1"]
    return [socket.inet_aton(i) for i in ips]


def _is_ipv4(text: str) -> bool:
    try:
        socket.inet_aton(text)
        return text.count(".") == 3
    except OSError:
        return False


class GatewayAdvertiser:
    """Registers the gateway's service on the loop (AsyncZeroconf)."""

    def __init__(self, gateway_id: str, version: str, status_port: int, *,
                 service_type: str = DEFAULT_SERVICE_TYPE, interfaces: tuple[str, ...] = ()) -> None:
        self.service_type = service_type
        self.interfaces = tuple(interfaces)
        self.info = ServiceInfo(
            service_type, f"{gateway_id}.{service_type}",
            addresses=_addresses_for(self.interfaces), port=status_port,
            properties={TXT_ID: gateway_id, TXT_VERSION: version, TXT_STATUS_PORT: str(status_port)},
            server=f"{gateway_id}.local.",
        )
        self._azc: AsyncZeroconf | None = None

    async def async_start(self) -> None:
        try:
            self._azc = AsyncZeroconf(interfaces=_interfaces(self.interfaces), ip_version=IPVersion.V4Only)
            await self._azc.async_register_service(self.info, allow_name_change=True)
        except Exception as exc:  # zeroconf raises many types (OSError, NonUniqueNameException, ...)
            await self.async_stop()
            raise DiscoveryError(f"cannot advertise {self.info.name}: {exc}", service_type=self.service_type) from exc
        log.info("advertising %s on %s", self.info.name, ", ".join(self.interfaces) or "all interfaces")

    async def async_stop(self) -> None:
        azc, self._azc = self._azc, None
        if azc is None:
            return
        try:
            await azc.async_unregister_all_services()
        except Exception:  # best effort on shutdown
            log.debug("unregister failed", exc_info=True)
        await azc.async_close()


def discover(timeout_s: float = 3.0, *, service_type: str = DEFAULT_SERVICE_TYPE,
             interfaces: tuple[str, ...] = ()) -> list[FoundGateway]:
    """Browse for ``timeout_s`` and resolve every gateway found (blocking)."""
    try:
        zc = Zeroconf(interfaces=_interfaces(interfaces), ip_version=IPVersion.V4Only)
    except OSError as exc:
        raise DiscoveryError(f"cannot open mDNS sockets: {exc}", service_type=service_type) from exc
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
                addrs = tuple(info.parsed_addresses())
                gw_id = txt_prop(info.properties, TXT_ID) or name.split(".")[0]
                host = addrs[0] if addrs else (info.server or "").rstrip(".")
                found[name] = FoundGateway(
                    id=gw_id, version=txt_prop(info.properties, TXT_VERSION), host=host, addresses=addrs,
                    port=info.port or 0, status_url=f"http://{host}:{info.port}/status", name=name)
            time.sleep(0.1)
        browser.cancel()
    finally:
        zc.close()
    return sorted(found.values(), key=lambda g: g.id)
