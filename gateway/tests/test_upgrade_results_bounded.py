"""The upgrade controller's in-memory command results stay bounded (a long-running gateway
answers thousands of ota/update commands; older results live in the result files)."""
from __future__ import annotations

from typing import Any

from gateway.daemon import _upgrades
from gateway.daemon._upgrades import UpgradeController


class _Store:
    def __init__(self) -> None:
        self.put_calls: list[str] = []

    def put(self, cmd_id: str, status: str, detail: dict[str, Any]) -> None:
        self.put_calls.append(cmd_id)

    def get(self, cmd_id: str) -> None:
        return None


class _Routes:
    def __init__(self) -> None:
        self.replies = 0

    def reply(self, topic: str, payload: bytes, *, what: str) -> None:
        self.replies += 1


def test_results_in_memory_are_bounded_and_keep_the_newest():
    ctl = UpgradeController.__new__(UpgradeController)   # only the result bookkeeping is exercised
    ctl._results = {}
    ctl._ota_results = _Store()
    ctl._routes = _Routes()
    ctl._result_topic = "t"
    n = _upgrades.RESULTS_IN_MEMORY
    for i in range(n + 50):
        ctl._result(f"c{i}", "ok", {"device": "a4c1380a1b2c", "phase": "committed"})
    assert len(ctl._results) == n
    assert "c0" not in ctl._results and f"c{n + 49}" in ctl._results and "c50" in ctl._results
    ctl._result("c50", "error", {"device": "a4c1380a1b2c"})      # a repeat moves to the newest end
    ctl._result("new", "ok", {"device": "a4c1380a1b2c"})
    assert "c50" in ctl._results and "c51" not in ctl._results
    assert ctl._results["c50"][0] == "error"
    assert len(ctl._ota_results.put_calls) == n + 52 and ctl._routes.replies == n + 52
