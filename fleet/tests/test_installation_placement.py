"""Where a fall sensor is worn: the installation checklist asks it of every fall sensor
(pendant, wrist, waist, pocket; Norwegian answers too), an installation is not ready
without it, and the answer ends up in the device's configuration document
(``devices.<id>.placement`` of its gateway's configuration, wt.config/1), validated by
the shared gateway schema."""
from __future__ import annotations

import pytest

from fleet.clock import FixedClock
from fleet.config import ConfigService, ConfigValidationError, Scope
from fleet.config._memory import MemoryConfigStore
from fleet.config._sql import SqlConfigStore
from fleet.errors import CommissioningError, ValidationError
from fleet.installations import QUESTIONS, missing_answers, validate_answers
from fleet.installations._checklist import device_settings, parse_answer, questions_for
from fleet.installations._commission import readiness_problems
from fleet.tests.factories import ANSWERS, ROUTING, hexid, installations, seed_catalog, stock_kit

GENERAL = {k: v for k, v in ANSWERS.items() if k != "placement"}


def test_the_placement_question_is_asked_of_fall_sensors_in_both_languages():
    q = next(q for q in QUESTIONS if q.key == "placement")
    assert q.roles == ("fall",) and q.choices == ("pendant", "wrist", "waist", "pocket")
    assert q in questions_for("fall") and q not in questions_for("button") and q not in questions_for(None)
    for raw, want in (("Wrist", "wrist"), (" håndledd ", "wrist"), ("armbånd", "wrist"), ("anheng", "pendant"),
                      ("pendant", "pendant"), ("belte", "waist"), ("lomme", "pocket"), ("POCKET", "pocket")):
        assert parse_answer("placement", raw) == want
    with pytest.raises(ValidationError, match="answer one of pendant, wrist, waist, pocket, not 'ankle'"):
        validate_answers("FAL-1", {"placement": "ankle"})
    assert device_settings({"placement": "wrist"}, "fall") == {"placement": "wrist"}
    assert device_settings({"placement": "wrist"}, "button") == {}        # recorded, not a button setting


def test_an_installation_is_not_ready_until_the_fall_sensors_placement_is_answered():
    devices = [{"serial": "BTN-1", "role": "button"}, {"serial": "FAL-1", "role": "fall"},
               {"serial": "GW-1", "role": "gateway"}]
    inst = {"code": "I-000001", "status": "commissioning", "gateway_id": "gw-1", "devices": devices,
            "checklist": {"BTN-1": GENERAL, "FAL-1": GENERAL}, "consent": {"kind": "consent"}}
    assert missing_answers(inst["checklist"], {"BTN-1": "button", "FAL-1": "fall"}) == {"FAL-1": ["placement"]}
    assert missing_answers(inst["checklist"], ["BTN-1", "FAL-1"]) == {}      # roles unknown: general questions
    problems = readiness_problems(inst)
    assert len(problems) == 1 and problems[0].startswith("checklist for FAL-1 unanswered: placement")
    inst["checklist"]["FAL-1"] = {**GENERAL, "placement": "wrist"}
    assert readiness_problems(inst) == []


def _installation(store, admin, clock):
    seed_catalog(store, admin, clock())
    kit = stock_kit(store, admin, clock())
    with store.transaction() as tx:
        return installations(tx, clock).create(admin, resident_ref="R-7F3K9Q", location="HOME-0001", kit=kit,
                                               consent_kind="consent", consent_date="2026-11-20",
                                               routing=ROUTING)["code"]


def test_the_placement_answer_ends_up_in_the_fall_sensors_configuration(store, admin, clock):
    code = _installation(store, admin, clock)
    gw, btn, fall = "gw-" + hexid(0x100001), hexid(0x200001), hexid(0x300001)
    with store.transaction() as tx:
        svc = installations(tx, clock)
        svc.set_checklist(admin, code, "FAL-0001", {**GENERAL, "placement": "håndledd"}, expected_version=None)
        svc.set_checklist(admin, code, "BTN-0001", {**GENERAL, "placement": "pendant"}, expected_version=None)
        cfg = ConfigService(SqlConfigStore(tx), clock)
        # the installation's answer goes with a configured device (its [devices.<id>] table and role)
        assert "devices" not in cfg.render(gw)
        cfg.set_key(Scope.DEVICE, fall, "role", "fall", by="tech")
        cfg.set_key(Scope.DEVICE, btn, "role", "button", by="tech")
        v = cfg.commit(gw)                                   # validated by the shared gateway schema
    assert v.config["devices"] == {fall: {"role": "fall", "placement": "wrist"}, btn: {"role": "button"}}
    with store.transaction() as tx:
        svc = installations(tx, clock)
        cfg = ConfigService(SqlConfigStore(tx), clock)
        # a new answer is the next version; a device template still overrides the answer
        svc.set_checklist(admin, code, "FAL-0001", {"placement": "pendant"}, expected_version=None)
        assert cfg.commit(gw).config["devices"][fall] == {"role": "fall", "placement": "pendant"}
        cfg.set_key(Scope.DEVICE, fall, "placement", "waist", by="tech")
        assert cfg.render(gw)["devices"][fall]["placement"] == "waist"
        with pytest.raises(ConfigValidationError, match="placement"):
            cfg.set_key(Scope.DEVICE, fall, "placement", "ankle", by="tech")
        # the installation cannot be completed without the answer (checked before test alarms)
        svc.set_checklist(admin, code, "BTN-0001", GENERAL, expected_version=None)
        for d in svc.missing_test_alarms(code):
            svc.record_test_alarm(code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-1", seen_at=clock(),
                                  latency_ms=1.0)
        svc.complete(admin, code, expected_version=None)    # FAL-0001 answered: done


def test_complete_refuses_a_fall_sensor_without_its_placement(store, admin, clock):
    code = _installation(store, admin, clock)
    with store.transaction() as tx:
        svc = installations(tx, clock)
        for serial in ("BTN-0001", "FAL-0001"):
            svc.set_checklist(admin, code, serial, GENERAL, expected_version=None)
        for d in svc.missing_test_alarms(code):
            svc.record_test_alarm(code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-1", seen_at=clock(),
                                  latency_ms=1.0)
        with pytest.raises(CommissioningError, match="FAL-0001: placement"):
            svc.complete(admin, code, expected_version=None)


def test_the_in_memory_store_layers_installation_settings_the_same_way():
    fall, other = "a4c138300001", "a4c138300002"
    store = MemoryConfigStore(devices={"gw-1": [fall, other]},
                              installed={"gw-1": {fall: {"role": "fall", "placement": "wrist"},
                                                  other: {"role": "fall", "placement": "pocket"}}})
    store.templates[(Scope.DEVICE, fall)] = {"role": "fall"}
    store.templates[(Scope.DEVICE, other)] = {"role": "button"}     # configured as another role: not applied
    svc = ConfigService(store, clock=FixedClock(1_800_000_000.0))
    assert svc.render("gw-1")["devices"] == {fall: {"role": "fall", "placement": "wrist"}, other: {"role": "button"}}
