"""A fall sensor must run the detector its checklist chose: the test fall's ``data.placement``
(0 wrist, 1 chest/pendant, 2 waist/pocket) is compared with the checklist's ``placement`` when the
commissioning tool reports it. A mismatch is recorded, answered with what to do, shown, and blocks
completion until a later test fall matches; a test alarm without a placement (older firmware)
does not block and is shown as "placement not reported". Service on the fake and both SQL
engines, migration 0202 on an existing database (SQLite and PostgreSQL), the API, the web view
and the handover report. The commissioning tool's side is in test_commission.py."""
from __future__ import annotations

import json
import shutil

import pytest

from fleet.errors import CommissioningError, IntegrityViolation, ValidationError
from fleet.installations import decode_alarm
from fleet.installations._placement import (
    expected_placement,
    placement_status,
    reported_placement,
)
from fleet.tests.factories import ANSWERS, ROUTING, hexid

FALL, BUTTON = hexid(0x300001), hexid(0x200001)


# -- the comparison ------------------------------------------------------------------------
def test_checklist_answers_map_to_the_detector_byte_and_bad_bytes_are_not_placements():
    assert {a: expected_placement(a) for a in ("wrist", "pendant", "waist", "pocket")} == \
        {"wrist": 0, "pendant": 1, "waist": 2, "pocket": 2}
    assert expected_placement(None) is None and expected_placement("ankle") is None
    assert [reported_placement({"placement": p}) for p in (0, 1, 2)] == [0, 1, 2]
    for bad in ({"placement": 3}, {"placement": -1}, {"placement": "1"}, {"placement": True}, {"placement": 1.0},
                {}, None, [1]):
        assert reported_placement(bad) is None, bad
    assert placement_status("pocket", 2) == "confirmed" and placement_status("wrist", 2) == "mismatch"
    assert placement_status("wrist", None) == "not_reported" and placement_status(None, 0) == "not_answered"


def _alarm(kind: str, data: dict) -> bytes:
    return json.dumps({"schema": "wt.alarm/1", "event_id": f"{FALL}-00000001", "device": FALL, "type": kind,
                       "test": True, "occurred_at": "2026-11-23T06:00:00.120Z", "data": data}).encode()


def test_the_commissioning_tool_takes_the_placement_from_a_fall_alarm_only():
    assert decode_alarm("gw-1", _alarm("fall_detected", {"peak_cg": 310, "placement": 0, "confidence": 80}),
                        1.0).placement == 0
    assert decode_alarm("gw-1", _alarm("fall_detected", {"peak_cg": 310}), 1.0).placement is None   # older firmware
    assert decode_alarm("gw-1", _alarm("fall_detected", {"placement": 7}), 1.0).placement is None
    assert decode_alarm("gw-1", _alarm("button_press", {"placement": 1}), 1.0).placement is None


# -- the service, on the fake and both engines --------------------------------------------
@pytest.fixture
def site(backend, admin):
    from fleet.tests.factories import kit_for, seed

    with backend.tx() as s:
        seed(s.inventory, admin)
        kit = kit_for(s.inventory, admin, 1)
        code = s.installations.create(admin, resident_ref="R-7F3K9Q", location="HOME-0001", kit=kit,
                                      consent_kind="consent", consent_date="2026-11-20", routing=ROUTING)["code"]
        for serial in ("BTN-0001", "FAL-0001"):
            s.installations.set_checklist(admin, code, serial, {**ANSWERS, "placement": "wrist"},
                                          expected_version=None)
        s.installations.record_test_alarm(code, device_id=BUTTON, event_id="b1", seen_at=10.0, latency_ms=5.0)
    backend.code = code
    return backend


def _fall(s, code, event_id, seen_at, placement):
    s.installations.record_test_alarm(code, device_id=FALL, event_id=event_id, seen_at=seen_at, latency_ms=9.0,
                                      placement=placement)


def test_a_mismatch_is_recorded_blocks_completion_until_a_later_test_fall_matches(site, admin):
    code = site.code
    with site.tx() as s:
        _fall(s, code, "f1", 11.0, 2)                       # the device still runs the waist detector
        [check] = s.installations.placement_checks(code)
        assert (check["serial"], check["status"], check["checklist"], check["expected"], check["reported"]) == \
            ("FAL-0001", "mismatch", "wrist", 0, 2)
        msg = check["message"]
        assert "fall sensor FAL-0001 (a4c138300001)" in msg and "waist/pocket detector (placement 2" in msg
        assert "checklist says wrist (placement 0)" in msg and "gateway status" in msg
        assert "gw-a4c138100001" in msg and "restart" in msg and f"fleet install checklist {code} FAL-0001" in msg
        assert msg.endswith("then trigger the test fall again") and msg.count("; ") == 1
        stored = {a["device_id"]: a for a in s.installations.show(admin, code)["test_alarms"]}
        assert (stored[FALL]["placement"], stored[FALL]["placement_expected"]) == (2, 0)   # recorded with it
        assert stored[BUTTON]["placement"] is None
        with pytest.raises(CommissioningError) as refused:
            s.installations.complete(admin, code, expected_version=None)
        assert refused.value.message.startswith(f"installation {code} is not done: fall sensor FAL-0001")
        assert refused.value.details["placement_mismatch"] == [
            {"serial": "FAL-0001", "hw_id": FALL, "checklist": "wrist", "expected": 0, "reported": 2}]
        assert s.installations.show(admin, code)["status"] == "commissioning"
        _fall(s, code, "f1", 12.0, 2)                       # the same alarm again changes nothing
        _fall(s, code, "f2", 13.0, 0)                       # the device got its setting: a new test fall
        assert s.installations.placement_checks(code)[0]["status"] == "confirmed"
        s.installations.complete(admin, code, expected_version=None)
        assert s.installations.show(admin, code)["status"] == "active"


def test_an_older_test_fall_arriving_late_does_not_undo_a_match(site, admin):
    with site.tx() as s:
        _fall(s, site.code, "f2", 13.0, 0)
        _fall(s, site.code, "f1", 11.0, 2)                  # delivered late: older than the one kept
        assert s.installations.placement_checks(site.code)[0]["status"] == "confirmed"


def test_no_placement_reported_does_not_block_and_is_said(site, admin):
    with site.tx() as s:
        _fall(s, site.code, "f1", 11.0, None)               # firmware before the placement byte
        [check] = s.installations.placement_checks(site.code)
        assert (check["status"], check["reported"], check["message"]) == ("not_reported", None, None)
        s.installations.complete(admin, site.code, expected_version=None)


def test_a_checklist_answered_again_is_what_the_test_fall_is_compared_with(site, admin):
    with site.tx() as s:
        _fall(s, site.code, "f1", 11.0, 1)
        assert s.installations.placement_checks(site.code)[0]["status"] == "mismatch"
        s.installations.set_checklist(admin, site.code, "FAL-0001", {"placement": "anheng"}, expected_version=None)
        assert s.installations.placement_checks(site.code)[0]["status"] == "confirmed"
        s.installations.complete(admin, site.code, expected_version=None)


def test_a_placement_that_is_no_detector_is_refused(site):
    with site.tx() as s, pytest.raises(ValidationError, match="0 wrist, 1 chest/pendant, 2 waist/pocket"):
        _fall(s, site.code, "f1", 11.0, 3)


# -- migration 0202 on a database that already holds test alarms -----------------------------
def test_migration_0202_adds_the_placement_to_existing_test_alarms(store_url, tmp_path):
    from fleet.store import migrate, open_store
    from fleet.store.migrate import MIGRATIONS_DIR

    before = tmp_path / "before"
    before.mkdir()
    for f in MIGRATIONS_DIR.glob("*.sql"):
        if not f.name.startswith("0202_"):
            shutil.copy(f, before / f.name)             # a database deployed before 0202
    store = open_store(store_url, migrate=False)
    try:
        migrate(store, directory=before)
        with store.transaction() as tx:
            tx.execute("INSERT INTO municipality (id, name) VALUES ('0301', 'Oslo')")
            iid = tx.scalar("INSERT INTO installation (code, municipality_id, status, created_at, created_by,"
                            " updated_at, updated_by) VALUES ('I-000001', '0301', 'commissioning', 1, 'a', 1, 'a')"
                            " RETURNING id")
            tx.execute("INSERT INTO installation_test_alarm (installation_id, device_id, event_id, seen_at,"
                       " latency_ms) VALUES (?, ?, 'e1', 1.0, 3.0)", (iid, FALL))
        assert migrate(store) == ["0202_test_alarm_placement"]
        with store.transaction(write=False) as tx:
            row = tx.one("SELECT event_id, placement, placement_expected FROM installation_test_alarm")
        assert row == {"event_id": "e1", "placement": None, "placement_expected": None}
        with store.transaction() as tx:
            tx.execute("UPDATE installation_test_alarm SET placement = 2, placement_expected = 0")
        with pytest.raises(IntegrityViolation), store.transaction() as tx:
            tx.execute("UPDATE installation_test_alarm SET placement = 3")       # no such detector
        assert migrate(store) == []
    finally:
        store.close()


# -- the API --------------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path, clock):
    from fleet.tests.test_api_support import build_world

    return build_world(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path, clock)


@pytest.fixture
def api_job(world):
    """An installation of a safety-alarm kit (gateway, button, fall sensor), checklist answered
    (the fall sensor worn on the wrist), as the technician."""
    from fleet.tests.test_api_support import PASSWORD, app_for, auth, client

    api = client(app_for(world))
    admin = auth(api.post("/api/v1/login", json={"user": "admin", "password": PASSWORD}).json()["token"])
    serials = [api.get("/api/v1/items", headers=admin, params={"location": "WH-OSL", "model": model,
                                                                "state": "in_stock"}).json()["items"][0]["serial"]
               for model in ("WT-GW-1", "WT-BTN-2", "WT-FALL-1")]
    kit = api.post("/api/v1/kits", headers=admin, json={"template": "safety-alarm", "serials": serials})
    assert kit.status_code == 201, kit.text
    r = api.post("/api/v1/installations", headers=admin, json={
        "resident_ref": "R-PLC42X", "location": "HOME-OSL-0002", "kit": kit.json()["code"],
        "consent_kind": "consent", "consent_date": "2026-11-20", "routing": ROUTING})
    assert r.status_code == 201, r.text
    job = r.json()
    tech = auth(api.post("/api/v1/login", json={"user": "tech.osl", "password": PASSWORD}).json()["token"])
    for d in job["devices"]:
        if d["role"] != "gateway":
            r = api.put(f"/api/v1/installations/{job['code']}/checklist/{d['serial']}", headers=tech,
                        json={"answers": {**ANSWERS, "placement": "wrist"}})
            assert r.status_code == 200, r.text
    return api, tech, job


def _post(api, tech, code, hw_id, event_id, seen_at, **extra):
    r = api.post(f"/api/v1/installations/{code}/test-alarms", headers=tech,
                 json={"device_id": hw_id, "event_id": event_id, "seen_at": seen_at, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_the_api_answers_a_mismatch_refuses_completion_and_accepts_a_later_match(api_job):
    api, tech, job = api_job
    code = job["code"]
    fall = next(d for d in job["devices"] if d["role"] == "fall")
    button = next(d for d in job["devices"] if d["role"] == "button")
    assert _post(api, tech, code, button["hw_id"], "b-1", 100.0)["placement"] is None       # not a fall sensor
    got = _post(api, tech, code, fall["hw_id"], "f-1", 101.0, placement=2)
    assert got["recorded"] is True and got["missing_test_alarms"] == [] and got["placement_mismatch"] == [fall["serial"]]
    assert got["placement"]["status"] == "mismatch" and got["placement"]["reported"] == 2
    msg = got["placement"]["message"]
    assert f"fall sensor {fall['serial']} ({fall['hw_id']})" in msg and "waist/pocket" in msg
    assert "checklist says wrist" in msg and "gateway status" in msg and "trigger the test fall again" in msg
    r = api.post(f"/api/v1/installations/{code}/complete", headers=tech, json={})
    assert r.status_code == 409 and r.json()["detail"].startswith(f"installation {code} is not done: fall sensor")
    assert "gateway status" in r.json()["errors"][0]["fix"]
    got = _post(api, tech, code, fall["hw_id"], "f-2", 102.0, placement=0)
    assert (got["recorded"], got["placement"]["status"], got["placement_mismatch"]) == (False, "confirmed", [])
    assert api.post(f"/api/v1/installations/{code}/complete", headers=tech, json={}).json()["status"] == "active"
    md = api.get(f"/api/v1/installations/{code}/handover", headers=tech).text
    assert "## Fall sensors: placement" in md and f"| {fall['serial']} | wrist (0) | wrist (0) | confirmed |" in md


def test_the_api_refuses_a_placement_that_is_no_detector(api_job):
    api, tech, job = api_job
    fall = next(d for d in job["devices"] if d["role"] == "fall")
    r = api.post(f"/api/v1/installations/{job['code']}/test-alarms", headers=tech,
                 json={"device_id": fall["hw_id"], "event_id": "f-1", "placement": 3})
    assert r.status_code == 422 and "placement" in r.text


def test_older_firmware_without_a_placement_completes_and_the_report_says_so(api_job):
    api, tech, job = api_job
    code = job["code"]
    for d in job["devices"]:
        if d["role"] != "gateway":
            assert _post(api, tech, code, d["hw_id"], f"{d['hw_id']}-1", 100.0)["placement_mismatch"] == []
    assert api.post(f"/api/v1/installations/{code}/complete", headers=tech, json={}).json()["status"] == "active"
    md = api.get(f"/api/v1/installations/{code}/handover", headers=tech).text
    assert "| wrist (0) | — | placement not reported (older firmware) |" in md


# -- the web view ---------------------------------------------------------------------------
def test_the_commissioning_page_shows_each_fall_sensors_placement_and_why_it_blocks(api_job, world):
    from fleet.tests.test_api_support import app_for
    from fleet.tests.test_web import Phone

    api, tech, job = api_job
    code = job["code"]
    fall = next(d for d in job["devices"] if d["role"] == "fall")
    button = next(d for d in job["devices"] if d["role"] == "button")
    phone = Phone(app_for(world), lang="en").login("tech.osl")
    url = f"/web/installations/{code}/commissioning"
    _post(api, tech, code, button["hw_id"], "b-1", 100.0)
    _post(api, tech, code, fall["hw_id"], "f-1", 101.0)
    page = phone.get(url).text
    assert "Placement not reported (older firmware" in page and 'data-placement="not_reported"' in page
    assert page.count('class="wait placement"') == 1 and 'id="complete" aria-describedby' in page   # not blocking
    _post(api, tech, code, fall["hw_id"], "f-2", 102.0, placement=1)
    page = phone.get(url).text
    assert "Wrong placement: the test fall says the pendant/chest detector, the checklist says wrist." in page
    assert "check gateway status on the gateway (device settings)" in page
    assert f"Fall sensor {fall['serial']} runs the pendant/chest detector, but the checklist says wrist" in page
    assert 'id="complete" disabled' in page
    r = phone.post(f"/web/installations/{code}/complete", {}, page=page)
    assert r.status_code == 409
    nb = phone.get(url + "?lang=nb").text
    assert "Feil plassering: testfallet sier detektoren for anheng/bryst, sjekklisten sier håndledd." in nb
    _post(api, tech, code, fall["hw_id"], "f-3", 103.0, placement=0)
    page = phone.get(url + "?lang=en").text
    assert "Placement confirmed: wrist (its test fall says it runs the wrist detector)" in page
    assert 'data-placement="confirmed"' in page and 'id="complete" aria-describedby' in page
    r = phone.post(f"/web/installations/{code}/complete", {}, page=page)
    assert r.status_code == 303
    rep = phone.get(f"/web/installations/{code}/report").text
    assert "Fall sensors: placement" in rep and "<td>confirmed</td>" in rep
