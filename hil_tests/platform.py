"""The HIL benches' response platform: the test kit's one platform simulator on its own
bare paho connection (it shares no code with the gateway under test).

See :class:`gateway.testing.platform.PlatformSim`: it subscribes to the gateway and
tracker alarm/event topics and the gateways' state, de-duplicates on ``event_id``
(counting duplicates), measures latency from the event's ``received_at``/``occurred_at``
to arrival, and publishes ``wt.ack/1`` for every alarm (``accepted`` too if asked).
"""
from __future__ import annotations

from typing import Callable

from gateway.testing.platform import Arrival, PahoLink, PlatformSim

__all__ = ["Arrival", "PlatformStub"]


class PlatformStub(PlatformSim):
    def __init__(self, host: str, port: int, ack: bool = True, accept: bool = False,
                 client_id: str = "hil-platform", on_arrival: Callable[[Arrival], None] | None = None) -> None:
        super().__init__(PahoLink(host, port, client_id=client_id), auto_ack=ack, accept=accept, by=client_id,
                         on_arrival=on_arrival, owns_link=True)

    def start(self, timeout_s: float = 10.0) -> "PlatformStub":  # type: ignore[override]
        super().start(devices=True, state=True, timeout_s=timeout_s)
        return self
