"""BLE adapter hang detection and recovery (no bleak import: it drives ports).

A BlueZ adapter can hang in two ways the gateway must not sit through silently:

1. *Silent*: discovery is on, yet no advertisement has been reported for
   ``silence_timeout_s`` although devices are known to advertise (at least
   ``expected_advertisers`` distinct devices were reported before, or configured).
2. *Stuck call*: a scanner start/stop does not answer within the scanner's call
   timeout (BleTimeout) or fails (e.g. ``org.bluez.Error.NotReady``).

Recovery ladder (one *episode* lasts until an advertisement is reported again):
restart the scanner (``restarts_before_power_cycle`` times), then power-cycle the
adapter via BlueZ (Adapter1.Powered off/on) and restart the scanner, repeating the
power cycle with exponential backoff (``backoff_initial_s`` doubling up to
``backoff_max_s``). Every action is counted; :meth:`BleWatchdog.status` exposes the
state for ``gateway status`` and ``on_status`` reports every change (the runtime
raises a technical alarm while ``degraded`` is true).
"""
from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import asdict, dataclass, replace
from typing import Awaitable, Callable, Protocol

from gateway.domain.ports import Clock, SystemClock

log = logging.getLogger(__name__)


class ScannerControl(Protocol):
    """What the watchdog needs from the scanner (gateway.adapters.transports.ble.BleScanner)."""

    async def async_start(self) -> None:
        """Start discovery; raise on failure or timeout."""

    async def async_stop(self) -> None:
        """Stop discovery; never raises."""

    @property
    def last_report_monotonic(self) -> float | None: ...

    @property
    def last_start_monotonic(self) -> float | None: ...

    @property
    def known_advertisers(self) -> int: ...


class AdapterPower(Protocol):
    async def async_power_cycle(self, off_s: float = 2.0) -> None:
        """Power the adapter off and on; raise on failure or timeout."""


class WatchdogState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    SCANNING = "scanning"
    RESTARTING = "restarting_scanner"
    POWER_CYCLING = "power_cycling_adapter"
    BACKOFF = "backoff"


class HangKind(enum.Enum):
    SILENT = "no_adverts"
    CALL_FAILED = "scanner_call_failed"


@dataclass(frozen=True)
class WatchdogConfig:
    silence_timeout_s: float = 120.0
    check_interval_s: float = 5.0
    expected_advertisers: int = 1          # arm silence detection after this many devices
    restarts_before_power_cycle: int = 1
    power_off_s: float = 2.0
    backoff_initial_s: float = 10.0
    backoff_max_s: float = 300.0
    action_timeout_s: float = 120.0        # outer bound on any start/stop/power cycle

    def __post_init__(self) -> None:
        for key in ("silence_timeout_s", "check_interval_s", "backoff_initial_s", "backoff_max_s",
                    "action_timeout_s"):
            if getattr(self, key) <= 0:
                raise ValueError(f"ble.watchdog.{key}={getattr(self, key)!r}: must be > 0 seconds")
        if self.check_interval_s > self.silence_timeout_s:
            raise ValueError(
                f"ble.watchdog.check_interval_s={self.check_interval_s!r} exceeds silence_timeout_s="
                f"{self.silence_timeout_s!r}: make the check interval shorter")
        if self.expected_advertisers < 1 or self.restarts_before_power_cycle < 0:
            raise ValueError("ble.watchdog.expected_advertisers must be >= 1 and "
                             "restarts_before_power_cycle >= 0")


@dataclass(frozen=True)
class WatchdogStatus:
    state: WatchdogState
    degraded: bool                       # an episode is in progress (no confirmed recovery yet)
    hangs_detected: int
    scanner_restarts: int
    adapter_power_cycles: int
    recoveries: int                      # episodes ended by a reported advertisement
    last_hang: HangKind | None
    last_error: str
    last_report_age_s: float | None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["state"] = self.state.value
        d["last_hang"] = self.last_hang.value if self.last_hang else None
        return d


class BleWatchdog:
    def __init__(
        self,
        scanner: ScannerControl,
        power: AdapterPower,
        config: WatchdogConfig = WatchdogConfig(),
        *,
        clock: Clock | None = None,
        on_status: Callable[[WatchdogStatus], None] | None = None,
    ) -> None:
        self._scanner = scanner
        self._power = power
        self._cfg = config
        self._clock = clock or SystemClock()
        self._on_status = on_status
        self._status = WatchdogStatus(WatchdogState.STOPPED, False, 0, 0, 0, 0, None, "", None)
        self._episode_level = 0          # recovery actions taken in the current episode
        self._power_cycles_in_episode = 0
        self._stop = asyncio.Event()

    # -- public
    def status(self) -> WatchdogStatus:
        last = self._scanner.last_report_monotonic
        age = None if last is None else max(0.0, self._clock.monotonic() - last)
        return replace(self._status, last_report_age_s=age)

    def request_stop(self) -> None:
        self._stop.set()

    async def async_run(self) -> None:
        """Start the scanner and supervise it until :meth:`request_stop` (or cancel)."""
        self._stop.clear()
        try:
            self._set(state=WatchdogState.STARTING)
            try:
                await self._bounded(self._scanner.async_start(), "scanner start")
                self._set(state=WatchdogState.SCANNING)
            except Exception as exc:  # noqa: BLE001 - any failure starts the recovery ladder
                await self._async_recover(HangKind.CALL_FAILED, str(exc) or type(exc).__name__)
            while not self._stop.is_set():
                if await self._async_sleep(self._cfg.check_interval_s):
                    break
                self._note_recovery()
                hang = self._check()
                if hang is not None:
                    await self._async_recover(hang, "no advertisement reported for "
                                              f"{self._cfg.silence_timeout_s:g} s")
        finally:
            await self._stop_scanner()
            self._set(state=WatchdogState.STOPPED)

    # -- policy
    def _check(self) -> HangKind | None:
        known = self._scanner.known_advertisers
        if known < self._cfg.expected_advertisers:
            return None
        now = self._clock.monotonic()
        marks = [t for t in (self._scanner.last_report_monotonic, self._scanner.last_start_monotonic)
                 if t is not None]
        if not marks:
            return None
        if now - max(marks) > self._cfg.silence_timeout_s:
            return HangKind.SILENT
        return None

    def _note_recovery(self) -> None:
        """End the episode once an advertisement arrived after the last action."""
        if not self._status.degraded:
            return
        last = self._scanner.last_report_monotonic
        started = self._scanner.last_start_monotonic
        if last is not None and started is not None and last >= started:
            log.warning("BLE scanner recovered after %d action(s)", self._episode_level)
            self._episode_level = 0
            self._power_cycles_in_episode = 0
            self._set(degraded=False, recoveries=self._status.recoveries + 1, last_error="")

    async def _async_recover(self, kind: HangKind, detail: str) -> None:
        log.error("BLE adapter hang detected (%s): %s", kind.value, detail)
        self._set(degraded=True, hangs_detected=self._status.hangs_detected + 1,
                  last_hang=kind, last_error=detail)
        while not self._stop.is_set():
            power_cycle = self._episode_level >= self._cfg.restarts_before_power_cycle
            self._episode_level += 1
            try:
                if power_cycle:
                    if self._power_cycles_in_episode > 0:
                        delay = min(self._cfg.backoff_initial_s * 2 ** (self._power_cycles_in_episode - 1),
                                    self._cfg.backoff_max_s)
                        self._set(state=WatchdogState.BACKOFF)
                        if await self._async_sleep(delay):
                            return
                    self._set(state=WatchdogState.POWER_CYCLING,
                              adapter_power_cycles=self._status.adapter_power_cycles + 1)
                    self._power_cycles_in_episode += 1
                    await self._stop_scanner()
                    await self._bounded(self._power.async_power_cycle(self._cfg.power_off_s),
                                        "adapter power cycle")
                else:
                    self._set(state=WatchdogState.RESTARTING)
                    await self._stop_scanner()
                self._set(scanner_restarts=self._status.scanner_restarts + 1)
                await self._bounded(self._scanner.async_start(), "scanner start")
            except Exception as exc:  # noqa: BLE001 - escalate on any failure
                detail = str(exc) or type(exc).__name__
                log.error("BLE recovery step failed: %s", detail)
                self._set(last_hang=HangKind.CALL_FAILED, last_error=detail)
                continue
            self._set(state=WatchdogState.SCANNING)
            return

    # -- helpers
    async def _bounded(self, aw: Awaitable[None], what: str) -> None:
        try:
            await asyncio.wait_for(aw, self._cfg.action_timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{what} did not finish within {self._cfg.action_timeout_s:g} s") from None

    async def _stop_scanner(self) -> None:
        try:
            await self._bounded(self._scanner.async_stop(), "scanner stop")
        except Exception as exc:  # noqa: BLE001 - a stop never blocks recovery
            log.warning("BLE scanner stop: %s", exc)

    async def _async_sleep(self, seconds: float) -> bool:
        """Sleep; True if a stop was requested meanwhile."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    def _set(self, **changes: object) -> None:
        new = replace(self._status, **changes)  # type: ignore[arg-type]
        if new == self._status:
            return
        self._status = new
        if self._on_status is not None:
            try:
                self._on_status(self.status())
            except Exception:
                log.exception("on_status callback failed")
