"""Inventory on both backends: transitions table, ledger, stock levels, kits, CSV import."""
from __future__ import annotations

import pytest

from fleet import inventory as inv
from fleet.access import Actor, Role
from fleet.errors import AccessDenied, InvalidTransition, NotFound, ValidationError
from fleet.inventory import ItemState as S

from fleet.tests.factories import hexid, inventory, seed_catalog


@pytest.fixture
def catalog(store, admin, clock):
    seed_catalog(store, admin, clock())
    return store


def receive(store, actor, clock, items, loc="WH-OSLO", **kw):
    with store.transaction() as tx:
        return inventory(tx, clock).receive_items(actor, items, loc, **kw)


def test_full_life_cycle_is_in_the_ledger(catalog, admin, clock):
    receive(catalog, admin, clock, [inv.NewItem("SN-1", "WT-BTN-2", hexid(1))], state=S.RECEIVED, ref="DN-7")
    steps = [(S.IN_STOCK, None), (S.IN_TRANSIT, "VAN-01"), (S.INSTALLED, "HOME-0001"), (S.RETURNED, "VAN-01"),
             (S.CLEANING, "WH-OSLO"), (S.TESTED, None), (S.IN_STOCK, None)]
    for target, loc in steps:
        clock.advance(60)
        with catalog.transaction() as tx:
            inventory(tx, clock).transition(admin, "SN-1", target, reason=f"to {target.value}", location=loc)
    with catalog.transaction(write=False) as tx:
        shown = inventory(tx, clock).device_show(admin, hexid(1))  # lookup by device id works too
    assert shown["state"] == "in_stock" and shown["location"] == "WH-OSLO"
    hist = list(reversed(shown["history"]))
    assert [h["to_state"] for h in hist] == ["received"] + [t.value for t, _ in steps]
    assert hist[0]["ref"] == "DN-7" and hist[0]["from_state"] is None
    assert hist[3]["to_location"] == "HOME-0001" and all(h["actor"] == "root" for h in hist)


@pytest.mark.parametrize("start,bad", [(S.IN_STOCK, S.INSTALLED), (S.IN_STOCK, S.RETURNED), (S.IN_STOCK, S.TESTED)])
def test_disallowed_transition_is_refused_and_nothing_changes(catalog, admin, clock, start, bad):
    receive(catalog, admin, clock, [inv.NewItem("SN-2", "WT-BTN-2", None)], state=start)
    with pytest.raises(InvalidTransition, match="cannot go from in_stock"):
        with catalog.transaction() as tx:
            inventory(tx, clock).transition(admin, "SN-2", bad, reason="x")
    with catalog.transaction(write=False) as tx:
        assert inventory(tx, clock).find_item("SN-2")["state"] == "in_stock"
        assert tx.scalar("SELECT count(*) FROM item_movement") == 1


def test_written_off_is_terminal():
    for s in S:
        if s is not S.WRITTEN_OFF:
            continue
        with pytest.raises(InvalidTransition, match="terminal"):
            inv.check_transition("X", s, S.IN_STOCK)


def test_every_state_is_reachable_from_received():
    seen, todo = {S.RECEIVED}, [S.RECEIVED]
    while todo:
        for t in inv.TRANSITIONS[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    assert seen == set(S)


def test_stock_levels_and_reorder_warning(catalog, admin, clock):
    receive(catalog, admin, clock, [inv.NewItem(f"BTN-{i}", "WT-BTN-2", hexid(i)) for i in range(3)])
    receive(catalog, admin, clock, [inv.NewItem(f"FAL-{i}", "WT-FALL-1", hexid(100 + i)) for i in range(6)])
    with catalog.transaction() as tx:
        inventory(tx, clock).set_reorder_point(admin, "WH-OSLO", "WT-BTN-2", 5)
        inventory(tx, clock).set_reorder_point(admin, "WH-OSLO", "WT-FALL-1", 5)
        inventory(tx, clock).set_reorder_point(admin, "VAN-01", "WT-GW-1", 1)
        levels = inventory(tx, clock).stock_levels(admin)
    by = {(r["location"], r["model"]): r for r in levels}
    assert by[("WH-OSLO", "WT-BTN-2")]["in_stock"] == 3 and by[("WH-OSLO", "WT-BTN-2")]["warning"] == "REORDER"
    assert by[("WH-OSLO", "WT-FALL-1")]["in_stock"] == 6 and by[("WH-OSLO", "WT-FALL-1")]["warning"] == ""
    assert by[("VAN-01", "WT-GW-1")]["in_stock"] == 0 and by[("VAN-01", "WT-GW-1")]["warning"] == "REORDER"


def test_stock_levels_scoped_to_municipality(catalog, admin, clock):
    receive(catalog, admin, clock, [inv.NewItem("BTN-1", "WT-BTN-2", None)], loc="WH-BGO")
    receive(catalog, admin, clock, [inv.NewItem("BTN-2", "WT-BTN-2", None)], loc="WH-OSLO")
    oslo_tech = Actor("tina", Role.TECHNICIAN, frozenset({"0301"}))
    with catalog.transaction(write=False) as tx:
        assert {r["location"] for r in inventory(tx, clock).stock_levels(oslo_tech)} == {"WH-OSLO"}
    with pytest.raises(AccessDenied, match="not scoped to municipality 4601"):
        with catalog.transaction() as tx:
            inventory(tx, clock).transition(oslo_tech, "BTN-1", S.REPAIR, reason="broken")


def test_kit_assembly_checks_template(catalog, admin, clock):
    receive(catalog, admin, clock, [inv.NewItem("GW1", "WT-GW-1", hexid(1)), inv.NewItem("BT1", "WT-BTN-2", hexid(2)),
                                    inv.NewItem("FA1", "WT-FALL-1", hexid(3)), inv.NewItem("BT2", "WT-BTN-2", hexid(4))])
    with pytest.raises(ValidationError, match="needs button×1, fall×1, gateway×1"):
        with catalog.transaction() as tx:
            inventory(tx, clock).assemble_kit(admin, "safety-alarm", ["GW1", "BT1", "BT2"])
    with catalog.transaction() as tx:
        kit = inventory(tx, clock).assemble_kit(admin, "safety-alarm", ["GW1", "BT1", "FA1"])
    assert {i["serial"]: i["state"] for i in kit["items"]} == {"GW1": "in_kit", "BT1": "in_kit", "FA1": "in_kit"}
    with catalog.transaction() as tx:
        svc = inventory(tx, clock)
        assert svc.find_item("GW1")["hw_id"] == "gw-" + hexid(1)
        svc.dismantle_kit(admin, kit["code"])
        assert svc.find_item("BT1")["state"] == "in_stock" and svc.find_item("BT1")["kit_id"] is None


def test_csv_import_is_atomic_and_names_the_line(catalog, admin, clock):
    good = "serial,model,hw_id\nSN-A,WT-BTN-2,A4:C1:38:00:00:01\nSN-B,WT-FALL-1,a4c138000002\nSN-C,WT-GW-1,\n"
    assert inv.import_delivery_note(catalog, admin, good, "WH-OSLO", at=clock(), ref="DN-1") == 3
    bad = "serial;model;hw_id\nSN-D;WT-BTN-2;a4c138000003\nSN-E;WT-BTN-2;zz\n"
    with pytest.raises(ValidationError, match="line 3: device id 'zz'"):
        inv.import_delivery_note(catalog, admin, bad, "WH-OSLO", at=clock())
    dup = "serial,model\nSN-F,WT-BTN-2\nSN-A,WT-BTN-2\n"
    with pytest.raises(ValidationError, match="line 3: serial SN-A is already registered"):
        inv.import_delivery_note(catalog, admin, dup, "WH-OSLO", at=clock())
    with pytest.raises(ValidationError, match="line 2: unknown model 'NOPE'"):
        inv.import_delivery_note(catalog, admin, "serial,model\nX-1,NOPE\n", "WH-OSLO", at=clock())
    with catalog.transaction(write=False) as tx:
        assert sorted(r["serial"] for r in tx.query("SELECT serial FROM item")) == ["SN-A", "SN-B", "SN-C"]
        assert inventory(tx, clock).find_item("SN-A")["hw_id"] == "a4c138000001"


def test_move_keeps_state_and_refuses_installed(catalog, admin, clock):
    receive(catalog, admin, clock, [inv.NewItem("MV-1", "WT-BTN-2", None)])
    with catalog.transaction() as tx:
        assert inventory(tx, clock).move(admin, "MV-1", "VAN-01", reason="restock van")["state"] == "in_stock"
        inventory(tx, clock).transition(admin, "MV-1", S.IN_TRANSIT, reason="to home")
        inventory(tx, clock).transition(admin, "MV-1", S.INSTALLED, reason="installed", location="HOME-0001")
    with pytest.raises(InvalidTransition, match="deinstall it first"):
        with catalog.transaction() as tx:
            inventory(tx, clock).move(admin, "MV-1", "WH-OSLO", reason="x")


def test_unknown_serial_names_the_fix(catalog, admin):
    with pytest.raises(NotFound, match="no item with serial or device id 'NOPE'"):
        with catalog.transaction(write=False) as tx:
            inv.device_show(tx, admin, "NOPE")     # the script API (bench/fleet_scale.py) over the service


@pytest.mark.parametrize("line,expected", [
    ("SN-123\r\n", "SN-123"), ("\x02SN-123\x03\n", "SN-123"), ("]C1SN-123\n", "SN-123"),
    ("  WTSN-123#\n", "SN-123"), ("(21)SN-9\n", "SN-9"),
])
def test_scanner_cleaning(line, expected):
    scan = inv.clean_scan(line, prefixes=("WT",), suffixes=("#",), gs1=True)
    assert scan.ok and scan.serial == expected


@pytest.mark.parametrize("line", ["", "\n", "SN 123", "é" * 5, "\x00\x01", "a" * 200])
def test_scanner_rejects_garbage_without_raising(line):
    assert not inv.clean_scan(line).ok


# -- InventoryService on every backend: the in-memory fake, SQLite, PostgreSQL ---------------------

@pytest.fixture
def shop(backend, admin):
    from fleet.tests.factories import seed

    with backend.tx() as s:
        seed(s.inventory, admin)
    return backend


@pytest.mark.parametrize("call,message", [
    (lambda inv, a: inv.add_municipality(a, "301", "Oslo"), "4-digit kommunenummer"),
    (lambda inv, a: inv.add_location(a, "X-1", "garage", municipality="0301"), "unknown location kind 'garage'"),
    (lambda inv, a: inv.add_location(a, "X-1", "room", municipality="0301"), "a room needs --parent"),
    (lambda inv, a: inv.add_location(a, "X-1", "room", municipality=None, parent="WH-OSLO"), "not an institution"),
    (lambda inv, a: inv.add_location(a, "X-1", "home", municipality=None), "belongs to a municipality"),
    (lambda inv, a: inv.add_location(a, "X-1", "home", "Storgata 1", municipality="0301"), "street addresses"),
    (lambda inv, a: inv.add_model(a, "M-1", "x", "toaster", "ble", "wt"), "unknown device role 'toaster'"),
    (lambda inv, a: inv.set_reorder_point(a, "WH-OSLO", "WT-BTN-2", -1), "negative"),
    (lambda inv, a: inv.add_kit_template(a, "k", "x", {"button": 0}), "bad kit part button=0"),
    (lambda inv, a: inv.receive_items(a, [inv_new("SN 1")], "WH-OSLO"), "serial 'SN 1' is not valid"),
    (lambda inv, a: inv.receive_items(a, [inv_new("SN-1", hw="zz")], "WH-OSLO"), "device id 'zz' is not valid"),
    (lambda inv, a: inv.receive_items(a, [inv_new("SN-1")], "WH-OSLO", state=S.INSTALLED), "start as received"),
])
def test_catalog_and_receipt_rules_name_the_fix(shop, admin, call, message):
    with pytest.raises((ValidationError, InvalidTransition), match=message):
        with shop.tx() as s:
            call(s.inventory, admin)


def inv_new(serial, model="WT-BTN-2", hw=None):
    return inv.NewItem(serial, model, hw)


def test_transitions_keep_the_ledger_and_the_kit_rules(shop, admin, clock):
    with shop.tx() as s:
        s.inventory.receive_items(admin, [inv_new("GW-1", "WT-GW-1", hexid(1)), inv_new("BT-1", hw=hexid(2)),
                                          inv_new("FA-1", "WT-FALL-1", hexid(3))], "WH-OSLO")
        kit = s.inventory.assemble_kit(admin, "safety-alarm", ["GW-1", "BT-1", "FA-1"], code="K-TEST")
        assert kit["code"] == "K-TEST" and {i["state"] for i in kit["items"]} == {"in_kit"}
        with pytest.raises(ValidationError, match="give a reason"):
            s.inventory.transition(admin, "BT-1", S.IN_TRANSIT, reason=" ")
        clock.advance(30)
        moved = s.inventory.transition(admin, "BT-1", S.IN_TRANSIT, reason="to a home", location="VAN-01")
        assert moved["kit_id"] == kit["id"] and moved["location_id"] == s.inventory.get_location("VAN-01")["id"]
        back = s.inventory.transition(admin, "BT-1", S.IN_STOCK, reason="not needed", location="WH-OSLO")
        assert back["kit_id"] is None                    # leaving a kit by going back on the shelf
        shown = s.inventory.device_show(admin, "gw-" + hexid(1))
        assert shown["kit"] == "K-TEST" and shown["role"] == "gateway" and "online" not in shown
        hist = s.inventory.item_history(back["id"])
        assert [(h["from_state"], h["to_state"], h["at"]) for h in hist] == [
            ("in_transit", "in_stock", clock()), ("in_kit", "in_transit", clock()),
            ("in_stock", "in_kit", clock() - 30), (None, "in_stock", clock() - 30)]
        with pytest.raises(InvalidTransition, match="only an assembled kit|only in_stock items"):
            s.inventory.assemble_kit(admin, "safety-alarm", ["GW-1", "BT-1", "FA-1"])


def test_reads_are_scoped_to_the_users_municipalities(shop, admin):
    bergen = Actor("bo", Role.LOGISTICS, frozenset({"4601"}))
    with shop.tx() as s:
        s.inventory.receive_items(admin, [inv_new("OSL-1")], "WH-OSLO")
        s.inventory.receive_items(admin, [inv_new("BGO-1")], "WH-BGO")
        assert [r["serial"] for r in s.inventory.list_items(bergen)] == ["BGO-1"]
        assert {r["code"] for r in s.inventory.locations(bergen)} == {"WH-BGO", "REPAIR-ACME"}   # + no-municipality
        assert {r["location"] for r in s.inventory.stock_levels(bergen)} == {"WH-BGO"}
        with pytest.raises(AccessDenied, match="not scoped to municipality 0301"):
            s.inventory.device_show(bergen, "OSL-1")
        with pytest.raises(AccessDenied):
            s.inventory.move(bergen, "BGO-1", "VAN-01", reason="wrong van")
        assert s.inventory.move(bergen, "BGO-1", "REPAIR-ACME", reason="service")["state"] == "in_stock"
