"""pytest plugin for the benches: options, the bench fixture, metrics and the report."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil_tests.bench import BenchError, default_bench, load_bench
from hil_tests.report import write_report

_RESULTS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hil", "hardware-in-the-loop benches")
    g.addoption("--bench", default=os.environ.get("WT_BENCH"),
                help="bench description TOML for real boards (default: the emulated bench)")
    g.addoption("--update-golden", action="store_true", default=False,
                help="rewrite golden transcripts instead of comparing with them")
    g.addoption("--hil-report", default=None, metavar="DIR",
                help="write report.json and report.html for the bench scenarios into DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS_KEY] = {}


class Metrics:
    def __init__(self) -> None:
        self.latencies_ms: dict[str, list[float]] = {}
        self.figures: dict[str, object] = {}

    def latency(self, name: str, ms: float) -> None:
        self.latencies_ms.setdefault(name, []).append(float(ms))

    def figure(self, name: str, value: object) -> None:
        self.figures[name] = value


@pytest.fixture(scope="session")
def hil_bench(pytestconfig: pytest.Config):
    path = pytestconfig.getoption("--bench")
    if not path:
        return default_bench()
    try:
        return load_bench(path)
    except BenchError as exc:
        raise pytest.UsageError(f"bench description {path}: {exc}") from None


@pytest.fixture
def update_golden(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--update-golden"))


@pytest.fixture
def hil_metrics(request: pytest.FixtureRequest) -> Metrics:
    m = Metrics()
    request.node.stash[_METRICS_KEY] = m
    return m


_METRICS_KEY = pytest.StashKey[Metrics]()


def _is_scenario(item: pytest.Item) -> bool:
    return item.get_closest_marker("hil") is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    rep = outcome.get_result()
    if not _is_scenario(item):
        return
    results = item.config.stash[_RESULTS_KEY]
    entry = results.setdefault(item.nodeid, {"name": item.nodeid.split("::")[-1], "nodeid": item.nodeid,
                                             "outcome": "passed", "duration_s": 0.0})
    entry["duration_s"] += rep.duration
    if rep.failed:
        entry["outcome"] = "failed"
        entry["longrepr"] = str(rep.longrepr)
    elif rep.skipped and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"
        entry["longrepr"] = str(rep.longrepr)
    m = item.stash.get(_METRICS_KEY, None)
    if m is not None:
        entry["latencies_ms"] = m.latencies_ms
        entry["figures"] = m.figures


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    directory = session.config.getoption("--hil-report")
    results = list(session.config.stash.get(_RESULTS_KEY, {}).values())
    if directory and results:
        path = session.config.getoption("--bench") or "emulated"
        summary = write_report(Path(directory), Path(path).stem if path != "emulated" else path, results)
        session.config.stash[_SUMMARY_KEY] = summary


_SUMMARY_KEY = pytest.StashKey[dict]()
