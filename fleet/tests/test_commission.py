"""Commissioning: domain with fakes, then the real path — zeroconf discovery of an
advertised gateway, a real Mosquitto, a scripted gateway answering ping and test mode with
test alarms; a silent gateway, an unanswered checklist and a missing consent stop it before
test mode (exit 6), and the wait shows a countdown; a fall sensor's test fall with another
placement than its checklist is not enough (it waits for another; exit 6 if none comes)."""
from __future__ import annotations

import json
import socket
import threading
import uuid
from datetime import datetime, timezone

import pytest

from fleet.cli import main
from fleet.installations import AlarmSeen, GatewayEndpoint, commission, decode_alarm
from fleet.tests.factories import ANSWERS, ROUTING, installations, seed_catalog, stock_kit

DEVS = [{"serial": "BTN-1", "hw_id": "a4c138000001", "role": "button"},
        {"serial": "FAL-1", "hw_id": "a4c138000002", "role": "fall"}]


class FakeChannel:
    def __init__(self, batches: list[list[AlarmSeen]], clock, *, answers: bool = True) -> None:
        self.batches, self.clock, self.answers = batches, clock, answers
        self.commands: list[tuple[str, dict]] = []

    def send_command(self, gw, cmd, args):
        self.commands.append((cmd, args))
        return f"c{len(self.commands)}"

    def command_result(self, gw, cmd_id, timeout_s):
        if not self.answers:
            self.clock.t += timeout_s
            return None
        return {"status": "ok", "detail": {"gateway": gw, "version": "0.3.1"}}

    def push_config(self, gw, devices):
        return 7

    def alarms(self, gw, timeout_s):
        self.clock.t += timeout_s
        yield from (self.batches.pop(0) if self.batches else [])


class FakeFinder:
    def __init__(self, found: bool) -> None:
        self.found = found

    def find(self, gw, timeout_s):
        return GatewayEndpoint(gw, "10.0.0.5", 8080, "0.1.0") if self.found else None


def alarm(dev: str, *, test: bool = True, occurred: float = 100.0, received: float = 100.25) -> AlarmSeen:
    return AlarmSeen("gw-1", dev, f"{dev}-00000001", test, occurred, received)


def test_commission_waits_for_every_device_and_ignores_real_alarms(clock):
    ch = FakeChannel([[alarm("a4c138000001", test=False)], [alarm("a4c138000001")], [],
                      [alarm("a4c138000002", received=100.5)]], clock)
    seen = []
    rep = commission(gateway_id="gw-1", devices=DEVS, finder=FakeFinder(True), channel=ch, timeout_s=30,
                     on_seen=lambda a, lat: seen.append((a.device_id, lat)), clock=clock)
    assert rep.missing == [] and rep.ignored_non_test == 1 and rep.config_version == 7
    assert rep.gateway_version == "0.3.1"
    assert seen == [("a4c138000001", 250.0), ("a4c138000002", 500.0)]
    assert [c for c, _ in ch.commands] == ["ping", "pair", "pair", "test_mode", "test_mode"]
    assert ch.commands[-1][1]["enabled"] is False  # test mode switched off again


def test_commission_reports_missing_device_on_timeout_with_a_countdown(clock):
    ch = FakeChannel([[alarm("a4c138000001")]], clock)
    ticks: list[tuple[float, list[str]]] = []
    rep = commission(gateway_id="gw-1", devices=DEVS, finder=None, channel=ch, timeout_s=5, on_seen=lambda a, l: None,
                     clock=clock, countdown=lambda left, missing: ticks.append((left, [d["serial"] for d in missing])))
    assert rep.missing == ["a4c138000002"]
    assert ticks[0] == (5.0, ["BTN-1", "FAL-1"])                 # the whole time, both devices awaited
    assert ticks[1:] and all(m == ["FAL-1"] for _, m in ticks[1:])  # the button was seen: only the fall sensor
    lefts = [t for t, _ in ticks]
    assert lefts == sorted(lefts, reverse=True) and lefts[-1] > 0


def test_commission_stops_before_test_mode_when_the_gateway_does_not_answer(clock):
    from fleet.errors import CommissioningError

    ch = FakeChannel([], clock, answers=False)
    with pytest.raises(CommissioningError, match="did not answer within 10 s") as exc:
        commission(gateway_id="gw-1", devices=DEVS, finder=None, channel=ch, timeout_s=30, on_seen=lambda a, l: None,
                   clock=clock)
    assert exc.value.exit_code == 6
    assert [c for c, _ in ch.commands] == ["ping"]                # nothing paired, no test mode


def test_readiness_names_every_gap_and_its_fix():
    from fleet.installations._commission import fmt_remaining, readiness_problems

    inst = {"code": "I-000007", "status": "commissioning", "gateway_id": "gw-1", "consent": None,
            "devices": [{"role": "gateway", "serial": "GW-1"}, *DEVS],
            "checklist": {"BTN-1": dict(ANSWERS)}}
    problems = readiness_problems(inst)
    assert len(problems) == 2
    assert problems[0].startswith("checklist for FAL-1 unanswered: alarm_recipient") and \
        "fleet install checklist I-000007 FAL-1" in problems[0]
    assert problems[1] == "no consent recorded (fleet install consent I-000007 consent --date YYYY-MM-DD)"
    assert readiness_problems({**inst, "consent": {"kind": "consent"},
                               "checklist": {"BTN-1": ANSWERS, "FAL-1": ANSWERS}}) == []
    assert (fmt_remaining(600), fmt_remaining(59.2), fmt_remaining(0)) == ("10:00", "1:00", "0:00")


def test_commission_fails_clearly_when_gateway_not_found(clock):
    from fleet.errors import CommissioningError

    with pytest.raises(CommissioningError, match="was not found on the local network"):
        commission(gateway_id="gw-1", devices=DEVS, finder=FakeFinder(False), channel=FakeChannel([], clock),
                   timeout_s=5, on_seen=lambda a, l: None)


def test_commission_waits_for_another_test_fall_while_the_placement_is_wrong(clock):
    wrong = AlarmSeen("gw-1", "a4c138000002", "f1", True, 100.0, 100.25, 2)
    right = AlarmSeen("gw-1", "a4c138000002", "f2", True, 100.0, 100.25, 0)
    answers = {"f1": {"placement": {"status": "mismatch", "message": "fall sensor FAL-1 runs the waist/pocket ..."}},
               "f2": {"placement": {"status": "confirmed", "checklist": "wrist", "detector": "wrist"}}}
    said, posted = [], []

    def on_seen(a, lat):
        posted.append(a.event_id)
        return answers.get(a.event_id)

    ch = FakeChannel([[alarm("a4c138000001"), wrong], [wrong], [right]], clock)
    rep = commission(gateway_id="gw-1", devices=DEVS, finder=None, channel=ch, timeout_s=30, on_seen=on_seen,
                     clock=clock, say=said.append)
    assert rep.missing == [] and rep.placement_mismatch == {} and set(rep.seen) == {"a4c138000001", "a4c138000002"}
    assert posted == ["a4c138000001-00000001", "f1", "f2"]          # the redelivered wrong one is not news
    assert any("PLACEMENT IS WRONG: fall sensor FAL-1 runs" in s for s in said)
    assert "test alarm from fall FAL-1 seen (250 ms); placement wrist confirmed (runs the wrist detector)" in said
    ch = FakeChannel([[alarm("a4c138000001"), wrong]], clock)
    rep = commission(gateway_id="gw-1", devices=DEVS, finder=None, channel=ch, timeout_s=5, on_seen=on_seen,
                     clock=clock)
    assert rep.missing == [] and list(rep.placement_mismatch) == ["a4c138000002"]
    assert rep.placement_mismatch["a4c138000002"].startswith("fall sensor FAL-1")


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"[]", b'{"schema": "wt.alarm/2", "device": "x", "event_id": "e"}',
                                     b'{"schema": "wt.alarm/1"}', b'{"schema": "wt.event/1", "device": "x", "event_id": "e"}'])
def test_decode_alarm_never_raises(payload):
    assert decode_alarm("gw", payload, 0.0) is None


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ScriptedGateway:
    """Answers `test_mode` by publishing a test alarm for each listed device (or only some)."""

    def __init__(self, port: int, gw: str, *, only: set[str] | None = None, answers: bool = True,
                 falls: dict[str, list[int]] | None = None) -> None:
        from fleet.mqtt import MqttClient

        self.gw, self.only, self.answers = gw, only, answers
        self.falls = falls or {}        # device -> the placement byte of each test fall it sends, in order
        import queue

        self.client = MqttClient("127.0.0.1", port).connect()
        self.cmds: queue.Queue = queue.Queue()
        self.client.subscribe(f"wt/v1/gw/{gw}/cmd", lambda topic, payload: self.cmds.put(payload))
        self.configs: list[dict] = []
        self.client.subscribe(f"wt/v1/gw/{gw}/config", lambda topic, payload: self.configs.append(
            json.loads(json.loads(payload)["body"])))
        self.received: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        import queue
        import time

        while not self.stop.is_set():
            try:
                msg = self.cmds.get(timeout=0.2)
            except queue.Empty:
                continue
            env = json.loads(msg)
            assert env["schema"] == "wt.signed/1" and env["gateway"] == self.gw, env   # signed for this gateway
            cmd = json.loads(env["body"])
            self.received.append(cmd)
            if cmd["cmd"] == "ping" and self.answers:
                self.client.publish(f"wt/v1/gw/{self.gw}/cmd/result", json.dumps({
                    "schema": "wt.cmd-result/1", "cmd_id": cmd["cmd_id"], "status": "ok",
                    "detail": {"gateway": self.gw, "version": "0.3.1"}}).encode())
            if cmd["cmd"] == "test_mode" and cmd["args"]["enabled"]:
                for dev in cmd["args"]["devices"]:
                    if self.only is not None and dev not in self.only:
                        continue
                    kinds = [("fall_detected", {"peak_cg": 310, "placement": p, "confidence": 80})
                             for p in self.falls[dev]] if dev in self.falls else [("button_press", {})]
                    for n, (kind, data) in enumerate(kinds):
                        now = time.time()
                        body = {"schema": "wt.alarm/1", "event_id": f"{dev}-{9 + n:08x}", "gateway": self.gw,
                                "device": dev, "role": "fall" if data else "button", "class": "care", "type": kind,
                                "test": True, "occurred_at": _rfc3339(now - 0.05), "received_at": _rfc3339(now - 0.04),
                                "sent_at": _rfc3339(now), "attempt": 1, "route": "primary", "data": data}
                        self.client.publish(f"wt/v1/gw/{self.gw}/alarm", json.dumps(body).encode())
                        time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.close()


@pytest.fixture
def installation(sqlite_url, clock):
    from fleet.access import Actor, Role
    from fleet.store import open_store

    admin = Actor("root", Role.ADMIN)
    store = open_store(sqlite_url)
    seed_catalog(store, admin, clock())
    kit = stock_kit(store, admin, clock(), 1)
    with store.transaction() as tx:
        tx.execute("INSERT INTO app_user (name, role, all_municipalities, active, created_at) VALUES (?, ?, ?, ?, ?)",
                   ("tina", "technician", True, True, clock()))
        svc = installations(tx, clock)
        inst = svc.create(admin, resident_ref="R-ABC123", location="HOME-0001", kit=kit, consent_kind="consent",
                          consent_date="2026-11-20", routing=ROUTING)
        for d in inst["devices"]:
            if d["role"] != "gateway":
                svc.set_checklist(admin, inst["code"], d["serial"], ANSWERS, expected_version=None)
    yield store, inst
    store.close()


def _rename_gateway(store, inst) -> str:
    """A unique gateway id per test run, so parallel runs never see each other on mDNS."""
    gw = "gw-" + uuid.uuid4().hex[:12]
    with store.transaction() as tx:
        tx.execute("UPDATE item SET hw_id = ? WHERE hw_id = ?", (gw, inst["gateway_id"]))
        tx.execute("UPDATE installation SET gateway_id = ? WHERE code = ?", (gw, inst["code"]))
    return gw


class ScriptedAdvertisement:
    """A gateway on mDNS, scripted from the contract (contracts.discovery), as ScriptedGateway
    scripts its MQTT side: the fleet's tests never run the gateway's own code."""

    def __init__(self, gateway_id: str, status_port: int, *, interface: str = "127.0.0.1") -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf

        from contracts.discovery import SERVICE_TYPE, TXT_ID, TXT_STATUS_PORT, TXT_VERSION

        self.zc = Zeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)
        self.zc.register_service(ServiceInfo(
            SERVICE_TYPE, f"{gateway_id}.{SERVICE_TYPE}", addresses=[socket.inet_aton(interface)], port=status_port,
            properties={TXT_ID: gateway_id, TXT_VERSION: "0.1.0", TXT_STATUS_PORT: str(status_port)},
            server=f"{gateway_id}.local."), allow_name_change=True)

    def close(self) -> None:
        self.zc.unregister_all_services()
        self.zc.close()


def test_commission_end_to_end_with_mdns_and_mosquitto(installation, mosquitto, sqlite_url, capsys):
    store, inst = installation
    gw = _rename_gateway(store, inst)
    adv = ScriptedAdvertisement(gw, 18080)
    fake_gw = ScriptedGateway(mosquitto.port, gw)
    try:
        rc = main(["--db", sqlite_url, "install", "commission", inst["code"], "--mqtt",
                   f"mqtt://127.0.0.1:{mosquitto.port}", "--timeout", "30", "--mdns-interface", "127.0.0.1",
                   "--discover-timeout", "10"], env={"FLEET_USER": "tina"})
    finally:
        fake_gw.close()
        adv.close()
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"found {gw} at 127.0.0.1:18080" in out.out
    assert f"gateway {gw} answers (version 0.3.1)" in out.out
    assert "configuration version 1 pushed" in out.out
    assert "left; waiting for a test alarm from button" in out.out       # the countdown (a line when not a tty)
    assert fake_gw.configs and fake_gw.configs[-1]["schema"] == "wt.config/1" and fake_gw.configs[-1]["version"] == 1
    assert [c["cmd"] for c in fake_gw.received][:3] == ["ping", "pair", "pair"]
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT status FROM installation WHERE code = ?", (inst["code"],)) == "active"
        lat = [r["latency_ms"] for r in tx.query("SELECT latency_ms FROM installation_test_alarm")]
    assert len(lat) == 2 and all(0 <= x < 60_000 for x in lat)


def _commission(installation, mosquitto, sqlite_url, timeout_s: int, **script) -> int:
    """``fleet install commission`` against a scripted gateway (``script``: ScriptedGateway's options)."""
    store, inst = installation
    fake_gw = ScriptedGateway(mosquitto.port, _rename_gateway(store, inst), **script)
    try:
        return main(["--db", sqlite_url, "install", "commission", inst["code"], "--mqtt",
                     f"mqtt://127.0.0.1:{mosquitto.port}", "--timeout", str(timeout_s), "--skip-discovery"],
                    env={"FLEET_USER": "tina"})
    finally:
        fake_gw.close()


def test_commission_refuses_done_when_one_device_stays_silent(installation, mosquitto, sqlite_url, capsys):
    store, inst = installation
    button = next(d["hw_id"] for d in inst["devices"] if d["role"] == "button")
    rc = _commission(installation, mosquitto, sqlite_url, 3, only={button})
    err = capsys.readouterr().err
    assert rc == 6 and "NOT done" in err
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT status FROM installation WHERE code = ?", (inst["code"],)) == "commissioning"
        assert [r["device_id"] for r in tx.query("SELECT device_id FROM installation_test_alarm")] == [button]


def _fall_id(inst) -> str:
    return next(d["hw_id"] for d in inst["devices"] if d["role"] == "fall")


def test_commission_cli_confirms_the_fall_sensors_placement_after_a_wrong_one(installation, mosquitto, sqlite_url,
                                                                              capsys):
    store, inst = installation              # the checklist says pendant (placement 1)
    fall = _fall_id(inst)
    rc = _commission(installation, mosquitto, sqlite_url, 30, falls={fall: [2, 1]})   # waist, then its setting
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "PLACEMENT IS WRONG: fall sensor FAL-0001" in out.out and "checklist says pendant (placement 1)" in out.out
    assert "placement pendant confirmed (runs the pendant/chest detector)" in out.out
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT status FROM installation WHERE code = ?", (inst["code"],)) == "active"
        row = tx.one("SELECT event_id, placement, placement_expected FROM installation_test_alarm WHERE device_id = ?",
                     (fall,))
    assert row == {"event_id": f"{fall}-0000000a", "placement": 1, "placement_expected": 1}


def test_commission_cli_refuses_done_while_the_placement_is_wrong(installation, mosquitto, sqlite_url, capsys):
    store, inst = installation
    rc = _commission(installation, mosquitto, sqlite_url, 3, falls={_fall_id(inst): [0]})   # still the wrist detector
    err = capsys.readouterr().err
    assert rc == 6, err
    assert "fleet: error: fall sensor FAL-0001" in err and "runs the wrist detector" in err
    assert "checklist says pendant" in err and "gateway status --json" in err and "NOT done" in err
    assert "no test alarm from" not in err                     # it was seen: the placement is what is wrong
    with store.transaction(write=False) as tx:
        assert tx.scalar("SELECT status FROM installation WHERE code = ?", (inst["code"],)) == "commissioning"
    rc = main(["--db", sqlite_url, "--json", "install", "show", inst["code"]], env={"FLEET_USER": "tina"})
    shown = json.loads(capsys.readouterr().out)
    assert rc == 0 and {a["placement"] for a in shown["test_alarms"]} == {None, 0}
    rc = main(["--db", sqlite_url, "install", "show", inst["code"]], env={"FLEET_USER": "tina"})
    assert rc == 0 and "0 (wrist) != checklist 1" in capsys.readouterr().out


def test_commission_cli_stops_when_the_gateway_is_silent(installation, mosquitto, sqlite_url, capsys):
    store, inst = installation
    gw = _rename_gateway(store, inst)
    fake_gw = ScriptedGateway(mosquitto.port, gw, answers=False)
    try:
        rc = main(["--db", sqlite_url, "install", "commission", inst["code"], "--mqtt",
                   f"mqtt://127.0.0.1:{mosquitto.port}", "--skip-discovery", "--answer-timeout", "1"],
                  env={"FLEET_USER": "tina"})
    finally:
        fake_gw.close()
    err = capsys.readouterr().err
    assert rc == 6 and f"gateway {gw} did not answer within 1 s" in err
    assert [c["cmd"] for c in fake_gw.received] == ["ping"]          # nothing paired, no test mode


def test_commission_cli_refuses_an_unfinished_checklist_or_consent(installation, sqlite_url, capsys):
    store, inst = installation
    with store.transaction() as tx:
        tx.execute("UPDATE installation SET checklist = ?, consent_kind = NULL WHERE code = ?", ("{}", inst["code"]))
    rc = main(["--db", sqlite_url, "install", "commission", inst["code"], "--mqtt", "mqtt://127.0.0.1:1",
               "--skip-discovery"], env={"FLEET_USER": "tina"})
    err = capsys.readouterr().err
    assert rc == 6, err                                # refused before any broker is contacted (port 1: nothing)
    assert f"{inst['code']} is not ready for test mode" in err
    assert err.count("unanswered: alarm_recipient") == 2 and "no consent recorded" in err


def test_zeroconf_finder_reads_the_contract_txt_record():
    from fleet.installations._adapters import ZeroconfGatewayFinder

    gw = "gw-" + uuid.uuid4().hex[:12]
    adv = ScriptedAdvertisement(gw, 18081)
    try:
        finder = ZeroconfGatewayFinder(("127.0.0.1",))
        assert finder.find(gw, 10) == GatewayEndpoint(gw, "127.0.0.1", 18081, "0.1.0")
        assert finder.find("gw-" + uuid.uuid4().hex[:12], 1.0) is None
    finally:
        adv.close()
