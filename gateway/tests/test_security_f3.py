"""F3: a push that cannot reach the broker (wrong host, port, password or CA) used to be applied
and saved with no health check — the gateway never reconnected, so the corrective push never
arrived. Now, against the real daemon (``async_main`` from a configuration file, as ``gateway
run``) on a real Mosquitto with a plain, a password-only and a TLS listener: each such push
is on trial, misses its deadline (no connection and no acknowledged health within
``upgrades.commit_deadline_s``), is rolled back — the previous configuration runs again, in
memory and on disk — and ``config/applied`` says ``rejected`` with why. A good push commits
once its health is acknowledged."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from gateway.daemon import ConfigSource, async_main
from gateway.domain.config_push import read_layer
from gateway.testing.control import FleetKey

pytestmark = [pytest.mark.security, pytest.mark.slow, pytest.mark.timeout(240)]
GW = "gw-f3"


@pytest.fixture
def brokers(tmp_path):
    """One Mosquitto, three listeners: anonymous (where the gateway lives), password-only, TLS (CA 1)."""
    from testkit.broker import MosquittoProcess, free_port, port_open
    from testkit.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "pki2", prefix="other-")          # a CA that signed nothing of this broker
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), GW, "right-password"], check=True,
                   capture_output=True)
    good, pw, tls = free_port(), free_port(), free_port()
    import os

    conf = "\n".join([*(["user root"] if os.geteuid() == 0 else []),     # read the files written here
                      "per_listener_settings true", "persistence false", "set_tcp_nodelay true",
                      "log_dest stderr", "log_type error",
                      f"listener {good} 127.0.0.1", "allow_anonymous true",
                      f"listener {pw} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}",
                      f"listener {tls} 127.0.0.1", "allow_anonymous true", f"cafile {pki.ca}",
                      f"certfile {pki.server_cert}", f"keyfile {pki.server_key}"]) + "\n"
    b = MosquittoProcess(port=good, workdir=tmp_path / "mosq")
    b.write_config = lambda: b.conf_path.write_text(conf)       # type: ignore[method-assign]
    b.start()
    for p in (pw, tls):
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", p):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield {"good": good, "password": pw, "tls": tls, "ca": pki.ca, "other_ca": other.ca}
    b.stop()


def test_F3_pushes_that_cannot_reach_the_broker_roll_back_and_say_why(tmp_path, brokers):
    from testkit.broker import free_port
    from gateway.testing.platform import PahoLink

    fleet = FleetKey.create(tmp_path / "keys")
    cfgf = tmp_path / "gw.toml"
    cfgf.write_text(f'[gateway]\nid = "{GW}"\ndata_dir = "{tmp_path / "d"}"\n'
                    f'[uplink]\nport = {brokers["good"]}\nhealth_interval_s = 30\n'
                    '[status]\nport = 0\n[discovery]\nenabled = false\n[supervision]\ntick_s = 0.1\n'
                    '[upgrades]\ncommit_deadline_s = 5\n' + fleet.trust_toml())
    source = ConfigSource(str(cfgf), env={})
    topic = f"wt/v1/gw/{GW}/config"
    reports: list[dict] = []
    link = PahoLink("127.0.0.1", brokers["good"], client_id="t-fleet")
    link.subscribe(f"{topic}/applied", lambda t, p: reports.append(json.loads(p)) if p else None)
    link.start()
    pushes = {
        "wrong port": {"uplink": {"port": free_port()}},
        "wrong password": {"uplink": {"port": brokers["password"],
                                      "tls": {"username": GW, "password": "wrong-password"}}},
        "wrong CA": {"uplink": {"port": brokers["tls"], "tls": {"enabled": True, "ca": str(brokers["other_ca"])}}},
        "unreachable host": {"uplink": {"host": "192.0.2.1"}},      # TEST-NET-1: nothing answers there
    }

    async def until(pred, timeout_s=40.0):
        deadline = time.monotonic() + timeout_s
        while not pred():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)

    def report(version: int) -> dict | None:
        return next((r for r in reversed(reports) if r.get("version") == version), None)

    async def run():
        runtimes: list = []
        stop = asyncio.Event()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop, ready=runtimes.append))
        try:
            await until(lambda: runtimes and runtimes[-1].uplink_connected())
            # a good push: on trial, committed once its health is acknowledged
            link.publish(topic, fleet.config(GW, 1, {"rules": {"bed": {"max_out_min": 20}}}, "h1"), qos=1, retain=True)
            await until(lambda: report(1) is not None)
            assert report(1)["status"] == "applied" and runtimes[-1].cfg.rules.bed.max_out_min == 20
            layer = read_layer(tmp_path / "d")
            assert layer.version == 1 and not layer.pending
            figures = {}
            for version, (name, cfg) in enumerate(pushes.items(), start=2):
                t0 = time.monotonic()
                link.publish(topic, fleet.config(GW, version, cfg, f"h{version}"), qos=1, retain=True)
                await until(lambda v=version: report(v) is not None)
                figures[name] = round(time.monotonic() - t0, 1)
                rep = report(version)
                assert rep["status"] == "rejected", (name, rep)
                assert rep["error"].startswith(f"configuration version {version} rolled back: no connection to "
                                               "the broker"), (name, rep)
                assert "within 5 s" in rep["error"] and "previous configuration is running again" in rep["error"]
                print(f"{name}: {rep['error']}")
                rt = runtimes[-1]
                await until(rt.uplink_connected)                                  # back on the good broker
                assert rt.cfg.uplink.port == brokers["good"] and rt.cfg.uplink.host == "127.0.0.1"
                assert rt.cfg.rules.bed.max_out_min == 20 and rt.snapshot()["config_version"] == 1
                layer = read_layer(tmp_path / "d")
                assert layer.version == 1 and not layer.pending                   # on disk too
            assert "Not authorized" in report(3)["error"] or "not authori" in report(3)["error"].lower()
            assert "certificate verify failed" in report(4)["error"].lower()
            print("push -> rolled-back report (s):", figures)
            # the set-aside push comes back retained on every reconnect: answered, never re-applied
            n = len(runtimes)
            reports.clear()
            link.publish(topic, fleet.config(GW, 5, pushes["unreachable host"], "h5"), qos=1, retain=True)
            await asyncio.sleep(1.0)
            assert report(5)["status"] == "rejected" and len(runtimes) == n
            assert not main.done()
        finally:
            stop.set()
            assert await main == 0
    try:
        asyncio.run(run())
    finally:
        link.publish(topic, b"", qos=1, retain=True)
        link.stop()
    assert Path(tmp_path / "d" / "fleet-config.rejected.json").exists()
