"""Input factories for fleet tests (catalog, ids)."""
from __future__ import annotations


def seed_catalog(store, actor, at: float = 1_795_400_000.0) -> None:
    """A small catalog: two municipalities, a warehouse, a van, a home, an institution
    with a room, four device models, a safety-alarm kit template."""
    from fleet import inventory as inv

    with store.transaction() as tx:
        inv.add_municipality(tx, actor, "0301", "Oslo", at=at)
        inv.add_municipality(tx, actor, "4601", "Bergen", at=at)
        inv.add_location(tx, actor, "WH-OSLO", "warehouse", "Oslo central store", municipality="0301", at=at)
        inv.add_location(tx, actor, "VAN-01", "van", "Van 1", municipality="0301", at=at)
        inv.add_location(tx, actor, "WH-BGO", "warehouse", "Bergen store", municipality="4601", at=at)
        inv.add_location(tx, actor, "HOME-0001", "home", municipality="0301", at=at)
        inv.add_location(tx, actor, "INST-SAGA", "institution", "Saga care home", municipality="0301", at=at)
        inv.add_location(tx, actor, "INST-SAGA/101", "room", "Room 101", municipality=None, parent="INST-SAGA", at=at)
        inv.add_location(tx, actor, "INST-SAGA/102", "room", "Room 102", municipality=None, parent="INST-SAGA", at=at)
        inv.add_location(tx, actor, "REPAIR-ACME", "repair_vendor", "Acme repairs", municipality=None, at=at)
        inv.add_model(tx, actor, "WT-GW-1", "Home gateway", "gateway", "wifi+lte", "wt-gateway", at=at)
        inv.add_model(tx, actor, "WT-BTN-2", "Alarm button", "button", "ble", "wt-sensor", at=at)
        inv.add_model(tx, actor, "WT-FALL-1", "Fall sensor", "fall", "ble", "wt-sensor", at=at)
        inv.add_model(tx, actor, "WT-BED-1", "Bed sensor", "bed", "serial", "wt-sensor", at=at)
        inv.add_kit_template(tx, actor, "safety-alarm", "Safety alarm kit",
                             {"gateway": 1, "button": 1, "fall": 1}, at=at)


def hexid(n: int) -> str:
    return f"a4c138{n:06x}"
