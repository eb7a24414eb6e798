"""Secure by default: TLS to the broker unless the broker is this machine (called by ``_validate``).

The schema's defaults are ``port = 8883`` and ``tls.enabled = true`` for ``[uplink]`` and
``[uplink.fallback]``. One exception keeps the private brokers of the demo, the tests and a
local bridge working without certificates: when ``tls.enabled`` is **not set** in any source,
the broker is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``), the port is not
the TLS port 8883 and no CA or client certificate is given, the connection is plain. A
connection that leaves the machine is TLS unless ``enabled = false`` is written out — and
then a password is refused: it would cross the network in clear (finding F18,
docs/security.md).
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, Mapping

from contracts.gateway_config._errors import ConfigIssue
from contracts.gateway_config._schema import GatewayConfig, TlsSection

TLS_PORT = 8883


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (the broker runs on this machine)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _given(data: Mapping[str, Any], *path: str) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _auto_plain(tls: TlsSection, host: str, port: int) -> bool:
    return is_loopback(host) and port != TLS_PORT and not (tls.ca or tls.cert or tls.key)


def resolve_tls(cfg: GatewayConfig, data: Mapping[str, Any]) -> GatewayConfig:
    """``cfg`` with ``tls.enabled`` turned off where it was left unset and the broker is local (above)."""
    up = cfg.uplink
    tls, fb = up.tls, up.fallback
    if not _given(data, "uplink", "tls", "enabled") and _auto_plain(up.tls, up.host, up.port):
        tls = dataclasses.replace(up.tls, enabled=False)
    if not _given(data, "uplink", "fallback", "tls", "enabled") and _auto_plain(fb.tls, fb.host, fb.port):
        fb = dataclasses.replace(fb, tls=dataclasses.replace(fb.tls, enabled=False))
    if tls is up.tls and fb is up.fallback:
        return cfg
    return dataclasses.replace(cfg, uplink=dataclasses.replace(up, tls=tls, fallback=fb))


def transport_issues(cfg: GatewayConfig) -> list[ConfigIssue]:
    """A password over plain MQTT to another machine is refused (the key, the host and the fix)."""
    out: list[ConfigIssue] = []
    up = cfg.uplink
    routes = [("uplink", up.host, up.tls, up.enabled)]
    routes.append(("uplink.fallback", up.fallback.host, up.fallback.tls, up.enabled and up.fallback.enabled))
    for name, host, tls, used in routes:
        if used and tls.password and not tls.enabled and not is_loopback(host):
            out.append(ConfigIssue(
                f"{name}.tls.enabled", False,
                f"{name}.tls.password is set but TLS is off: the password would cross the network in clear "
                f"to {host}",
                f"set enabled = true in [{name}.tls] (and port = {TLS_PORT}), or remove password "
                "(plain MQTT with a password only to a broker on this machine, e.g. host = \"127.0.0.1\")"))
    return out
