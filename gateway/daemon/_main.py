"""``gateway run``'s main loop: signals, the fleet configuration layer, in-place re-bootstrap."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any, Callable

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.daemon._bootstrap import bootstrap
from gateway.daemon._errors import DaemonError
from gateway.daemon._runtime import GatewayRuntime
from gateway.domain.config_push import ConfigPush, read_layer, write_layer

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
                     **bootstrap_kwargs: Any) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``). Returns the process exit code.

    With a ``source``, the last applied fleet configuration (``<data_dir>/fleet-config.json``)
    is layered in, and a valid ``wt.config/1`` push re-bootstraps the gateway in place;
    if the new configuration cannot start, the previous one is restored and the push
    reported ``rejected``. ``switch_interval_s`` (``GIL_SWITCH_INTERVAL_S``; ``None`` leaves
    it alone) is set with :func:`sys.setswitchinterval` for the run."""
    previous_switch = sys.getswitchinterval()
    if switch_interval_s is not None:
        sys.setswitchinterval(switch_interval_s)
    try:
        return await _run(cfg, source=source, ready=ready, stop=stop, **bootstrap_kwargs)
    finally:
        sys.setswitchinterval(previous_switch)


async def _run(cfg: GatewayConfig, *, source: ConfigSource | None,
               ready: Callable[[GatewayRuntime], None] | None,
               stop: asyncio.Event | None, **bootstrap_kwargs: Any) -> int:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    applied: ConfigPush | None = None
    if source is not None:
        applied = read_layer(cfg.gateway.data_dir)
        if applied is not None:
            try:
                cfg = source.load(applied.config)
                log.info("fleet configuration version %d in effect", applied.version)
            except ConfigError as exc:
                log.error("stored fleet configuration version %d no longer valid (%s); running without it",
                          applied.version, exc)
                applied = None
    report: tuple[ConfigPush, str, str | None] | None = None
    previous: ConfigPush | None = None
    failed_pushes: dict[tuple[int, str | None], str] = {}
    while True:
        try:
            rt = bootstrap(cfg, loop=loop, **bootstrap_kwargs)
        except DaemonError as exc:
            if report is None or report[1] != "applied":
                log.error("%s", exc)
                return 2
            # the pushed configuration cannot start: back to the previous one
            push = report[0]
            log.error("fleet configuration version %d cannot start (%s); restoring the previous configuration",
                      push.version, exc)
            write_layer(cfg.gateway.data_dir, previous)
            applied = previous
            assert source is not None
            cfg = source.load(previous.config if previous else None)
            report = (push, "rejected", f"configuration version {push.version} could not start: {exc}")
            failed_pushes[(push.version, push.hash)] = report[2] or ""
            continue
        if source is not None:
            rt.config_loader = source.load
        rt.applied_push = applied
        rt.pending_report = report
        rt.failed_pushes = failed_pushes
        await rt.async_start()
        rt._flush_pending_report()
        if ready is not None:
            ready(rt)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(rt.reload_event.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await rt.async_stop()
        if stop.is_set() or rt.reload_request is None:
            return 0
        new_cfg, push = rt.reload_request
        previous = applied
        write_layer(cfg.gateway.data_dir, push)
        cfg, applied, report = new_cfg, push, (push, "applied", None)
        log.info("re-bootstrapping with fleet configuration version %d", push.version)
