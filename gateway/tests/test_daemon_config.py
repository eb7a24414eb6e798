"""Fleet configuration push (wt.config/1 → wt.config-applied/1): decisions and the daemon path."""
from __future__ import annotations

import asyncio
import json
import sys
import time


from gateway.config import load_config
from gateway.domain.config_push import ConfigPush, decide, decode_push, read_layer, write_layer


def push(version, config, h=None) -> bytes:
    return json.dumps({"schema": "wt.config/1", "version": version, "hash": h, "config": config}).encode()


def loader(fleet):
    return load_config(None, env={}, overrides={"gateway": {"id": "gw-x", "data_dir": "/d"}}, fleet=fleet)


def test_decode_push_never_raises_and_names_the_problem():
    assert isinstance(decode_push(push(3, {"rules": {}})), ConfigPush)
    assert "JSON" in decode_push(b"\xff")
    assert "schema" in decode_push(b'{"schema": "wt.config/2"}')
    assert "version" in decode_push(push(-1, {}))
    assert "object" in decode_push(json.dumps({"schema": "wt.config/1", "version": 1, "config": []}).encode())


def test_decisions():
    current = loader(None)
    ok = decide(ConfigPush(2, {"rules": {"bed": {"max_out_min": 20}}}), current, None, loader)
    assert ok.action == "apply" and ok.config.rules.bed.max_out_min == 20
    bad = decide(ConfigPush(3, {"rules": {"bed": {"max_out_min": -5}}}), current, None, loader)
    assert bad.action == "reject" and "rules.bed.max_out_min = -5: must be ≥ 1 minute" in bad.error
    moved = decide(ConfigPush(4, {"gateway": {"data_dir": "/elsewhere"}}), current, None, loader)
    assert moved.action == "reject" and "gateway.data_dir cannot be changed remotely" in moved.error
    applied = ConfigPush(5, {}, "h5")
    assert decide(ConfigPush(4, {}), current, applied, loader).action == "ignore"
    assert decide(ConfigPush(5, {}, "h5"), current, applied, loader).action == "report"
    assert decide(ConfigPush(5, {}, "other"), current, applied, loader).action == "reject"


def test_layer_file_roundtrip(tmp_path):
    assert read_layer(tmp_path) is None
    write_layer(tmp_path, ConfigPush(7, {"rules": {"door": {"enabled": False}}}, "abc"))
    assert read_layer(tmp_path) == ConfigPush(7, {"rules": {"door": {"enabled": False}}}, "abc")
    (tmp_path / "fleet-config.json").write_text("{broken")
    assert read_layer(tmp_path) is None
    write_layer(tmp_path, None)
    assert not (tmp_path / "fleet-config.json").exists()


def test_daemon_applies_rejects_and_keeps_pushed_config_across_restart(tmp_path, mosquitto):
    from gateway.testing.console import make_console_link
    from gateway.daemon import ConfigSource, async_main
    from gateway.daemon._main import GIL_SWITCH_INTERVAL_S
    from gateway.testing.control import FleetKey

    fleet = FleetKey.create(tmp_path / "keys")
    cfgf = tmp_path / "gw.toml"
    cfgf.write_text(f'[gateway]\nid = "gw-cfg"\ndata_dir = "{tmp_path / "d"}"\n[uplink]\nport = {mosquitto.port}\n'
                    '[status]\nport = 0\n[discovery]\nenabled = false\n[supervision]\ntick_s = 0.1\n'
                    + fleet.trust_toml())
    source = ConfigSource(str(cfgf), env={})
    topic = "wt/v1/gw/gw-cfg/config"

    async def until(pred, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while not pred():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    async def run():
        loop = asyncio.get_running_loop()
        reports: list[dict] = []

        def report(version: int) -> dict:   # the latest report for that version (v1 is re-reported on reconnect)
            return next(r for r in reversed(reports) if r["version"] == version)
        clink = make_console_link("127.0.0.1", mosquitto.port, client_id="t-fleet", dispatch=loop.call_soon_threadsafe)
        publish = clink.publish

        def signed_publish(topic, payload, **kw):      # the fleet signs every push
            return publish(topic, fleet.wrap("gw-cfg", "wt.config/1", payload) if payload else payload, **kw)
        clink.publish = signed_publish
        clink.subscribe("wt/v1/gw/gw-cfg/config/applied", lambda t, p: reports.append(json.loads(p)))
        clink.start()
        await until(lambda: clink.connected)
        runtimes = []
        stop = asyncio.Event()
        before = sys.getswitchinterval()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop, ready=runtimes.append))
        await until(lambda: runtimes and runtimes[-1].uplink_connected())
        assert runtimes[-1].cfg.rules.bed.max_out_min == 30
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S != before   # the daemon's GIL switch interval
        clink.publish(topic, push(1, {"rules": {"bed": {"max_out_min": 20}}}, "h1"), qos=1, retain=True)
        await until(lambda: any(r["version"] == 1 for r in reports))
        assert report(1) == {"schema": "wt.config-applied/1", "version": 1, "status": "applied", "error": None,
                               "hash": "h1"}
        assert len(runtimes) == 2 and runtimes[-1].cfg.rules.bed.max_out_min == 20
        clink.publish(topic, push(2, {"rules": {"bed": {"max_out_min": -5}}}), qos=1, retain=True)
        await until(lambda: any(r["version"] == 2 for r in reports))
        assert report(2)["status"] == "rejected" and "max_out_min = -5" in report(2)["error"]
        assert len(runtimes) == 2 and runtimes[-1].cfg.rules.bed.max_out_min == 20   # still running v1
        # a valid push that cannot start (status port taken): previous configuration restored
        import socket
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        clink.publish(topic, push(3, {"status": {"port": port}}), qos=1, retain=True)
        await until(lambda: any(r["version"] == 3 for r in reports))
        busy.close()
        assert report(3)["status"] == "rejected" and "could not start" in report(3)["error"]
        assert "status.port" in report(3)["error"]
        assert len(runtimes) == 3 and runtimes[-1].cfg.status.port == 0 and runtimes[-1].cfg.rules.bed.max_out_min == 20
        assert read_layer(tmp_path / "d").version == 1
        reports.clear()
        clink.publish(topic, push(2, {"rules": {"bed": {"max_out_min": -5}}}), qos=1, retain=True)
        await until(lambda: any(r["version"] == 2 for r in reports))     # v2 is the retained push now
        stop.set()
        assert await main == 0
        assert sys.getswitchinterval() == before                            # restored on return
        # restart: v1 is still in effect (layer file), the retained v2 is rejected again
        reports.clear()
        runtimes.clear()
        stop2 = asyncio.Event()
        main = asyncio.ensure_future(async_main(source.load(), source=source, stop=stop2, ready=runtimes.append))
        await until(lambda: runtimes and any(r["version"] == 2 for r in reports))
        assert runtimes[-1].cfg.rules.bed.max_out_min == 20 and report(2)["status"] == "rejected"
        stop2.set()
        assert await main == 0
        clink.publish(topic, b"", qos=1, retain=True)     # clear the retained push
        clink.stop()
    asyncio.run(run())
