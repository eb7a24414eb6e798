"""A realistic demo dataset, built through the domain functions (so it obeys every rule)."""
from __future__ import annotations

import random
from typing import Callable

from .access import Actor, Role, create_user
from .errors import ValidationError
from .store import Store

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
    from . import installations as ins
    from . import inventory as inv
    from .inventory import ItemState as S

    rng = random.Random(seed)
    root = Actor("demo-setup", Role.ADMIN)
    with store.transaction(write=False) as tx:
        if tx.scalar("SELECT count(*) FROM municipality"):
            raise ValidationError("the database is not empty; demo-data fills an empty database only "
                                  "(use --db sqlite:///tmp/demo.db)")
    hexn = iter(range(1, 10**6))

    def hx() -> str:
        return f"d0e0{next(hexn):08x}"

    counts = {"items": 0, "kits": 0, "installations": 0}
    with store.transaction() as tx:
        for code, name, role, radio, fw in MODELS:
            inv.add_model(tx, root, code, name, role, radio, fw, at=at)
        for code, name, parts in KITS:
            inv.add_kit_template(tx, root, code, name, parts, at=at)
        inv.add_location(tx, root, "REPAIR-NORDIC", "repair_vendor", "Nordic Care Repairs AS", municipality=None, at=at)
        for mid, mname, short in MUNICIPALITIES:
            inv.add_municipality(tx, root, mid, mname, at=at)
            inv.add_location(tx, root, f"WH-{short}", "warehouse", f"{mname} technical store", municipality=mid, at=at)
            for v in (1, 2):
                inv.add_location(tx, root, f"VAN-{short}-{v}", "van", f"{mname} service van {v}", municipality=mid, at=at)
            for h in range(1, homes + 1):
                inv.add_location(tx, root, f"HOME-{short}-{h:04d}", "home", municipality=mid, at=at)
            inv.add_location(tx, root, f"INST-{short}-1", "institution", f"{mname} care home", municipality=mid, at=at)
            for r in range(1, rooms + 1):
                inv.add_location(tx, root, f"INST-{short}-1/{100 + r}", "room", f"Room {100 + r}", municipality=None,
                                 parent=f"INST-{short}-1", at=at)
        # users (password 'demo'); scoped technicians per municipality
        create_user(tx, root, "admin", "admin", municipalities=None, password=DEMO_PASSWORD, at=at)
        create_user(tx, root, "audrey", "auditor", municipalities=None, password=DEMO_PASSWORD, at=at)
        create_user(tx, root, "sam", "support", municipalities=None, password=DEMO_PASSWORD, at=at)
        for mid, _, short in MUNICIPALITIES:
            create_user(tx, root, f"tech.{short.lower()}", "technician", municipalities=[mid], password=DEMO_PASSWORD, at=at)
            create_user(tx, root, f"log.{short.lower()}", "logistics", municipalities=[mid], password=DEMO_PASSWORD, at=at)
    say("catalog, locations and users created")

    for mid, mname, short in MUNICIPALITIES:
        wh = f"WH-{short}"
        per_model = {"WT-GW-1": homes + 6, "WT-BTN-2": homes + 8, "WT-FALL-1": homes // 2 + 6, "WT-BED-1": 8,
                     "WT-DOOR-1": 8, "WT-GPS-1": 5, "MD-DISP-3": 4}
        items = []
        for model, n in per_model.items():
            prefix = model.split("-")[1]
            for i in range(n):
                items.append(inv.NewItem(f"SN-{short}-{prefix}-{i:05d}", model, hx() if model != "MD-DISP-3" else None))
        with store.transaction() as tx:
            inv.receive_items(tx, root, items, wh, at=at, ref=f"DN-{short}-2026-001")
            inv.set_reorder_point(tx, root, wh, "WT-BTN-2", 10, at=at)
            inv.set_reorder_point(tx, root, wh, "WT-FALL-1", 8, at=at)
            inv.set_reorder_point(tx, root, wh, "WT-GW-1", 5, at=at)
            inv.set_reorder_point(tx, root, f"VAN-{short}-1", "WT-BTN-2", 2, at=at)
        counts["items"] += len(items)
        # kits: safety alarms for homes, night supervision for rooms
        free = {m: [it.serial for it in items if it.model_code == m] for m in per_model}
        kits = []
        with store.transaction() as tx:
            for k in range(homes - 2):
                kit = inv.assemble_kit(tx, root, "safety-alarm",
                                       [free["WT-GW-1"].pop(), free["WT-BTN-2"].pop(), free["WT-FALL-1"].pop()], at=at)
                kits.append(("home", kit["code"]))
            for k in range(4):
                kit = inv.assemble_kit(tx, root, "night-supervision",
                                       [free["WT-GW-1"].pop(), free["WT-BED-1"].pop(), free["WT-DOOR-1"].pop()], at=at)
                kits.append(("room", kit["code"]))
            counts["kits"] += len(kits)
            # one of each other state, so stock views show the whole life cycle
            btn = free["WT-BTN-2"]
            inv.move(tx, root, btn.pop(), f"VAN-{short}-1", reason="van restock", at=at)
            inv.move(tx, root, btn.pop(), f"VAN-{short}-1", reason="van restock", at=at)
            s = btn.pop()
            inv.transition(tx, root, s, S.REPAIR, reason="button does not click", location="REPAIR-NORDIC", at=at)
            s = btn.pop()
            inv.transition(tx, root, s, S.WRITTEN_OFF, reason="cracked housing", at=at)
        with store.transaction() as tx:
            inv.receive_items(tx, root, [inv.NewItem(f"SN-{short}-BTN-NEW{i}", "WT-BTN-2", hx()) for i in range(3)], wh,
                              at=at, ref=f"DN-{short}-2026-002", state=S.RECEIVED)
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
                inst = ins.create(tx, root, resident_ref=resident, location=loc, kit=kit_code,
                                  consent_kind="consent" if idx % 5 else "capacity_assessment",
                                  consent_ref=None if idx % 5 else f"SAK-2026/{1000 + idx}",
                                  consent_date="2026-11-01", routing=routing, at=t)
                code = inst["code"]
                counts["installations"] += 1
                if idx % 7 == 6:
                    continue  # left in commissioning
                for d in ins.sensor_devices(tx, tx.scalar("SELECT id FROM installation WHERE code = ?", (code,))):
                    ins.set_checklist(tx, root, code, d["serial"], ANSWERS, expected_version=None, at=t)
                    ins.record_test_alarm(tx, code, device_id=d["hw_id"], event_id=f"{d['hw_id']}-00000001",
                                          seen_at=t + 30, latency_ms=float(rng.randrange(40, 900)))
                ins.complete(tx, root, code, expected_version=None, at=t + 60)
                if idx % 9 == 8:
                    ins.deinstall(tx, root, code, to_location=f"VAN-{short}-2", expected_version=None, at=t + 120)
                    for d in tx.query("SELECT serial FROM item WHERE state = 'returned' AND location_id ="
                                      " (SELECT id FROM location WHERE code = ?)", (f"VAN-{short}-2",))[:1]:
                        inv.transition(tx, root, d["serial"], S.CLEANING, reason="cleaning", location=wh, at=t + 200)
                gw = inst["gateway_id"]
                online = rng.random() > 0.15
                tx.execute("INSERT INTO gateway_status (gateway_id, last_seen, online, version, config_version)"
                           " VALUES (?, ?, ?, ?, ?)",
                           (gw, at - (rng.randrange(10, 120) if online else rng.randrange(1800, 86400 * 3)), online,
                            "0.1.0", 1 + idx % 3))
        say(f"{mname}: {len(items) + 3} items, {len(kits)} kits, installations done")
    return counts
