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


ROUTING = {"response_centre": "arc-oslo", "staff_group": "home-care-zone-3",
           "relatives": [{"relation": "daughter", "phone": "+47 912 34 567"}], "escalation_s": [120, 300]}

ANSWERS = {"alarm_recipient": "response centre arc-oslo", "responder": "home care night team",
           "technical_settings": {"window": "20:30-06:00", "delay_min": 30}, "relatives_agreement": "daughter is second contact",
           "charging_routine": "home care charges on Mondays", "supervision_checks_count": 2,
           "supervision_check_times": ["23:00", "03:00"], "care_plan_updated": "yes"}


def stock_kit(store, actor, at: float, n: int = 1, location: str = "WH-OSLO") -> str:
    """Receive a gateway, a button and a fall sensor and assemble a safety-alarm kit; returns the kit code."""
    from fleet import inventory as inv

    with store.transaction() as tx:
        inv.receive_items(tx, actor, [inv.NewItem(f"GW-{n:04d}", "WT-GW-1", hexid(0x100000 + n)),
                                      inv.NewItem(f"BTN-{n:04d}", "WT-BTN-2", hexid(0x200000 + n)),
                                      inv.NewItem(f"FAL-{n:04d}", "WT-FALL-1", hexid(0x300000 + n))], location, at=at)
        kit = inv.assemble_kit(tx, actor, "safety-alarm", [f"GW-{n:04d}", f"BTN-{n:04d}", f"FAL-{n:04d}"], at=at)
    return kit["code"]
