"""The SIP peers of the tests: the kit's (gateway/testing/sip_centre.py) with scenario names
resolved against this directory, and :func:`require`, which skips a test outside CI when
SIPp or Kamailio is absent and fails it in CI (env ``CI``): scripts/bootstrap.sh installs
both there.
"""
from __future__ import annotations

import os
import shutil  # noqa: F401 - tests patch peers.shutil.which / peers.os.path.exists
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.testing import sip_centre as _kit
from gateway.testing.sip_centre import (PACKAGES, FakeCentre, LossyUdpRelay, SipToolMissing, UdpRelay, find_tool,
                                        free_port)
from gateway.tests.sipp import SCENARIOS

__all__ = ["PACKAGES", "FakeCentre", "KamailioProxy", "LossyUdpRelay", "SippCentre", "UdpRelay", "free_port",
           "require"]


def require(binary: str) -> str:
    """Path of ``binary`` (sipp, kamailio); skip with the reason outside CI, fail in CI."""
    try:
        return find_tool(binary)
    except SipToolMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@dataclass
class SippCentre(_kit.SippCentre):
    """The kit's SIPp centre; a scenario name means a file in gateway/tests/sipp."""

    scenarios: Path | None = SCENARIOS

    def start(self, wait_s: float = 10.0) -> "SippCentre":
        require("sipp")
        super().start(wait_s)
        return self


class KamailioProxy(_kit.KamailioProxy):
    """The kit's Kamailio proxy; skipped (outside CI) when Kamailio is absent."""

    def start(self, wait_s: float = 15.0) -> "KamailioProxy":
        require("kamailio")
        super().start(wait_s)
        return self
