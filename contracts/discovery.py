"""The zeroconf (mDNS/DNS-SD) contract: how a gateway announces itself on the LAN.

The gateway advertises :data:`SERVICE_TYPE` (its SRV port is the status endpoint's
port) with the TXT properties below; an installer's laptop (``gateway discover``, the
fleet's commissioning) browses the same type and reads the same keys. Constants and the
library-free half of browsing (:class:`ServiceNames`, :func:`txt_prop`), shared by both
browsers: the zeroconf library is imported by the adapters (gateway/adapters/discovery.py,
fleet/discovery.py), never here.
"""
from __future__ import annotations

import threading
from collections.abc import Container, Mapping

SERVICE_TYPE = "_wt-gateway._tcp.local."

# TXT properties of the service
TXT_ID = "id"                    # pseudonymous gateway id
TXT_VERSION = "version"          # gateway software version
TXT_STATUS_PORT = "status_port"  # HTTP status endpoint port (also the SRV port)
TXT_KEYS = (TXT_ID, TXT_VERSION, TXT_STATUS_PORT)



def txt_prop(props: Mapping[bytes, bytes | None], key: str) -> str:
    """TXT property ``key`` of a resolved service (zeroconf's ``ServiceInfo.properties``: bytes
    keys and values, a value may be None) as text; "" when absent or empty."""
    v = props.get(key.encode())
    return v.decode("utf-8", "replace") if v else ""


class ServiceNames:
    """The instance names a DNS-SD browse has seen (added or updated; removals are ignored).

    A state-change handler for zeroconf's ``ServiceBrowser(zc, type_, handlers=[names])``, which
    calls it with the keyword arguments ``zeroconf``, ``service_type``, ``name`` and
    ``state_change`` (a ``ServiceStateChange``, compared by name so this module needs no
    zeroconf) from its own thread; :meth:`unseen` is read from the browsing one.
    """

    _COLLECTED = ("Added", "Updated")

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, *, name: str, state_change: object, **_: object) -> None:
        if getattr(state_change, "name", state_change) in self._COLLECTED:
            with self._lock:
                self._names.add(name)

    def unseen(self, seen: Container[str]) -> list[str]:
        """The names collected so far that are not in ``seen``."""
        with self._lock:
            return [n for n in self._names if n not in seen]


__all__ = ["SERVICE_TYPE", "TXT_ID", "TXT_KEYS", "TXT_STATUS_PORT", "TXT_VERSION", "ServiceNames", "txt_prop"]
