"""A fleet push that passes the schema but fails in an adapter never ends the daemon
(gateway/daemon/_config_push.py): the running daemon restores the previous configuration
(in memory and on disk) and reports the push ``rejected``; a saved push that fails at
start-up is set aside and the daemon starts on the last good configuration — no crash loop."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from contracts.payloads import decode_applied
from gateway.config import load_config
from gateway.daemon import ConfigSource, async_main, bootstrap
from gateway.daemon._config_push import LayerFiles, serve
from gateway.domain.config_push import ConfigPush, read_layer
from contracts.control import generate_key
from gateway.testing.control import FleetKey
from gateway.testing.platform import FakePublisher as _FakePublisher

GW = "gw-rollback"
FLEET = FleetKey(*generate_key())        # the fleet's control key: every push below is signed with it


class FakePublisher(_FakePublisher):
    """Acknowledges every publication at once: a pushed configuration commits as soon as its
    health is PUBACKed (gateway/daemon/_config_push.py step 3)."""

    def publish(self, *a, **kw) -> None:
        super().publish(*a, **kw)
        self.puback()


def trust(tmp_path: Path) -> str:
    (tmp_path / "fleet.pub").write_bytes(FLEET.public_pem)
    return str(tmp_path / "fleet.pub")
BAD_BLE = {"ble": {"enabled": True, "adapter": "hci-0"}}      # valid schema; bleak refuses the adapter name
GOOD = {"rules": {"bed": {"max_out_min": 20}}}


def push(version: int, config: dict, h: str | None = None) -> bytes:
    return FLEET.config(GW, version, config, h)


async def until(pred, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def config_file(tmp_path: Path, port: int = 1883) -> ConfigSource:
    f = tmp_path / "gw.toml"
    f.write_text(f'[gateway]\nid = "{GW}"\ndata_dir = "{tmp_path / "d"}"\n[uplink]\nport = {port}\n'
                 '[status]\nport = 0\n[discovery]\nenabled = false\n[supervision]\ntick_s = 0.05\n'
                 f'[trust]\nfleet_key = "{trust(tmp_path)}"\n')
    return ConfigSource(str(f), env={})


def reports(pub: FakePublisher) -> list:
    return [decode_applied(p.payload) for p in pub.published if p.topic.endswith("/config/applied")]


def test_running_daemon_survives_a_push_its_ble_adapter_refuses(tmp_path, mosquitto):
    """End to end on a real broker: v1 applied; v2 (ble.adapter = "hci-0") rejected with the
    reason, the daemon keeps running v1 (memory, disk, status), v2 is never retried."""
    from gateway.testing.console import make_console_link

    source = config_file(tmp_path, mosquitto.port)
    topic = f"wt/v1/gw/{GW}/config"

    async def run():
        loop = asyncio.get_running_loop()
        got: list[dict] = []
        clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-rollback",
                                  dispatch=loop.call_soon_threadsafe)
        clink.subscribe(f"wt/v1/gw/{GW}/config/applied", lambda t, p: got.append(json.loads(p)))
        clink.start()
        await until(lambda: clink.connected)

        def report(version: int) -> dict | None:
            return next((r for r in reversed(got) if r["version"] == version), None)
        runtimes: list = []
        stop = asyncio.Event()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop, ready=runtimes.append))
        try:
            await until(lambda: runtimes and runtimes[-1].uplink_connected())
            clink.publish(topic, push(1, GOOD, "h1"), qos=1, retain=True)
            await until(lambda: report(1) is not None)
            assert report(1)["status"] == "applied" and len(runtimes) == 2
            clink.publish(topic, push(2, BAD_BLE, "h2"), qos=1, retain=True)
            await until(lambda: report(2) is not None)
            r2 = report(2)
            assert r2["status"] == "rejected" and "could not start" in r2["error"] and "hci-0" in r2["error"], r2
            assert not main.done()                                    # the daemon is still running ...
            rt = runtimes[-1]
            assert len(runtimes) == 3 and rt.cfg.ble.enabled is False  # ... on v1, restarted in place
            assert rt.cfg.rules.bed.max_out_min == 20 and rt.snapshot()["config_version"] == 1
            assert read_layer(tmp_path / "d").version == 1             # v1 on disk
            assert (2, "h2") in LayerFiles(tmp_path / "d").rejected()  # v2 set aside
            await until(lambda: rt.uplink_connected())
            got.clear()
            clink.publish(topic, push(2, BAD_BLE, "h2"), qos=1, retain=True)   # the same push again
            await until(lambda: report(2) is not None)
            assert report(2)["status"] == "rejected" and len(runtimes) == 3       # not retried
        finally:
            stop.set()
            assert await main == 0
            clink.publish(topic, b"", qos=1, retain=True)
            clink.stop()
    asyncio.run(asyncio.wait_for(run(), 120))


def test_restart_with_a_bad_saved_push_starts_on_the_previous_configuration(tmp_path):
    """The daemon died while starting v2 (or an older daemon crashed on it): at the next start
    v2 is set aside, v1 — the layer before it — is in force again, and v2 is reported."""
    source = config_file(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    LayerFiles(data).save(ConfigPush(2, BAD_BLE, "h2"), previous=ConfigPush(1, GOOD, "h1"))
    pub = FakePublisher()

    async def run():
        runtimes: list = []
        stop = asyncio.Event()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop, ready=runtimes.append,
                                                publisher=pub, serial=False, advertise=False))
        await until(lambda: runtimes and any(r.version == 2 for r in reports(pub)))
        rt = runtimes[-1]
        assert len(runtimes) == 1 and rt.cfg.ble.enabled is False and rt.cfg.rules.bed.max_out_min == 20
        assert rt.snapshot()["config_version"] == 1
        [r2] = [r for r in reports(pub) if r.version == 2]
        assert r2.status.value == "rejected" and "could not start" in r2.error and "hci-0" in r2.error
        assert read_layer(data) == ConfigPush(1, GOOD, "h1")
        assert LayerFiles(data).previous() is None and (2, "h2") in LayerFiles(data).rejected()
        pub.deliver(f"wt/v1/gw/{GW}/config", push(2, BAD_BLE, "h2"))     # the retained push comes back
        await until(lambda: len([r for r in reports(pub) if r.version == 2]) == 2)
        assert [r.status.value for r in reports(pub) if r.version == 2] == ["rejected", "rejected"]
        stop.set()
        assert await main == 0
        assert len(runtimes) == 1                                          # never re-bootstrapped for v2
    asyncio.run(asyncio.wait_for(run(), 60))


def test_restart_with_a_bad_saved_push_and_no_previous_layer_starts_on_the_file(tmp_path):
    """The crash loop of the first build: only the bad layer on disk. It is set aside; the
    daemon starts on the file configuration alone."""
    source = config_file(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    LayerFiles(data).save(ConfigPush(5, BAD_BLE), previous=None)
    pub = FakePublisher()

    async def run():
        runtimes: list = []
        stop = asyncio.Event()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop, ready=runtimes.append,
                                                publisher=pub, serial=False, advertise=False))
        await until(lambda: runtimes and reports(pub))
        assert runtimes[-1].cfg.ble.enabled is False and runtimes[-1].cfg.rules.bed.max_out_min == 30
        assert runtimes[-1].snapshot()["config_version"] == 0
        assert reports(pub)[0].version == 5 and reports(pub)[0].status.value == "rejected"
        assert read_layer(data) is None
        stop.set()
        assert await main == 0
    asyncio.run(asyncio.wait_for(run(), 60))


def test_any_exception_while_starting_a_push_rolls_back_and_stops_what_had_started(tmp_path):
    """Not only DaemonError: an adapter raising anything half-way through the start. The
    half-started gateway is stopped (journal writer thread ended) before the previous one runs."""
    source = config_file(tmp_path)
    pub = FakePublisher()
    topic = f"wt/v1/gw/{GW}/config"

    async def run():
        loop = asyncio.get_running_loop()
        runtimes: list = []
        built: list = []

        def build(cfg, *, pushes):
            rt = bootstrap(cfg, loop=loop, publisher=pub, serial=False, advertise=False, pushes=pushes)
            built.append(rt)
            if cfg.rules.door.enabled is False:        # the push under test: its status endpoint explodes
                async def explode(snapshot):
                    raise RuntimeError("adapter exploded")
                rt.status.async_start = explode
            return rt

        stop = asyncio.Event()
        main = asyncio.ensure_future(serve(source.load(), load=source.load, build=build, stop=stop,
                                           ready=runtimes.append))
        await until(lambda: runtimes)
        pub.deliver(topic, push(1, GOOD))
        await until(lambda: len(runtimes) == 2)
        pub.deliver(topic, push(2, {"rules": {"door": {"enabled": False}}}))
        await until(lambda: any(r.version == 2 for r in reports(pub)))
        [r2] = [r for r in reports(pub) if r.version == 2]
        assert r2.status.value == "rejected" and r2.error == "configuration version 2 could not start: adapter exploded"
        await until(lambda: len(runtimes) == 3)
        assert runtimes[-1].cfg.rules.door.enabled is True and runtimes[-1].cfg.rules.bed.max_out_min == 20
        assert len(built) == 4 and built[2] not in runtimes                 # the failed one never ran ...
        writers = [t for t in threading.enumerate() if t.name == "journal-writer"]
        assert len(writers) == 1                                            # ... and left no thread behind
        assert not main.done()
        stop.set()
        assert await main == 0
    asyncio.run(asyncio.wait_for(run(), 60))


def test_without_a_reloadable_configuration_pushes_are_rejected(tmp_path):
    cfg = load_config(None, env={}, overrides={"gateway": {"id": GW, "data_dir": str(tmp_path / "d")},
                                               "status": {"enabled": False}, "discovery": {"enabled": False},
                                               "trust": {"fleet_key": trust(tmp_path)}})
    pub = FakePublisher()

    async def run():
        runtimes: list = []
        stop = asyncio.Event()
        main = asyncio.ensure_future(async_main(cfg, stop=stop, ready=runtimes.append, publisher=pub,
                                                serial=False, advertise=False))
        await until(lambda: runtimes)
        pub.deliver(f"wt/v1/gw/{GW}/config", push(1, GOOD))
        await until(lambda: reports(pub))
        [r] = reports(pub)
        assert r.status.value == "rejected" and "without a reloadable configuration" in r.error
        stop.set()
        assert await main == 0
    asyncio.run(asyncio.wait_for(run(), 60))


def test_when_nothing_can_start_no_push_is_blamed(tmp_path):
    """The status port is held by another process: neither the saved push nor the file
    configuration can start. Exit 2, and the saved layer is left as it was (not set aside:
    the next start, once the port is free, runs it)."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    f = tmp_path / "gw.toml"
    f.write_text(f'[gateway]\nid = "{GW}"\ndata_dir = "{tmp_path / "d"}"\n[status]\nport = {port}\n'
                 '[discovery]\nenabled = false\n')
    source = ConfigSource(str(f), env={})
    data = tmp_path / "d"
    data.mkdir()
    LayerFiles(data).save(ConfigPush(3, GOOD, "h3"), previous=None)
    try:
        code = asyncio.run(asyncio.wait_for(async_main(source.load(), source=source, publisher=FakePublisher(),
                                                       serial=False, advertise=False), 60))
    finally:
        busy.close()
    assert code == 2
    assert read_layer(data) == ConfigPush(3, GOOD, "h3", pending=True) and LayerFiles(data).rejected() == {}
