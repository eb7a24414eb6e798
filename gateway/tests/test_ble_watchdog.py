"""BLE watchdog policy with fakes (the end-to-end hang tests against bleak and the fake
BlueZ are in test_ble.py)."""
from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time

import pytest

from gateway.adapters.transports.ble_watchdog import (
    BleWatchdog,
    HangKind,
    WatchdogConfig,
    WatchdogState,
    WatchdogStatus,
)
from gateway.testing.clock import FakeClock
from gateway.testing.waiting import async_wait_until, run_async


class FakeScanner:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.log: list[str] = []
        self.last_report_monotonic: float | None = None
        self.last_start_monotonic: float | None = None
        self.known_advertisers = 0
        self.fail_starts = 0

    async def async_start(self) -> None:
        self.log.append("start")
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("org.bluez.Error.NotReady")
        self.last_start_monotonic = self.clock.monotonic()

    async def async_stop(self) -> None:
        self.log.append("stop")

    def report(self) -> None:
        self.known_advertisers = max(self.known_advertisers, 1)
        self.last_report_monotonic = self.clock.monotonic()


class FakePower:
    def __init__(self, scanner: FakeScanner, fail: int = 0) -> None:
        self.scanner = scanner
        self.fail = fail
        self.attempts: list[float] = []

    async def async_power_cycle(self, off_s: float = 2.0) -> None:
        self.attempts.append(time.monotonic())
        self.scanner.log.append("power")
        if self.fail:
            self.fail -= 1
            raise RuntimeError("org.bluez.Error.Failed: power cycle refused")


CFG = WatchdogConfig(silence_timeout_s=60.0, check_interval_s=0.01, backoff_initial_s=0.05,
                     backoff_max_s=0.2, power_off_s=0.0)


wait_until = functools.partial(async_wait_until, timeout_s=5.0, step_s=0.005)
run = functools.partial(run_async, timeout_s=20.0)


def test_silence_is_ignored_until_devices_are_known_to_advertise():
    async def scenario() -> None:
        clock = FakeClock()
        sc = FakeScanner(clock)
        wd = BleWatchdog(sc, FakePower(sc), CFG, clock=clock)
        task = asyncio.create_task(wd.async_run())
        await wait_until(lambda: sc.log == ["start"], what="start")
        clock.advance(10_000)                       # nothing ever advertised: nothing to miss
        await asyncio.sleep(0.1)
        assert wd.status().hangs_detected == 0 and sc.log == ["start"]
        sc.report()                             # a device is known now; it goes quiet
        clock.advance(61)
        await wait_until(lambda: wd.status().hangs_detected == 1, what="hang")
        wd.request_stop()
        await task

    run(scenario)


def test_ladder_restart_then_power_cycle_then_recovery_resets_it():
    async def scenario() -> None:
        clock = FakeClock()
        sc = FakeScanner(clock)
        statuses: list[WatchdogStatus] = []
        wd = BleWatchdog(sc, FakePower(sc), CFG, clock=clock, on_status=statuses.append)
        task = asyncio.create_task(wd.async_run())
        await wait_until(lambda: sc.log == ["start"], what="start")
        sc.report()

        clock.advance(30)
        await asyncio.sleep(0.05)
        assert wd.status().hangs_detected == 0      # within the silence timeout
        assert wd.status().last_report_age_s == pytest.approx(30)

        clock.advance(31)                               # 61 s silent → restart only
        await wait_until(lambda: sc.log[-1] == "start" and len(sc.log) == 3, what="restart")
        assert sc.log == ["start", "stop", "start"]
        assert wd.status().scanner_restarts == 1 and wd.status().degraded

        clock.advance(61)                               # still silent → power cycle
        await wait_until(lambda: "power" in sc.log and sc.log[-1] == "start", what="power cycle")
        assert sc.log[3:] == ["stop", "power", "start"]
        st = wd.status()
        assert (st.hangs_detected, st.scanner_restarts, st.adapter_power_cycles) == (2, 2, 1)

        clock.advance(1)
        sc.report()                                 # adverts again → episode over
        await wait_until(lambda: wd.status().recoveries == 1, what="recovery")
        assert not wd.status().degraded

        clock.advance(61)                               # a new episode starts with a restart again
        await wait_until(lambda: wd.status().hangs_detected == 3 and sc.log[-1] == "start",
                         what="third hang")
        assert sc.log[-2:] == ["stop", "start"]
        assert wd.status().adapter_power_cycles == 1

        states = [s.state for s in statuses]
        assert WatchdogState.RESTARTING in states and WatchdogState.POWER_CYCLING in states
        json.dumps(wd.status().to_dict())           # `gateway status --json` can print it
        wd.request_stop()
        await task
        assert sc.log[-1] == "stop" and wd.status().state is WatchdogState.STOPPED

    run(scenario)


def test_failing_power_cycles_back_off_exponentially_and_keep_trying():
    async def scenario() -> None:
        clock = FakeClock()
        sc = FakeScanner(clock)
        sc.fail_starts = 2                          # the first start and the plain restart fail
        power = FakePower(sc, fail=3)
        statuses: list[WatchdogStatus] = []
        wd = BleWatchdog(sc, power, CFG, clock=clock, on_status=statuses.append)
        task = asyncio.create_task(wd.async_run())
        await wait_until(lambda: wd.status().state is WatchdogState.SCANNING and len(power.attempts) == 4,
                         what="fourth power cycle succeeds")
        st = wd.status()
        assert st.last_hang is HangKind.CALL_FAILED and st.hangs_detected == 1
        assert st.adapter_power_cycles == 4
        gaps = [b - a for a, b in zip(power.attempts, power.attempts[1:])]
        # backoff 0.05, 0.1, 0.2 (capped): lower bounds only, a loaded machine is slower
        assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9 and gaps[2] >= 0.2 * 0.9
        assert WatchdogState.BACKOFF in [s.state for s in statuses]
        assert "power cycle refused" in [s.last_error for s in statuses if s.last_error][-1]
        wd.request_stop()
        await task

    run(scenario)


def test_stop_interrupts_a_backoff():
    async def scenario() -> None:
        clock = FakeClock()
        sc = FakeScanner(clock)
        sc.fail_starts = 100
        wd = BleWatchdog(sc, FakePower(sc), WatchdogConfig(
            silence_timeout_s=60, check_interval_s=0.01, backoff_initial_s=300, power_off_s=0),
            clock=clock)
        task = asyncio.create_task(wd.async_run())
        await wait_until(lambda: wd.status().state is WatchdogState.BACKOFF, what="backoff")
        t0 = time.monotonic()
        wd.request_stop()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - t0 < 5
        assert wd.status().state is WatchdogState.STOPPED

    run(scenario)


@pytest.mark.parametrize("kwargs, needle", [
    ({"silence_timeout_s": 0}, "silence_timeout_s=0"),
    ({"check_interval_s": 30, "silence_timeout_s": 10}, "check_interval_s=30"),
    ({"expected_advertisers": 0}, "expected_advertisers"),
])
def test_config_errors_name_the_key(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        WatchdogConfig(**kwargs)


def test_ble_config_errors_name_the_key():
    from gateway.adapters.transports.ble import BleConfig

    with pytest.raises(ValueError, match="ble.adapter='bluetooth0'"):
        BleConfig(adapter="bluetooth0")
    with pytest.raises(ValueError, match="ble.call_timeout_s"):
        BleConfig(call_timeout_s=0)


def test_only_ble_py_imports_bleak():
    code = (
        "import sys\n"
        "import gateway.adapters.transports.ble_watchdog, gateway.adapters.transports.ble_links\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bleak', 'dbus_fast'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
