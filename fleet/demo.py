"""A realistic demo dataset, built through the domain services (so it obeys every rule).

Monitoring data goes the way a gateway's does: ``wt.state/1``, ``wt.health/1``,
``wt.alarm/1``/``wt.event/1`` and the platform's ``wt.ack/1`` payloads (contracts.payloads),
folded by the ingest (``build_batch``) and written by its SQL sink, so the ownership and
poison rules apply to the demo too. It gives ``fleet offline``, ``fleet monitor battery`` /
``devices`` and ``fleet stats benefits`` something to show: some gateways offline, a few
low batteries and a silent sensor, six weeks of care and technical alarms with operator
acknowledgements and cancellations, and a night-check baseline per municipality.
"""
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
           "supervision_check_times": ["23:00", "03:00"], "care_plan_updated": "yes",
           "placement": "wrist"}   # where the fall sensor is worn (its detector)
DEMO_PASSWORD = "demo"
SETUP_AGO_S = 60 * 86400           # the demo's deliveries and installations took place this long before `at`
HISTORY_S = 42 * 86400             # monitoring history (alarms, acks, outages) before `at`


def build(store: Store, *, at: float, seed: int = 7, homes: int = 12, rooms: int = 8,
          say: Callable[[str], None] = lambda s: None) -> dict[str, int]:
    from .access._sql import SqlAccessRepo
    from .installations import InstallationService
    from .installations._sql import SqlInstallationRepo
    from .inventory import InventoryService, NewItem
    from .inventory import ItemState as S
    from .inventory._sql import SqlInventoryRepo

    # The set-up happened two months ago (deliveries, kits, installations over a few days), so
    # the six weeks of monitoring history below follow the installations, as in real life.
    setup = at - SETUP_AGO_S

    def inventory(tx: Tx, t: float = setup) -> InventoryService:
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
    gateways: list[tuple[str, list[dict], int]] = []        # installed gateways and their sensors
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
        users = AccessService(SqlAccessRepo(tx), FixedClock(setup))
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
            t = setup + 86400 + idx * 3600
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
                                          seen_at=t + 30, latency_ms=float(rng.randrange(40, 900)),
                                          placement=0 if d["role"] == "fall" else None)   # its test fall: wrist
                installations(tx, t + 60).complete(root, code, expected_version=None)
                if idx % 9 == 8:
                    installations(tx, t + 120).deinstall(root, code, to_location=f"VAN-{short}-2",
                                                         expected_version=None)
                    # one returned sensor goes on to cleaning
                    inventory(tx, t + 200).transition(root, sensors[0]["serial"], S.CLEANING, reason="cleaning",
                                                      location=wh)
                if idx % 9 != 8:
                    gateways.append((inst["gateway_id"], sensors, 1 + idx % 3))
        say(f"{mname}: {len(items) + 3} items, {len(kits)} kits, installations done")
    counts["monitoring_messages"] = _monitoring(store, at, rng, gateways)
    say("gateway status, device health, alarms and acknowledgements ingested")
    return counts


def _monitoring(store: Store, at: float, rng: random.Random, gateways: list[tuple[str, list[dict], int]]) -> int:
    """Six weeks of what the installed gateways reported, through the ingest's own path."""
    from contracts.payloads import (ALARM_SCHEMA, EVENT_SCHEMA, HEALTH_SCHEMA, AckStatus, dumps, dumps_event,
                                    encode_ack, encode_state, event_doc, rfc3339)
    from contracts.topics import Topics

    from .monitoring import SqlMonitorSink, build_batch
    from .monitoring._queries import set_baseline

    msgs: list[tuple[str, bytes, float]] = []
    start = at - HISTORY_S
    seq = iter(range(1, 10**6))
    for n, (gw, sensors, config_version) in enumerate(gateways):
        t = Topics(gw)
        online = n % 7 != 3                                   # about one gateway in seven is offline
        last_seen = at - (rng.randrange(10, 120) if online else rng.randrange(1800, 86400 * 3))
        msgs.append((t.state, encode_state(gateway_id=gw, online=True, version="0.1.0", since=start), start))
        if rng.random() < 0.3:                                # a short outage earlier on
            down = start + rng.randrange(86400, 30 * 86400)
            msgs.append((t.state, encode_state(gateway_id=gw, online=False, version="0.1.0", since=down), down))
            back = down + rng.randrange(600, 6 * 3600)
            msgs.append((t.state, encode_state(gateway_id=gw, online=True, version="0.1.0", since=back), back))
        devices = []
        for k, d in enumerate(sensors):
            silent = n % 11 == 5 and k == 0                   # a sensor the gateway no longer hears
            battery = rng.choice((8, 14, 17)) if (n + k) % 6 == 1 else rng.randrange(35, 100)
            devices.append({"device": d["hw_id"], "role": d["role"], "battery_pct": battery, "rssi": -rng.randrange(50, 85),
                            "fw": "1.3.0" if k % 2 else "1.2.4", "silent": silent,
                            "last_seen": rfc3339(last_seen - (8 * 3600 if silent else rng.randrange(5, 60)))})
        msgs.append((t.health, dumps({"schema": HEALTH_SCHEMA, "gateway": gw, "at": rfc3339(last_seen),
                                      "version": "0.1.0", "uptime_s": int(last_seen - start),
                                      "uplink": {"state": "connected", "backlog": 0},
                                      "journal": {"depth": 0, "alarms_pending": 0},
                                      "config_version": config_version, "devices": devices}), last_seen))
        if not online:
            msgs.append((t.state, encode_state(gateway_id=gw, online=False, version="0.1.0", since=last_seen),
                         last_seen + 90))
        for _ in range(rng.randrange(1, 7)):                  # alarms over the six weeks
            d = rng.choice(sensors)
            occurred = start + rng.random() * (last_seen - start - 600)
            eid = f"{gw}-{next(seq):08d}"
            typ, klass = {"button": ("button_press", "care"), "fall": ("fall_detected", "care"),
                          "bed": ("bed_exit_night", "care"), "door": ("door_open_night", "care")}.get(
                d["role"], ("alarm", "care"))
            if rng.random() < 0.2:
                typ, klass = "low_battery", "technical"
            doc = event_doc(schema=ALARM_SCHEMA, event_id=eid, gateway=gw, device=d["hw_id"], role=d["role"],
                            klass=klass, type=typ, test=False, occurred_at=occurred, received_at=occurred + 0.2,
                            sent_at=occurred + 0.3, attempt=1, route="primary", data={})
            msgs.append((t.alarm, dumps_event(doc), occurred + 0.4))
            msgs.append((t.ack, encode_ack(event_id=eid, status=AckStatus.RECEIVED, by="arc", at=occurred + 0.6),
                         occurred + 0.7))
            if klass == "care" and rng.random() < 0.9:
                accepted = occurred + rng.randrange(20, 240)
                msgs.append((t.ack, encode_ack(event_id=eid, status=AckStatus.ACCEPTED, by="operator-7",
                                               at=accepted), accepted))
            if d["role"] in ("button", "fall") and rng.random() < 0.25:    # the wearer cancels a false alarm
                cid = f"{gw}-{next(seq):08d}"
                cancel = event_doc(schema=EVENT_SCHEMA, event_id=cid, gateway=gw, device=d["hw_id"], role=d["role"],
                                   klass="event", type="button_cancel" if d["role"] == "button" else "fall_cancelled",
                                   test=False, occurred_at=occurred + 20, received_at=occurred + 20.2,
                                   sent_at=occurred + 20.3, attempt=1, route="primary", data={"event_id": eid})
                msgs.append((t.event, dumps_event(cancel), occurred + 20.4))
    msgs.sort(key=lambda m: m[2])
    SqlMonitorSink(store).write(build_batch(msgs))
    with store.transaction() as tx:
        for mid, _, _ in MUNICIPALITIES:                      # physical night checks per home before
            set_baseline(tx, mid, 2.0, at=at, by="demo-setup")
    return len(msgs)
