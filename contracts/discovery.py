"""The zeroconf (mDNS/DNS-SD) contract: how a gateway announces itself on the LAN.

The gateway advertises :data:`SERVICE_TYPE` (its SRV port is the status endpoint's
port) with the TXT properties below; an installer's laptop (``gateway discover``, the
fleet's commissioning) browses the same type and reads the same keys. Constants only:
the zeroconf library is imported by the adapters (gateway/adapters/discovery.py,
fleet/discovery.py), never here.
"""
from __future__ import annotations

SERVICE_TYPE = "_wt-gateway._tcp.local."

# TXT properties of the service
TXT_ID = "id"                    # pseudonymous gateway id
TXT_VERSION = "version"          # gateway software version
TXT_STATUS_PORT = "status_port"  # HTTP status endpoint port (also the SRV port)
TXT_KEYS = (TXT_ID, TXT_VERSION, TXT_STATUS_PORT)

__all__ = ["SERVICE_TYPE", "TXT_ID", "TXT_KEYS", "TXT_STATUS_PORT", "TXT_VERSION"]
