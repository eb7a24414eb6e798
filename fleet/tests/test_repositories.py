"""The in-memory fakes honour the same port contract as the SQL adapters: one scripted scenario
through the services gives the same reads on the fakes, SQLite and PostgreSQL, and the same
errors for the same mistakes. (Unit tests of the services run on the fakes; this is what makes
their verdicts trustworthy.)"""
from __future__ import annotations

import pytest

from fleet.access import Actor, Role
from fleet.errors import IntegrityViolation, ValidationError
from fleet.inventory import ItemState as S
from fleet.inventory import NewItem, receive_delivery_note
from fleet.store import open_store
from fleet.tests.factories import ANSWERS, ROUTING, World, hexid, kit_for, seed

_IDS = {"id", "location_id", "parent_id", "kit_id", "installation_id"}


def _plain(x):
    """Drop surrogate keys (PostgreSQL may number bulk-loaded rows differently) and unify bools."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if k not in _IDS}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, bool):
        return int(x)
    return x


def scenario(backend: World, admin: Actor) -> dict:
    clock = backend.clock
    tina = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    with backend.tx() as s:
        seed(s.inventory, admin)
        s.access.create_user(admin, "tina", "technician", municipalities=["0301"], password="pw")
        kits = [kit_for(s.inventory, admin, n) for n in (1, 2)]
        s.inventory.receive_items(admin, [NewItem(f"BTN-X{i}", "WT-BTN-2", hexid(0x400000 + i)) for i in range(4)],
                                  "WH-OSLO", state=S.RECEIVED, ref="DN-1")
        s.inventory.receive_items(admin, [NewItem("BED-1", "WT-BED-1")], "WH-BGO")
        s.inventory.set_reorder_point(admin, "WH-OSLO", "WT-BTN-2", 5)
        s.inventory.set_reorder_point(admin, "VAN-01", "WT-FALL-1", 1)
    clock.advance(60)
    with backend.tx() as s:
        s.inventory.transition(admin, "BTN-X0", S.IN_STOCK, reason="checked")
        s.inventory.transition(admin, "BTN-X1", S.REPAIR, reason="broken", location="REPAIR-ACME", ref="RMA-1")
        s.inventory.move(admin, "BTN-X2", "VAN-01", reason="van restock")
        s.inventory.dismantle_kit(admin, kits[1])
        inst = s.installations.create(admin, resident_ref="R-PARITY1", location="INST-SAGA/101", kit=kits[0],
                                      consent_kind="consent", consent_date="2026-11-20", routing=ROUTING)
        code = inst["code"]
        for d in s.installations.commissioning_plan(admin, code)[1]:
            s.installations.set_checklist(tina, code, d["serial"], ANSWERS, expected_version=None)
            s.installations.record_test_alarm(code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-1",
                                              seen_at=clock(), latency_ms=12.5)
    clock.advance(60)
    with backend.tx() as s:
        s.installations.complete(tina, code, expected_version=None)
        s.installations.move_room(tina, code, "INST-SAGA/102", expected_version=None)
    reads: dict = {}
    with backend.tx() as s:
        inv, ins = s.inventory, s.installations
        reads["active"] = ins.show(tina, code)
        reads["stock"] = inv.stock_levels(admin)
        reads["stock_oslo"] = inv.stock_levels(tina)
        reads["reorder"] = inv.reorder_warnings(admin)
        reads["items"] = inv.list_items(admin, limit=1000)
        reads["items_oslo_van"] = inv.list_items(tina, location="VAN-01")
        reads["devices"] = [inv.device_show(admin, k) for k in ("GW-0001", hexid(0x200001), "BTN-X1", "BED-1")]
        reads["kits"] = inv.kits()
        reads["kit"] = inv.get_kit(kits[1])
        reads["templates"] = inv.kit_templates()
        reads["locations"] = inv.locations(admin)
        reads["locations_oslo"] = inv.locations(tina, kind="room")
        reads["municipalities"] = inv.municipalities()
        reads["models"] = inv.models()
        reads["installations"] = ins.list_installations(admin)
    clock.advance(60)
    with backend.tx() as s:
        s.installations.deinstall(tina, code, to_location="VAN-01", expected_version=None, retention_s=3600)
        reads["before_purge"] = s.installations.verify_purged(admin, code, resident_ref="R-PARITY1")
    clock.advance(3600)
    with backend.tx() as s:
        reads["purged"] = s.installations.purge(admin)
        reads["after_purge"] = s.installations.verify_purged(admin, code, resident_ref="R-PARITY1")
        reads["returned"] = s.inventory.list_items(admin, state="returned")
        reads["users"] = s.access.list_users(admin)
        reads["audit"] = s.access.audit_entries(admin, limit=1000)
    for k in ("before_purge", "after_purge"):
        reads[k].pop("text_columns_scanned")     # the fake has fewer columns to search
    return _plain(reads)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_fake_and_sql_adapters_give_the_same_reads(request, tmp_path, make_clock, admin, engine):
    fake = scenario(World(make_clock()), admin)
    url = f"sqlite:///{tmp_path / 'parity.db'}" if engine == "sqlite" else request.getfixturevalue("pg_dsn")
    with open_store(url) as store:
        sql = scenario(World(make_clock(), store), admin)
    assert fake.keys() == sql.keys()
    for key in fake:
        assert fake[key] == sql[key], key
    assert not fake["before_purge"]["ok"] and fake["after_purge"]["ok"] and fake["purged"] == ["I-000001"]
    assert fake["active"]["status"] == "active" and len(fake["audit"]) > 30


def test_same_errors_for_the_same_mistakes(backend, admin):
    with backend.tx() as s:
        seed(s.inventory, admin)
        s.inventory.receive_items(admin, [NewItem("SN-1", "WT-BTN-2", hexid(1))], "WH-OSLO")
    for mistake in (lambda s: s.inventory.add_municipality(admin, "0301", "Oslo again"),
                    lambda s: s.inventory.add_location(admin, "WH-OSLO", "warehouse", municipality="0301"),
                    lambda s: s.inventory.add_model(admin, "WT-BTN-2", "x", "button", "ble", "wt"),
                    lambda s: s.inventory.add_kit_template(admin, "safety-alarm", "x", {"button": 1}),
                    lambda s: s.inventory.receive_items(admin, [NewItem("SN-1", "WT-BTN-2")], "WH-OSLO"),
                    lambda s: s.inventory.receive_items(admin, [NewItem("SN-2", "WT-BTN-2", hexid(1))], "WH-OSLO"),
                    lambda s: s.access.set_scope(admin, "root", add=["9999"]) if s.access.create_user(
                        admin, "root", "admin") else None):
        with pytest.raises(IntegrityViolation):
            with backend.tx() as s:
                mistake(s)
    with backend.tx(write=False) as s:          # nothing of the failed transactions was kept
        assert [r["serial"] for r in s.inventory.list_items(admin)] == ["SN-1"]
        assert s.access.list_users(admin) == []


def test_import_clash_is_named_and_nothing_is_stored(backend, admin, clock):
    with backend.tx() as s:
        seed(s.inventory, admin)
        s.inventory.receive_items(admin, [NewItem("SN-A", "WT-BTN-2", hexid(7))], "WH-OSLO")
    note = "serial,model,hw_id\nSN-B,WT-BTN-2,a4c138000008\nSN-C,WT-BTN-2,a4c138000007\n"
    with pytest.raises(ValidationError, match="line 3: device id a4c138000007 already belongs to another item; "
                                              "nothing was imported"):
        receive_delivery_note(backend.transactions(), clock, admin, note, "WH-OSLO", ref="DN-9")
    with backend.tx(write=False) as s:
        assert [r["serial"] for r in s.inventory.list_items(admin)] == ["SN-A"]
    assert receive_delivery_note(backend.transactions(), clock, admin, note.replace("07\n", "09\n"), "WH-OSLO") == 2
