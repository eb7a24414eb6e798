"""The control gate (gateway/daemon/_control.py): every push and command must be the fleet's,
signed for this gateway, unexpired and newer than anything accepted — a high-water mark that
survives a restart and a journal quarantine. Each refusal is counted by reason (status and
health) and never reaches a handler; the retained push handed out again is answered, never
re-applied. Fuzzed: no control message ever raises, half-applies, goes uncounted or loses
anything already stored."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.control import generate_key
from contracts.payloads import decode_applied
from gateway.config import load_config
from gateway.daemon import bootstrap
from gateway.daemon._config_push import PushState
from gateway.testing.control import FleetKey
from gateway.testing.platform import FakePublisher

pytestmark = pytest.mark.security
GW = "gw-sec"
DEV = "a4c1380a1b2c"
FLEET = FleetKey(*generate_key())
ATTACKER = FleetKey(*generate_key())


def config(tmp_path: Path, **extra):
    (tmp_path / "fleet.pub").write_bytes(FLEET.public_pem)
    layers = {"gateway": {"id": GW, "data_dir": str(tmp_path / "d")}, "status": {"enabled": False},
              "discovery": {"enabled": False}, "devices": {DEV: {"role": "button", "key": "00" * 16}},
              "trust": {"fleet_key": str(tmp_path / "fleet.pub")}, **extra}
    return load_config(None, env={}, overrides=layers)


async def settle(rt) -> None:
    """Until the gate's accepted messages were recorded and handled."""
    for _ in range(200):
        pending = [t for t in asyncio.all_tasks() if t.get_name() == "control-accept"]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)


def results(pub: FakePublisher) -> list[dict]:
    return [json.loads(p.payload) for p in pub.published if p.topic.endswith("/cmd/result")]


def counted(rt) -> dict:
    return rt.snapshot()["control"]


def test_every_refusal_is_counted_by_reason_and_never_reaches_a_handler(tmp_path):
    cfg = config(tmp_path)
    pub = FakePublisher()

    async def run():
        rt = bootstrap(cfg, publisher=pub, serial=False, advertise=False)
        await rt.async_start()
        try:
            t = rt.commands.topic
            send = rt.commands.on_cmd_message
            send(t, b'{"schema":"wt.cmd/1","cmd_id":"u1","cmd":"ping","args":{}}')                  # unsigned
            send(t, ATTACKER.cmd(GW, "k1", "ping", {}))                                                # unknown key
            send(t, FLEET.cmd("gw-other", "o1", "ping", {}))                                           # other gw
            send(t, FLEET.cmd(GW, "e1", "ping", {}, now=1.7e9, ttl_s=60))                              # expired
            tampered = json.loads(FLEET.cmd(GW, "b1", "ping", {}))
            tampered["body"] = tampered["body"].replace("ping", "pair")
            send(t, json.dumps(tampered).encode())                                                     # bad signature
            rt.config_push.on_config_message(rt.config_push.topic, FLEET.cmd(GW, "w1", "ping", {}))   # wrong kind
            newer, older = FLEET.cmd(GW, "n1", "ping", {}, seq=2_000_000_000_000_000), FLEET.cmd(GW, "n0", "ping", {},
                                                                                               seq=1_000_000)
            send(t, newer)
            await settle(rt)
            send(t, older)                                                                              # replayed
            send(t, newer)                                                                              # the same again
            await settle(rt)
            c = counted(rt)
            assert c["rejected"] == {"unsigned": 1, "unknown_key": 1, "other_gateway": 1, "expired": 1,
                                     "bad_signature": 1, "wrong_kind": 1, "replayed": 1}, c
            assert c["accepted"] == 1 and c["repeats"] == 1 and c["highest_seq"] == 2_000_000_000_000_000
            assert [r["cmd_id"] for r in results(pub)] == ["n1"]          # only the fleet's newest command ran
            assert c["last_rejected"]["reason"] == "replayed"
            from gateway.adapters.status import health_payload
            assert health_payload(rt.snapshot())["control"]["rejected"]["unsigned"] == 1
        finally:
            await rt.async_stop()
    asyncio.run(run())


def test_high_water_mark_survives_a_restart_and_a_journal_quarantine(tmp_path):
    """seq is kept in <data_dir>/control-state.json, outside the journal: after the journal was
    found corrupt and quarantined, an older captured command is still a replay."""
    cfg = config(tmp_path)
    older = FLEET.cmd(GW, "c-old", "test_mode", {"devices": [DEV], "enabled": True, "duration_s": 600}, seq=10)
    newer = FLEET.cmd(GW, "c-new", "ping", {}, seq=20)

    async def boot_and(payloads):
        pub = FakePublisher()
        rt = bootstrap(cfg, publisher=pub, serial=False, advertise=False)
        await rt.async_start()
        try:
            for p in payloads:
                rt.commands.on_cmd_message(rt.commands.topic, p)
                await settle(rt)
            return counted(rt), rt.snapshot()["test_mode"], results(pub), rt.journal.recovery
        finally:
            await rt.async_stop()

    c, _, res, _ = asyncio.run(boot_and([newer]))
    assert c["accepted"] == 1 and [r["cmd_id"] for r in res] == ["c-new"]
    journal = cfg.journal_path
    journal.write_bytes(b"this is not a database" * 100)          # the card corrupted the journal
    for extra in (journal.with_name(journal.name + "-wal"), journal.with_name(journal.name + "-shm")):
        extra.unlink(missing_ok=True)
    c, test_mode, res, recovery = asyncio.run(boot_and([older]))
    assert recovery is not None                                   # the journal was quarantined ...
    assert c["rejected"] == {"replayed": 1} and test_mode == [] and res == []   # ... the old command still refused
    assert json.loads((Path(cfg.gateway.data_dir) / "control-state.json").read_text())["highest"] == 20


def test_without_a_fleet_key_everything_is_refused_and_said(tmp_path):
    cfg = load_config(None, env={}, overrides={"gateway": {"id": GW, "data_dir": str(tmp_path / "d")},
                                               "status": {"enabled": False}, "discovery": {"enabled": False}})
    pub = FakePublisher()

    async def run():
        rt = bootstrap(cfg, publisher=pub, serial=False, advertise=False)
        await rt.async_start()
        try:
            rt.commands.on_cmd_message(rt.commands.topic, FLEET.cmd(GW, "c1", "ping", {}))
            rt.config_push.on_config_message(rt.config_push.topic, FLEET.config(GW, 1, {}))
            await settle(rt)
            c = counted(rt)
            assert c["key"] == "missing" and c["rejected"] == {"no_fleet_key": 2} and results(pub) == []
        finally:
            await rt.async_stop()
    asyncio.run(run())


# ---------------------------------------------------------------- fuzz: every control message type

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from([DEV, "ffffffffffff", "nope", "button", "gateway", ""]))
_json = st.recursive(_scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c,
                                                                                          max_size=3)), max_leaves=8)
_args = st.dictionaries(st.sampled_from(["devices", "enabled", "duration_s", "device", "role", "release",
                                         "artifact_url", "artifact_b64", "deployment", "rollback"]), _json, max_size=5)
_cmd_body = st.builds(lambda cid, cmd, args: json.dumps({"schema": "wt.cmd/1", "cmd_id": cid, "cmd": cmd,
                                                         "args": args}).encode(),
                      st.text(min_size=0, max_size=6), st.sampled_from(["ping", "test_mode", "pair", "ota", "update",
                                                                        "reboot", ""]), _args)
_config_body = st.builds(lambda v, cfg: json.dumps({"schema": "wt.config/1", "version": v, "hash": None,
                                                    "config": cfg}).encode(),
                         st.integers(-1, 50),
                         st.dictionaries(st.sampled_from(["rules", "uplink", "upgrades", "trust", "gateway",
                                                          "devices", "bogus"]), _json, max_size=3))
_kind = st.sampled_from(["cmd", "config"])


def _message(draw_kind, body, how, seq):
    signer = {"fleet": FLEET, "attacker": ATTACKER}.get(how, FLEET)
    schema = "wt.cmd/1" if draw_kind == "cmd" else "wt.config/1"
    if how == "bare":
        return body
    if how == "garbage":
        return body[: max(1, len(body) // 2)]
    gw = "gw-other" if how == "other" else GW
    text = body.decode("utf-8", "replace").encode()      # the fleet signs text: what it would send of garbage
    return signer.wrap(gw, schema, text, seq=seq)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(st.tuples(_kind, st.one_of(_cmd_body, _config_body, st.binary(max_size=60)),
                          st.sampled_from(["fleet", "fleet", "attacker", "bare", "garbage", "other"]),
                          st.integers(1, 10 ** 12)), min_size=1, max_size=6))
def test_fuzz_control_messages_never_raise_never_half_apply_always_counted(tmp_path_factory, messages):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = config(tmp)
    pub = FakePublisher()
    loads = {"n": 0}

    def load(layer):
        loads["n"] += 1
        return load_config(None, env={}, overrides={**{"gateway": {"id": GW, "data_dir": str(tmp / "d")},
                                                       "status": {"enabled": False}, "discovery": {"enabled": False},
                                                       "trust": {"fleet_key": str(tmp / "fleet.pub")}}},
                           fleet=layer)
    errors: list = []

    async def run():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        state = PushState(load=load)
        rt = bootstrap(cfg, publisher=pub, serial=False, advertise=False, pushes=state)
        await rt.async_start()
        try:
            from gateway.domain.model import Event, EventCode
            stored = Event(f"{DEV}-00000001", DEV, EventCode.BUTTON_PRESS, 1.7e9, 1.7e9, seq=1)
            rt.forwarder.submit(stored, lambda *a: None)
            await asyncio.sleep(0.2)
            assert rt.journal.contains(stored.event_id)
            before_layer = (Path(cfg.gateway.data_dir) / "fleet-config.json").exists()
            for kind, body, how, seq in messages:
                c0 = counted(rt)
                n0 = c0["accepted"] + c0["repeats"] + sum(c0["rejected"].values())
                tests0 = rt.snapshot()["test_mode"]
                n_results = len(results(pub))
                payload = _message(kind, body, how, seq)
                if kind == "cmd":
                    rt.commands.on_cmd_message(rt.commands.topic, payload)
                else:
                    rt.config_push.on_config_message(rt.config_push.topic, payload)
                await settle(rt)
                c1 = counted(rt)
                assert c1["accepted"] + c1["repeats"] + sum(c1["rejected"].values()) >= n0 + 1   # always counted
                new = results(pub)[n_results:]
                if how != "fleet":                       # nothing but the fleet's own messages has an effect
                    assert c1["accepted"] == c0["accepted"] and not new and rt.snapshot()["test_mode"] == tests0
                if any(r["status"] == "error" for r in new):
                    assert rt.snapshot()["test_mode"] == tests0      # an error never half-applies
                state.requested = None                   # (a valid push would re-bootstrap: not here)
            assert rt.cfg is cfg and rt.journal.contains(stored.event_id)            # nothing stored lost
            assert (Path(cfg.gateway.data_dir) / "fleet-config.json").exists() == before_layer
            for r in (decode_applied(p.payload) for p in pub.published if p.topic.endswith("/config/applied")):
                assert r.status.value == "rejected" or r.error is None
        finally:
            await rt.async_stop()
    asyncio.run(run())
    assert errors == []
