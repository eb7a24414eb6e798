"""``gateway run``'s main loop: signals, the GIL switch interval, the service manager's
notifications (gateway/daemon/_service.py), and the gateway served with its fleet
configuration layer (re-bootstrapped in place on a push: gateway/daemon/_config_push.py)."""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from typing import Any, Callable

from gateway.adapters.systemd import SystemdNotifier
from gateway.config import GatewayConfig, load_config
from gateway.daemon._bootstrap import bootstrap
from gateway.daemon._config_push import serve
from gateway.daemon._runtime import GatewayRuntime
from gateway.daemon._service import ServiceWatchdog

log = logging.getLogger("gateway.daemon")

# CPython's GIL switch interval while the daemon runs (default 5 ms). The alarm lane's
# network thread must get the GIL to read a PUBACK while the loop is busy replaying a
# backlog; a shorter interval bounds that wait. Measured with bench/alarm_latency.py
# (docs/architecture.md "Alarm latency"); restored when async_main returns.
GIL_SWITCH_INTERVAL_S = 0.0005


class ConfigSource:
    """The inputs of the effective configuration except the fleet layer: file, environment
    and command-line overrides (precedence is applied by ``load_config``)."""

    def __init__(self, path: str | None = None, overrides: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.path = path
        self.overrides = list(overrides or [])
        self.env = env

    def load(self, fleet: dict[str, Any] | None = None) -> GatewayConfig:
        return load_config(self.path, env=self.env, overrides=self.overrides, fleet=fleet)


async def async_main(cfg: GatewayConfig, *, source: ConfigSource | None = None,
                     ready: Callable[[GatewayRuntime], None] | None = None,
                     stop: asyncio.Event | None = None, switch_interval_s: float | None = GIL_SWITCH_INTERVAL_S,
                     notifier: SystemdNotifier | None = None, **bootstrap_kwargs: Any) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``). Returns the process exit code (75 when an update
    restarts into another slot: gateway.adapters.upgrade.EXIT_RESTART, docs/upgrades.md).

    With a ``source``, the last applied fleet configuration (``<data_dir>/fleet-config.json``)
    is layered in, and a valid ``wt.config/1`` push re-bootstraps the gateway in place;
    a push that cannot start is set aside, the previous configuration restored and the push
    reported ``rejected`` (gateway/daemon/_config_push.py). ``switch_interval_s``
    (``GIL_SWITCH_INTERVAL_S``; ``None`` leaves it alone) is set with
    :func:`sys.setswitchinterval` for the run. ``notifier`` (default: from ``$NOTIFY_SOCKET``,
    a no-op without it) gets ``READY=1``, ``WATCHDOG=1`` while healthy, ``STATUS=`` and
    ``STOPPING=1`` (gateway/daemon/_service.py)."""
    previous_switch = sys.getswitchinterval()
    if switch_interval_s is not None:
        sys.setswitchinterval(switch_interval_s)
    try:
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        exit_codes: list[int] = []

        def request_exit(code: int) -> None:     # an update: restart into another slot (docs/upgrades.md)
            exit_codes.append(code)
            stop.set()
        build = functools.partial(bootstrap, loop=loop, request_exit=request_exit, **bootstrap_kwargs)
        service = ServiceWatchdog(notifier or SystemdNotifier.from_environ(), loop=loop)

        def on_ready(rt: GatewayRuntime) -> None:
            service.on_ready(rt)
            if ready is not None:
                ready(rt)

        async def tell_stopping() -> None:
            await stop.wait()
            service.stopping()
        side = [loop.create_task(tell_stopping(), name="service-stopping"),
                loop.create_task(service.async_run(), name="service-watchdog")] if service.notifier.enabled else []
        try:
            rc = await serve(cfg, load=source.load if source is not None else None, build=build, stop=stop,
                             ready=on_ready)
            return exit_codes[0] if exit_codes else rc
        finally:
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            service.notifier.close()
    finally:
        sys.setswitchinterval(previous_switch)
