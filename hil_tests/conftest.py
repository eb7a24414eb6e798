"""Fixtures for bench scenarios: a bench factory that runs the emulated bench (default)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from hil_tests.emulated import GATEWAY_ID, DeviceSpec, EmulatedBench
from hil_tests.transcript import check_golden, normalise

KEYS = {  # bench-only keys (never used outside the bench)
    "button-1": "00112233445566778899aabbccddeeff",
    "fall-1": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "fall-2": "1f1e2d3c4b5a69788796a5b4c3d2e1f1",
    "bed-1": "2f1e2d3c4b5a69788796a5b4c3d2e1f2",
    "gps-1": "3f1e2d3c4b5a69788796a5b4c3d2e1f3",
    "dispenser-1": "4f1e2d3c4b5a69788796a5b4c3d2e1f4",
    "door-1": "5f1e2d3c4b5a69788796a5b4c3d2e1f5",
}
IDS = {name: f"b0e1c4{i:06x}" for i, name in enumerate(sorted(KEYS), start=1)}


def device(name: str, role: str | None = None, **kw: Any) -> DeviceSpec:
    """A bench device with its fixed id and key (role defaults to the name's prefix)."""
    return DeviceSpec(name=name, role=role or name.rsplit("-", 1)[0], device_id=IDS[name], key=KEYS[name], **kw)


@pytest.fixture(autouse=True, scope="session")
def fleet_control_key(tmp_path_factory):
    """The fleet's control key for the session (``FLEET_CONTROL_KEY_FILE``): every command and push
    a bench sends is signed with it, and each bench's gateway trusts it (hil_tests/control.py)."""
    import os

    from gateway.testing.control import FleetKey

    if os.environ.get("FLEET_CONTROL_KEY_FILE"):
        yield os.environ["FLEET_CONTROL_KEY_FILE"]
        return
    key = FleetKey.create(tmp_path_factory.mktemp("control"))
    os.environ["FLEET_CONTROL_KEY_FILE"] = str(key.private_path)
    try:
        yield str(key.private_path)
    finally:
        os.environ.pop("FLEET_CONTROL_KEY_FILE", None)


@pytest.fixture
def emulated_bench(hil_bench, tmp_path: Path) -> Callable[..., EmulatedBench]:
    """``emulated_bench(devices, gateway={...overrides}, platform_accept=False)`` → a started bench.

    On a real bench (``--bench FILE``, kind = "real") scenarios that need emulated stimuli
    are skipped with the reason; see docs/hil.md.
    """
    if not hil_bench.emulated:
        pytest.skip(f"bench {hil_bench.name!r} is a real bench: this scenario replays stimuli into emulated "
                    "devices (pin traces, sensor files); run it on the emulated bench")
    started: list[EmulatedBench] = []

    def make(devices: list[DeviceSpec], **kw: Any) -> EmulatedBench:
        b = EmulatedBench(tmp_path / f"bench{len(started)}", devices, **kw)
        started.append(b)
        return b.__enter__()

    yield make
    for b in started:
        b.stop()


class Transcript:
    """Lines of a scenario's normalised transcript (platform arrivals + device observations)."""

    def __init__(self, bench: EmulatedBench) -> None:
        self.names = {**bench.names, GATEWAY_ID: "gateway"}
        self.lines: list[str] = []

    def arrivals(self, arrivals: list, volatile: tuple[str, ...] = ()) -> "Transcript":
        self.lines += normalise(arrivals, self.names, volatile)
        return self

    def note(self, line: str) -> "Transcript":
        self.lines.append(line)
        return self

    def check(self, name: str, update: bool) -> None:
        check_golden(name, self.lines, update)
