"""An emulated home: devices wired to a gateway through emulated links and air."""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Callable, Iterator

from gateway.testing.emulator._device import AdvertDevice, Emitted, FrameDevice
from gateway.testing.emulator.devices import DEVICE_CLASSES
from gateway.domain.model import Role
from gateway.domain.ports import Clock
from gateway.testing.emulated_link import EmulatedAir, EmulatedLink

DEMO_ROLES = (Role.BUTTON, Role.FALL, Role.BED, Role.DOOR, Role.DISPENSER, Role.GPS)


def device_id_for(index: int, prefix: str = "e0") -> str:
    """Deterministic pseudonymous ids for emulated devices: e0 + 10 hex digits."""
    return f"{prefix}{index:010x}"


def key_for(device_id: str, secret: bytes = b"wt-emulator") -> bytes:
    """Deterministic per-device 16-byte key (emulation only; real keys come from the fleet)."""
    return hashlib.sha256(secret + device_id.encode()).digest()[:16]


def home_devices(count: int = len(DEMO_ROLES), roles: tuple[Role, ...] = DEMO_ROLES) -> list[tuple[str, Role, bytes]]:
    """(device id, role, key) for ``count`` devices cycling through ``roles``."""
    out = []
    for i in range(count):
        dev = device_id_for(i + 1)
        out.append((dev, roles[i % len(roles)], key_for(dev)))
    return out


class EmulatedHome:
    """Builds the devices, connects them to the gateway, and ticks them (heartbeats, retries)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock,
                 devices: list[tuple[str, Role, bytes]], *, heartbeat_s: float = 30.0, retry_s: float = 2.0,
                 advert_repeats: int = 3, on_emit: Callable[[Emitted], None] | None = None) -> None:
        self.loop = loop
        self.clock = clock
        self.air = EmulatedAir(loop)
        self.links: dict[str, EmulatedLink] = {}
        self.devices: dict[str, FrameDevice | AdvertDevice] = {}
        for dev_id, role, key in devices:
            cls: Any = DEVICE_CLASSES[role]
            if issubclass(cls, AdvertDevice):
                d: Any = cls(dev_id, key, clock, heartbeat_s=heartbeat_s, repeats=advert_repeats, on_emit=on_emit)
                d.attach(self.air, loop)
            else:
                d = cls(dev_id, key, clock, heartbeat_s=heartbeat_s, retry_s=retry_s, on_emit=on_emit)
                link = EmulatedLink(f"emu:{dev_id}", loop)
                d.attach(link)
                self.links[link.name] = link
            self.devices[dev_id] = d
        self._task: asyncio.Task | None = None

    def by_role(self, role: Role) -> Any:
        return next(d for d in self.devices.values() if d.role is role)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.devices.values())

    def emitted(self) -> list[Emitted]:
        return [e for d in self.devices.values() for e in d.emitted]

    def boot(self) -> None:
        for d in self.devices.values():
            if isinstance(d, FrameDevice):
                d.hello()
            d.heartbeat()

    def tick(self) -> None:
        for d in self.devices.values():
            d.tick()

    def start(self, interval_s: float = 0.2) -> None:
        async def run() -> None:
            while True:
                self.tick()
                await asyncio.sleep(interval_s)
        self.boot()
        self._task = self.loop.create_task(run(), name="emulated-home")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def unacked(self) -> int:
        return sum(len(d.outbox) for d in self.devices.values() if isinstance(d, FrameDevice))
