"""Installations on both backends: privacy validation, optimistic concurrency, completion
refused without test alarms, room move, deinstall, purge and its verification; the installation
service's rules on the in-memory fake and both SQL engines."""
from __future__ import annotations

import json

import pytest

from fleet import installations as ins
from fleet.access import Actor, Role
from fleet.errors import AccessDenied, CommissioningError, Conflict, InvalidTransition, ValidationError
from fleet.errors import NotFound as NotFoundError
from fleet.tests.factories import ANSWERS, ROUTING, access, hexid, installations, inventory, seed_catalog, stock_kit


@pytest.fixture
def world(store, admin, clock):
    seed_catalog(store, admin, clock())
    return store


def make(store, actor, clock, *, location="HOME-0001", n=1, resident="R-7F3K9Q"):
    kit = stock_kit(store, actor, clock(), n)
    with store.transaction() as tx:
        return installations(tx, clock).create(actor, resident_ref=resident, location=location, kit=kit,
                                               consent_kind="consent", consent_date="2026-11-20", routing=ROUTING)


def see_all_test_alarms(store, code, clock):
    with store.transaction() as tx:
        svc = installations(tx, clock)
        for d in svc.missing_test_alarms(code):
            svc.record_test_alarm(code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-00000001",
                                  seen_at=clock(), latency_ms=42.0)


def answer_all(store, actor, code, clock):
    with store.transaction() as tx:
        svc = installations(tx, clock)
        for d in svc.sensor_devices(tx.scalar("SELECT id FROM installation WHERE code = ?", (code,))):
            svc.set_checklist(actor, code, d["serial"], ANSWERS, expected_version=None)


@pytest.mark.parametrize("bad", ["01019012345", "010190 12345", "Kari Nordmann", "kari nordmann", "R 123", ""])
def test_resident_ref_rejects_national_ids_and_names(bad):
    with pytest.raises(ValidationError):
        ins.validate_resident_ref(bad)


def test_fnr_checksum_and_pseudonym_ok():
    assert ins.fnr_checksum_ok("01010750160")  # a valid synthetic number: still refused as resident id
    with pytest.raises(ValidationError, match="national identity number"):
        ins.validate_resident_ref("01010750160")
    assert ins.validate_resident_ref(" R-7F3K9Q ") == "R-7F3K9Q"


@pytest.mark.parametrize("doc", [{"name": "x"}, {"relatives_agreement": "call 01019012345"},
                                 {"note": {"Navn": "y"}}, {"who": ["Kari Nordmann"]}])
def test_personal_data_refused_anywhere_in_documents(doc):
    with pytest.raises(ValidationError):
        ins.check_no_personal_data(doc, "checklist")


def test_routing_validation_names_the_problem():
    with pytest.raises(ValidationError, match="escalation_s needs 2"):
        ins.validate_routing({**ROUTING, "escalation_s": [60]})
    with pytest.raises(ValidationError, match="relatives\\[0\\].name"):
        ins.validate_routing({**ROUTING, "relatives": [{"relation": "son", "name": "Ola"}]})


def test_create_puts_kit_in_transit_and_audits(world, admin, clock):
    inst = make(world, admin, clock)
    assert inst["status"] == "commissioning" and inst["gateway_id"] == "gw-" + hexid(0x100001)
    assert {d["state"] for d in inst["devices"]} == {"in_transit"}
    with world.transaction(write=False) as tx:
        acts = [a["action"] for a in access(tx, clock).audit_entries(admin, entity="installation")]
        assert "installation.create" in acts
        # the audit log never holds the pseudonym itself
        assert "R-7F3K9Q" not in json.dumps(access(tx, clock).audit_entries(admin))


def test_read_of_personal_data_is_audited_and_scoped(world, admin, clock):
    inst = make(world, admin, clock)
    tech = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    auditor = Actor("aud", Role.AUDITOR, None)
    bergen = Actor("bob", Role.SUPPORT, frozenset({"4601"}))
    with world.transaction() as tx:
        assert installations(tx, clock).show(tech, inst["code"])["resident_ref"] == "R-7F3K9Q"
        assert "resident_ref" not in installations(tx, clock).show(auditor, inst["code"])
        reads = [a for a in access(tx, clock).audit_entries(admin, entity="installation")
                 if a["action"] == "installation.read"]
        assert [(a["actor"], a["personal"]) for a in reads] == [("tina", True)]
    with pytest.raises(AccessDenied):
        with world.transaction() as tx:
            installations(tx, clock).show(bergen, inst["code"])


def test_two_technicians_no_lost_update(world, admin, clock):
    inst = make(world, admin, clock)
    code, v = inst["code"], inst["version"]
    a = Actor("anne", Role.TECHNICIAN, frozenset({"0301"}))
    b = Actor("bjorn", Role.TECHNICIAN, frozenset({"0301"}))
    serial = next(d["serial"] for d in inst["devices"] if d["role"] == "button")
    with world.transaction() as tx:
        installations(tx, clock).set_checklist(a, code, serial, {"charging_routine": "weekly"}, expected_version=v)
    with pytest.raises(Conflict, match=r"changed by anne .* reload it with `fleet install show"):
        with world.transaction() as tx:
            installations(tx, clock).set_checklist(b, code, serial, {"charging_routine": "daily"}, expected_version=v)
    with world.transaction() as tx:
        shown = installations(tx, clock).show(admin, code)
    assert shown["checklist"][serial]["charging_routine"] == "weekly" and shown["version"] == v + 1


def test_completion_refused_until_every_test_alarm_seen(world, admin, clock):
    inst = make(world, admin, clock)
    code = inst["code"]
    answer_all(world, admin, code, clock)
    with world.transaction() as tx:
        btn = next(d for d in inst["devices"] if d["role"] == "button")
        installations(tx, clock).record_test_alarm(code, device_id=btn["hw_id"], event_id="e1", seen_at=clock(),
                                                   latency_ms=30.0)
    with pytest.raises(CommissioningError, match=r"no test alarm seen at the platform from fall FAL-0001"):
        with world.transaction() as tx:
            installations(tx, clock).complete(admin, code, expected_version=None)
    see_all_test_alarms(world, code, clock)
    with world.transaction() as tx:
        installations(tx, clock).complete(admin, code, expected_version=None)
        shown = installations(tx, clock).show(admin, code)
    assert shown["status"] == "active" and {d["state"] for d in shown["devices"]} == {"installed"}


def test_completion_refused_with_incomplete_checklist(world, admin, clock):
    code = make(world, admin, clock)["code"]
    see_all_test_alarms(world, code, clock)
    with pytest.raises(CommissioningError, match="checklist incomplete"):
        with world.transaction() as tx:
            installations(tx, clock).complete(admin, code, expected_version=None)


def test_move_room_deinstall_purge_verify(world, admin, clock):
    inst = make(world, admin, clock, location="INST-SAGA/101")
    code = inst["code"]
    answer_all(world, admin, code, clock)
    see_all_test_alarms(world, code, clock)
    with world.transaction() as tx:
        installations(tx, clock).complete(admin, code, expected_version=None)
        installations(tx, clock).move_room(admin, code, "INST-SAGA/102", expected_version=None)
        assert {inventory(tx, clock).find_item(d["serial"])["location_id"] for d in inst["devices"]} == \
            {inventory(tx, clock).get_location("INST-SAGA/102")["id"]}
        installations(tx, clock).deinstall(admin, code, to_location="VAN-01", expected_version=None,
                                           retention_s=86400)
        assert {inventory(tx, clock).find_item(d["serial"])["state"] for d in inst["devices"]} == {"returned"}
        assert installations(tx, clock).purge(admin) == []          # not due yet
        before = installations(tx, clock).verify_purged(admin, code, resident_ref="R-7F3K9Q")
    assert not before["ok"] and "installation.resident_ref still holds data" in before["problems"]
    clock.advance(86400)
    with world.transaction() as tx:
        assert installations(tx, clock).purge(admin) == [code]
        after = installations(tx, clock).verify_purged(admin, code, resident_ref="R-7F3K9Q")
    assert after["ok"], after["problems"]
    assert after["text_columns_scanned"] > 10


def test_handover_report_markdown_and_html(world, admin, clock):
    inst = make(world, admin, clock)
    answer_all(world, admin, inst["code"], clock)
    see_all_test_alarms(world, inst["code"], clock)
    with world.transaction() as tx:
        shown = installations(tx, clock).show(admin, inst["code"])
    md = ins.render_markdown(shown)
    assert "# Handover report — installation I-000001" in md and "42 ms" in md and "after 120 s" in md
    assert "Who goes out on the alarm? | home care night team" in md
    html = ins.render_html({**shown, "routing": {**ROUTING, "staff_group": "<script>"}})
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_concurrent_edits_on_two_connections_one_conflict(world, store_url, admin, clock):
    """Two technicians on two database connections save at the same moment: one wins,
    the other gets a Conflict — never a silent lost update."""
    import threading

    from fleet.store import open_store

    inst = make(world, admin, clock)
    code, v = inst["code"], inst["version"]
    serial = next(d["serial"] for d in inst["devices"] if d["role"] == "button")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def edit(name: str, answer: str) -> None:
        s = open_store(store_url)
        try:
            barrier.wait(10)
            with s.transaction() as tx:
                installations(tx, clock).set_checklist(Actor(name, Role.TECHNICIAN, None), code, serial,
                                                       {"charging_routine": answer}, expected_version=v)
            results[name] = "ok"
        except Conflict as exc:
            results[name] = exc
        finally:
            s.close()

    threads = [threading.Thread(target=edit, args=(n, a)) for n, a in (("anne", "weekly"), ("bjorn", "daily"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(r).__name__ for r in results.values()) == ["Conflict", "str"]
    winner = next(n for n, r in results.items() if r == "ok")
    with world.transaction() as tx:
        shown = installations(tx, clock).show(admin, code)
    assert shown["version"] == v + 1
    assert shown["checklist"][serial]["charging_routine"] == {"anne": "weekly", "bjorn": "daily"}[winner]


# -- InstallationService on every backend: the in-memory fake, SQLite, PostgreSQL -----------------

@pytest.fixture
def site(backend, admin):
    from fleet.tests.factories import kit_for, seed

    with backend.tx() as s:
        seed(s.inventory, admin)
        backend.kits = [kit_for(s.inventory, admin, n) for n in (1, 2)]
    return backend


def _create(s, actor, kit, location="INST-SAGA/101", **kw):
    return s.installations.create(actor, resident_ref=kw.pop("resident", "R-7F3K9Q"), location=location, kit=kit,
                                  consent_kind=kw.pop("consent_kind", "consent"), consent_date="2026-11-20",
                                  routing=ROUTING, **kw)


def test_create_checks_place_kit_consent_and_scope(site, admin):
    bergen = Actor("bob", Role.TECHNICIAN, frozenset({"4601"}))
    with site.tx() as s:
        for call, error, message in (
                (lambda: _create(s, admin, site.kits[0], location="WH-OSLO"), ValidationError, "a warehouse"),
                (lambda: _create(s, admin, site.kits[0], consent_kind="capacity_assessment"), ValidationError,
                 "needs its reference"),
                (lambda: _create(s, admin, site.kits[0], resident="Kari Nordmann"), ValidationError, "person's name"),
                (lambda: _create(s, bergen, site.kits[0]), AccessDenied, "not scoped to municipality 0301"),
                (lambda: _create(s, admin, "K-999999"), NotFoundError, "no kit 'K-999999'")):
            with pytest.raises(error, match=message):
                call()
        inst = _create(s, admin, site.kits[0], consent_kind="capacity_assessment", consent_ref="SAK-2026/1")
        assert inst["code"] == "I-000001" and inst["kit"] == site.kits[0] and inst["institution"] == "INST-SAGA"
        assert inst["consent"] == {"kind": "capacity_assessment", "ref": "SAK-2026/1", "date": "2026-11-20"}
        # the kit stays 'assembled' until completion; its items are already on their way
        with pytest.raises(InvalidTransition, match="cannot go from in_transit to in_transit"):
            _create(s, admin, site.kits[0], location="INST-SAGA/102")


def test_stale_edits_conflict_and_ended_installations_are_read_only(site, admin, clock):
    a, b = Actor("anne", Role.TECHNICIAN, frozenset({"0301"})), Actor("bjorn", Role.TECHNICIAN, frozenset({"0301"}))
    with site.tx() as s:
        inst = _create(s, admin, site.kits[0])
        code, v = inst["code"], inst["version"]
        assert s.installations.set_routing(a, code, {**ROUTING, "escalation_s": [60, 120]}, expected_version=v) == v + 1
        with pytest.raises(Conflict, match="changed by anne"):
            s.installations.set_consent(b, code, "consent", "2026-12-01", None, expected_version=v)
        assert s.installations.set_consent(b, code, "consent", "2026-12-01", None, expected_version=v + 1) == v + 2
        with pytest.raises(ValidationError, match="is not a device of"):
            s.installations.set_checklist(a, code, "NOPE-1", {"responder": "x"}, expected_version=None)
        busy = _create(s, admin, site.kits[1], location="INST-SAGA/102", resident="R-OTHER1")
        with pytest.raises(ValidationError, match=f"already has installation {busy['code']}"):
            s.installations.move_room(a, code, "INST-SAGA/102", expected_version=None)
        with pytest.raises(ValidationError, match="already at INST-SAGA/101"):
            s.installations.move_room(a, code, "INST-SAGA/101", expected_version=None)
        s.installations.deinstall(a, code, to_location="VAN-01", expected_version=None)
        with pytest.raises(InvalidTransition, match="can no longer be edited"):
            s.installations.set_routing(a, code, ROUTING, expected_version=None)
        with pytest.raises(InvalidTransition, match="due for purge later"):
            s.installations.purge(admin, code=code)
        assert s.installations.purge(admin, code=code, force=True) == [code]
        assert s.installations.show(admin, code)["resident_ref"] is None
        assert s.inventory.get_kit(site.kits[0])["state"] == "dismantled"


def test_commissioning_keeps_each_devices_latest_test_alarm(site, admin):
    tina = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    with site.tx() as s:
        code = _create(s, admin, site.kits[0])["code"]
        gateway, devices = s.installations.commissioning_plan(tina, code)
        assert gateway == "gw-" + hexid(0x100001) and [d["role"] for d in devices] == ["button", "fall"]
        first = devices[0]["hw_id"]
        assert s.installations.record_test_alarm(code, device_id=first, event_id="e1", seen_at=1.0, latency_ms=5.0)
        assert [d["hw_id"] for d in s.installations.missing_test_alarms(code)] == [devices[1]["hw_id"]]
        # a later test alarm replaces the one kept (True only for the device's first)
        assert not s.installations.record_test_alarm(code, device_id=first, event_id="e2", seen_at=2.0, latency_ms=None)
        # a redelivered one, or an older one arriving late, does not
        assert not s.installations.record_test_alarm(code, device_id=first, event_id="e2", seen_at=3.0, latency_ms=9.0)
        assert not s.installations.record_test_alarm(code, device_id=first, event_id="e0", seen_at=0.5, latency_ms=9.0)
        assert [d["hw_id"] for d in s.installations.missing_test_alarms(code)] == [devices[1]["hw_id"]]
        assert s.installations.show(admin, code)["test_alarms"] == [
            {"device_id": first, "event_id": "e2", "seen_at": 2.0, "latency_ms": None, "placement": None,
             "placement_expected": None}]
        with pytest.raises(AccessDenied):
            s.installations.commissioning_plan(Actor("aud", Role.AUDITOR), code)
