"""A realistic demo dataset, built through the domain services (so it obeys every rule)."""
from __future__ import annotations

import random
from typing import Callable

from .access import AccessService, Actor, Role
from .clock import FixedClock
from .errors import ValidationError
from .store import Store, Tx

MUNICIPALITIES = (("0301", "Oslo", "OSL"), ("4601", "Bergen", "BGO"), ("5001", "Trondheim", "TRD"))
MODELS = (
    ("WT-GW-1", "Home gateway (Raspberry Pi)", "gateway", "wifi+lte", "wt-gateway"),
    ("WT-BTN-2", "Safety alarm button", "button", "ble", "wt-sensor"),
    ("WT-FALL-1", "Fall sensor (wrist)", "fall", "ble", "wt-sensor"),
    ("WT-BED-1", "Bed sensor", "bed", "serial", "wt-sensor"),
    ("WT-DOOR-1", "Door sensor", "door", "ble", "wt-sensor"),
    ("WT-GPS-1", "GPS tracker", "gps", "ble+lte", "wt-tracker"),
    ("MD-DISP-3", "Medicine dispenser", "dispenser", "serial", "vendor-md"),
)
KITS = (("safety-alarm", "Safety alarm (gateway + button + fall sensor)", {"gateway": 1, "button": 1, "fall": 1}),
        ("night-supervision", "Digital night supervision (gateway + bed + door)", {"gateway": 1, "bed": 1, "door": 1}))
ROUTING = {"response_centre": "arc-{m}", "staff_group": "home-care-{m}-zone-{z}",
           "relatives": [{"relation": "daughter"}], "escalation_s": [120, 300]}
ANSWERS = {"alarm_recipient": "municipal response centre", "responder": "home care night team",
           "technical_settings": {"window": "20:30-06:00", "delay_min": 30},
           "relatives_agreement": "daughter is called if home care does not answer",
           "charging_routine": "home care charges the button on Mondays", "supervision_checks_count": 2,
           "supervision_check_times": ["23:00", "03:00"], "care_plan_updated": "yes"}
DEMO_PASSWORD = "demo"


def build(store: Store, *, at: float, seed: int = 7, homes: int = 12, rooms: int = 8,
          say: Callable[[str], None] = lambda s: None) -> dict[str, int]:
    from .access._sql import SqlAccessRepo
    from .installations import InstallationService
    from .installations._sql import SqlInstallationRepo
    from .inventory import InventoryService, NewItem
    from .inventory import ItemState as S
    from .inventory._sql import SqlInventoryRepo
    from .monitoring._sql import upsert_gateway_status

    def inventory(tx: Tx, t: float = at) -> InventoryService:
        return InventoryService(SqlInventoryRepo(tx), FixedClock(t))

    def installations(tx: Tx, t: float) -> InstallationService:
        return InstallationService(SqlInstallationRepo(tx), inventory(tx, t), FixedClock(t))

    rng = random.Random(seed)
    root = Actor("demo-setup", Role.ADMIN)
    with store.transaction(write=False) as tx:
        if inventory(tx).municipalities():
            raise ValidationError("the database is not empty; demo-data fills an empty database only "
                                  "(use --db sqlite:///tmp/demo.db)")
    hexn = iter(range(1, 10**6))

    def hx() -> str:
        return f"d0e0{next(hexn):08x}"

    counts = {"items": 0, "kits": 0, "installations": 0}
    with store.transaction() as tx:
        inv = inventory(tx)
        for code, name, role, radio, fw in MODELS:
            inv.add_model(root, code, name, role, radio, fw)
        for code, name, parts in KITS:
            inv.add_kit_template(root, code, name, parts)
        inv.add_location(root, "REPAIR-NORDIC", "repair_vendor", "Nordic Care Repairs AS", municipality=None)
        for mid, mname, short in MUNICIPALITIES:
            inv.add_municipality(root, mid, mname)
            inv.add_location(root, f"WH-{short}", "warehouse", f"{mname} technical store", municipality=mid)
            for v in (1, 2):
                inv.add_location(root, f"VAN-{short}-{v}", "van", f"{mname} service van {v}", municipality=mid)
            for h in range(1, homes + 1):
                inv.add_location(root, f"HOME-{short}-{h:04d}", "home", municipality=mid)
            inv.add_location(root, f"INST-{short}-1", "institution", f"{mname} care home", municipality=mid)
            for r in range(1, rooms + 1):
                inv.add_location(root, f"INST-{short}-1/{100 + r}", "room", f"Room {100 + r}", municipality=None,
                                 parent=f"INST-{short}-1")
        # users (password 'demo'); scoped technicians per municipality
        users = AccessService(SqlAccessRepo(tx), FixedClock(at))
        users.create_user(root, "admin", "admin", municipalities=None, password=DEMO_PASSWORD)
        users.create_user(root, "audrey", "auditor", municipalities=None, password=DEMO_PASSWORD)
        users.create_user(root, "sam", "support", municipalities=None, password=DEMO_PASSWORD)
        for mid, _, short in MUNICIPALITIES:
            users.create_user(root, f"tech.{short.lower()}", "technician", municipalities=[mid],
                              password=DEMO_PASSWORD)
            users.create_user(root, f"log.{short.lower()}", "logistics", municipalities=[mid], password=DEMO_PASSWORD)
    say("catalog, locations and users created")

    for mid, mname, short in MUNICIPALITIES:
        wh = f"WH-{short}"
        per_model = {"WT-GW-1": homes + 6, "WT-BTN-2": homes + 8, "WT-FALL-1": homes // 2 + 6, "WT-BED-1": 8,
                     "WT-DOOR-1": 8, "WT-GPS-1": 5, "MD-DISP-3": 4}
        items = []
        for model, n in per_model.items():
            prefix = model.split("-")[1]
            for i in range(n):
                items.append(NewItem(f"SN-{short}-{prefix}-{i:05d}", model, hx() if model != "MD-DISP-3" else None))
        with store.transaction() as tx:
            inv = inventory(tx)
            inv.receive_items(root, items, wh, ref=f"DN-{short}-2026-001")
            inv.set_reorder_point(root, wh, "WT-BTN-2", 10)
            inv.set_reorder_point(root, wh, "WT-FALL-1", 8)
            inv.set_reorder_point(root, wh, "WT-GW-1", 5)
            inv.set_reorder_point(root, f"VAN-{short}-1", "WT-BTN-2", 2)
        counts["items"] += len(items)
        # kits: safety alarms for homes, night supervision for rooms
        free = {m: [it.serial for it in items if it.model_code == m] for m in per_model}
        kits = []
        with store.transaction() as tx:
            inv = inventory(tx)
            for k in range(homes - 2):
                kit = inv.assemble_kit(root, "safety-alarm",
                                       [free["WT-GW-1"].pop(), free["WT-BTN-2"].pop(), free["WT-FALL-1"].pop()])
                kits.append(("home", kit["code"]))
            for k in range(4):
                kit = inv.assemble_kit(root, "night-supervision",
                                       [free["WT-GW-1"].pop(), free["WT-BED-1"].pop(), free["WT-DOOR-1"].pop()])
                kits.append(("room", kit["code"]))
            counts["kits"] += len(kits)
            # one of each other state, so stock views show the whole life cycle
            btn = free["WT-BTN-2"]
            inv.move(root, btn.pop(), f"VAN-{short}-1", reason="van restock")
            inv.move(root, btn.pop(), f"VAN-{short}-1", reason="van restock")
            inv.transition(root, btn.pop(), S.REPAIR, reason="button does not click", location="REPAIR-NORDIC")
            inv.transition(root, btn.pop(), S.WRITTEN_OFF, reason="cracked housing")
        with store.transaction() as tx:
            inventory(tx).receive_items(root, [NewItem(f"SN-{short}-BTN-NEW{i}", "WT-BTN-2", hx()) for i in range(3)],
                                        wh, ref=f"DN-{short}-2026-002", state=S.RECEIVED)
        counts["items"] += 3
        # installations
        home_n = room_n = 0
        for idx, (kind, kit_code) in enumerate(kits[:-3]):
            if kind == "home":
                home_n += 1
                loc = f"HOME-{short}-{home_n:04d}"
            else:
                room_n += 1
                loc = f"INST-{short}-1/{100 + room_n}"
            resident = f"R-{short}{rng.randrange(16**5):05X}"
            routing = {**ROUTING, "response_centre": f"arc-{short.lower()}",
                       "staff_group": f"home-care-{short.lower()}-zone-{idx % 4 + 1}"}
            t = at + idx * 60
            with store.transaction() as tx:
                inst = installations(tx, t).create(root, resident_ref=resident, location=loc, kit=kit_code,
                                                   consent_kind="consent" if idx % 5 else "capacity_assessment",
                                                   consent_ref=None if idx % 5 else f"SAK-2026/{1000 + idx}",
                                                   consent_date="2026-11-01", routing=routing)
                code = inst["code"]
                counts["installations"] += 1
                if idx % 7 == 6:
                    continue  # left in commissioning
                ins = installations(tx, t)
                sensors = ins.commissioning_plan(root, code)[1]
                for d in sensors:
                    ins.set_checklist(root, code, d["serial"], ANSWERS, expected_version=None)
                    ins.record_test_alarm(code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-00000001",
                                          seen_at=t + 30, latency_ms=float(rng.randrange(40, 900)))
                installations(tx, t + 60).complete(root, code, expected_version=None)
                if idx % 9 == 8:
                    installations(tx, t + 120).deinstall(root, code, to_location=f"VAN-{short}-2",
                                                         expected_version=None)
                    # one returned sensor goes on to cleaning
                    inventory(tx, t + 200).transition(root, sensors[0]["serial"], S.CLEANING, reason="cleaning",
                                                      location=wh)
                online = rng.random() > 0.15
                upsert_gateway_status(tx, inst["gateway_id"], online=online, version="0.1.0",
                                      last_seen=at - (rng.randrange(10, 120) if online else rng.randrange(1800, 86400 * 3)),
                                      config_version=1 + idx % 3)
        say(f"{mname}: {len(items) + 3} items, {len(kits)} kits, installations done")
    return counts
