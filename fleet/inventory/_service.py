"""Inventory operations over a Tx: locations, models, items, ledger, stock levels, kits.

Every function takes the open transaction, the acting user and ``at`` (the injected
clock's time); every change writes the movement ledger and/or the audit log in the same
transaction. No database driver is imported here.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from ..access import Actor, Permission, audit
from ..errors import InvalidTransition, NotFound, ValidationError
from ..store import Tx
from ._ids import check_code, normalise_hw_id, normalise_serial
from ._states import INITIAL_STATES, MOVABLE_STATES, ItemState, check_transition

LOCATION_KINDS = ("warehouse", "van", "home", "institution", "room", "repair_vendor")
ROLES = ("button", "fall", "bed", "door", "motion", "gps", "dispenser", "health", "gateway")


class NewItem(NamedTuple):
    """One item to register (a NamedTuple: cheap to build a million of)."""

    serial: str
    model_code: str
    hw_id: str | None = None
    line: int = 0            # source line (CSV import) for error messages


# ----------------------------------------------------------------- catalog
def add_municipality(tx: Tx, actor: Actor, mid: str, name: str, *, at: float) -> None:
    actor.require(Permission.CATALOG_WRITE)
    if not (mid.isdigit() and len(mid) == 4):
        raise ValidationError(f"municipality id {mid!r} must be the 4-digit kommunenummer, e.g. 0301", field="id")
    tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", (mid, name))
    audit(tx, actor, "municipality.create", "municipality", mid, at=at, municipality=mid)


def get_location(tx: Tx, code: str) -> dict[str, Any]:
    row = tx.one("SELECT * FROM location WHERE code = ?", (code,))
    if row is None:
        raise NotFound(f"no location {code!r}; list them with `fleet location list`", location=code)
    return row


def add_location(tx: Tx, actor: Actor, code: str, kind: str, name: str | None = None, *,
                 municipality: str | None, parent: str | None = None, at: float) -> dict[str, Any]:
    actor.require(Permission.CATALOG_WRITE, municipality)
    code = check_code(code, "location code")
    if kind not in LOCATION_KINDS:
        raise ValidationError(f"unknown location kind {kind!r}; use one of {', '.join(LOCATION_KINDS)}", field="kind")
    parent_id = None
    if kind == "room":
        if not parent:
            raise ValidationError("a room needs --parent INSTITUTION_CODE", field="parent")
        p = get_location(tx, parent)
        if p["kind"] != "institution":
            raise ValidationError(f"parent {parent!r} is a {p['kind']}, not an institution", field="parent")
        parent_id = p["id"]
        municipality = municipality or p["municipality_id"]
    if kind in ("home", "institution", "room") and not municipality:
        raise ValidationError(f"a {kind} belongs to a municipality; give --municipality NNNN", field="municipality")
    if kind == "home":
        name = name or code  # homes are named by code only: an address would be personal data
        if any(ch.isdigit() for ch in name) and name != code:
            raise ValidationError("a home is identified by its code only; do not store street addresses here",
                                  field="name")
    lid = tx.scalar("INSERT INTO location (code, kind, name, municipality_id, parent_id, active)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (code, kind, name or code, municipality, parent_id, True))
    audit(tx, actor, "location.create", "location", code, at=at, municipality=municipality, detail={"kind": kind})
    return get_location(tx, code)


def get_model(tx: Tx, code: str) -> dict[str, Any]:
    row = tx.one("SELECT * FROM device_model WHERE code = ?", (code,))
    if row is None:
        raise NotFound(f"no device model {code!r}; list them with `fleet model list`", model=code)
    return row


def add_model(tx: Tx, actor: Actor, code: str, name: str, role: str, radio: str, firmware_family: str, *,
              at: float) -> None:
    actor.require(Permission.CATALOG_WRITE)
    code = check_code(code, "model code")
    if role not in ROLES:
        raise ValidationError(f"unknown device role {role!r}; use one of {', '.join(ROLES)}", field="role")
    tx.execute("INSERT INTO device_model (code, name, role, radio, firmware_family) VALUES (?, ?, ?, ?, ?)",
               (code, name, role, radio, firmware_family))
    audit(tx, actor, "model.create", "device_model", code, at=at, detail={"role": role})


def set_reorder_point(tx: Tx, actor: Actor, location: str, model: str, min_qty: int, *, at: float) -> None:
    loc = get_location(tx, location)
    actor.require(Permission.CATALOG_WRITE, loc["municipality_id"])
    get_model(tx, model)
    if min_qty < 0:
        raise ValidationError(f"reorder point {min_qty} is negative; use 0 or more", field="min_qty")
    tx.execute("INSERT INTO reorder_point (location_id, model_code, min_qty) VALUES (?, ?, ?)"
               " ON CONFLICT (location_id, model_code) DO UPDATE SET min_qty = excluded.min_qty",
               (loc["id"], model, min_qty))
    audit(tx, actor, "reorder.set", "reorder_point", f"{location}/{model}", at=at, detail={"min_qty": min_qty})


# ----------------------------------------------------------------- items
def find_item(tx: Tx, key: str) -> dict[str, Any]:
    """An item by serial, or by hardware id (device id / gateway id)."""
    key = key.strip()
    row = tx.one("SELECT * FROM item WHERE serial = ?", (key,))
    if row is None:
        row = tx.one("SELECT * FROM item WHERE hw_id = ?", (key.lower(),))
    if row is None:
        raise NotFound(f"no item with serial or device id {key!r}; check the label (fleet item list --model ...)",
                       serial=key)
    return row


def receive_items(tx: Tx, actor: Actor, items: Sequence[NewItem], location: str, *, at: float,
                  state: ItemState = ItemState.IN_STOCK, ref: str | None = None,
                  on_progress: Callable[[int], None] | None = None, chunk: int = 20_000,
                  validated: bool = False) -> int:
    """Create items in their first state with one ledger row each (bulk, one transaction).

    Serials and hardware ids are normalised unless ``validated`` (the CSV parser did it).
    """
    loc = get_location(tx, location)
    if not validated:
        roles = {r["code"]: r["role"] for r in tx.query("SELECT code, role FROM device_model")}
        checked = []
        for it in items:
            if it.model_code not in roles:
                raise NotFound(f"no device model {it.model_code!r}; list them with `fleet model list`")
            checked.append(NewItem(normalise_serial(it.serial), it.model_code,
                                   normalise_hw_id(it.hw_id, role=roles[it.model_code]), it.line))
        items = checked
    actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
    if state not in INITIAL_STATES:
        raise InvalidTransition(f"new items start as received or in_stock, not {state.value}", state=state.value)
    return bulk_receive(tx, actor, loc, items, len(items), at=at, state=state, ref=ref, on_progress=on_progress,
                        chunk=chunk)


def bulk_receive(tx: Tx, actor: Actor, loc: dict[str, Any], items: Iterable[NewItem], upper: int, *, at: float,
                 state: ItemState, ref: str | None, on_progress: Callable[[int], None] | None = None,
                 chunk: int = 20_000) -> int:
    """Write already-validated items (at most ``upper``) and one ledger row each; returns the count."""
    actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
    if state not in INITIAL_STATES:
        raise InvalidTransition(f"new items start as received or in_stock, not {state.value}", state=state.value)
    if upper <= 0:
        return 0
    first = tx.reserve_ids("item", upper)
    reason = f"received ({ref})" if ref else "received"
    loc_id = loc["id"]
    count = 0

    def item_rows() -> Iterable[tuple]:
        nonlocal count
        for n, it in enumerate(items):
            if n >= upper:
                raise ValidationError(f"more items than announced ({upper})")
            if on_progress and n and n % chunk == 0:
                on_progress(chunk)
            count = n + 1
            yield (first + n, it.serial, it.model_code, it.hw_id, state.value, loc_id, at, 1)

    tx.bulk_insert("item", ["id", "serial", "model_code", "hw_id", "state", "location_id", "updated_at", "version"],
                   item_rows())
    if not count:
        return 0
    tx.bulk_insert("item_movement", ["item_id", "at", "actor", "from_state", "to_state", "from_location_id",
                                     "to_location_id", "reason", "ref"],
                   ((first + n, at, actor.name, None, state.value, None, loc_id, reason, ref) for n in range(count)))
    if on_progress:
        on_progress(count % chunk or chunk)
    audit(tx, actor, "item.receive", "location", loc["code"], at=at, municipality=loc["municipality_id"],
          detail={"count": count, "ref": ref, "state": state.value})
    return count


def _ledger(tx: Tx, item: dict[str, Any], actor: Actor, to_state: str, to_location: int | None, reason: str,
            ref: str | None, at: float) -> None:
    tx.execute("INSERT INTO item_movement (item_id, at, actor, from_state, to_state, from_location_id,"
               " to_location_id, reason, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (item["id"], at, actor.name, item["state"], to_state, item["location_id"], to_location, reason, ref))


def _location_municipality(tx: Tx, location_id: int | None) -> str | None:
    if location_id is None:
        return None
    return tx.scalar("SELECT municipality_id FROM location WHERE id = ?", (location_id,))


def transition(tx: Tx, actor: Actor, key: str, target: ItemState, *, reason: str, at: float,
               location: str | None = None, ref: str | None = None,
               installation_id: int | None = None, kit_id: int | None = -1) -> dict[str, Any]:
    """Change an item's state (and optionally its location) if the table allows it."""
    item = find_item(tx, key)
    actor.require(Permission.STOCK_WRITE, _location_municipality(tx, item["location_id"]))
    current = ItemState(item["state"])
    check_transition(item["serial"], current, target)
    if not reason.strip():
        raise ValidationError("give a reason for the movement (--reason)", field="reason")
    to_loc = item["location_id"]
    if location:
        loc = get_location(tx, location)
        actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
        to_loc = loc["id"]
    new_kit = item["kit_id"] if kit_id == -1 else kit_id
    if target in (ItemState.IN_STOCK, ItemState.RETURNED, ItemState.REPAIR, ItemState.WRITTEN_OFF,
                  ItemState.CLEANING, ItemState.TESTED) and kit_id == -1:
        new_kit = None  # leaving a kit
    new_inst = installation_id if target is ItemState.INSTALLED else (
        item["installation_id"] if target is ItemState.IN_TRANSIT else None)
    _ledger(tx, item, actor, target.value, to_loc, reason, ref, at)
    n = tx.execute("UPDATE item SET state = ?, location_id = ?, kit_id = ?, installation_id = ?, updated_at = ?,"
                   " version = version + 1 WHERE id = ? AND version = ?",
                   (target.value, to_loc, new_kit, new_inst, at, item["id"], item["version"]))
    if n != 1:
        from ..errors import Conflict
        raise Conflict(f"{item['serial']} was changed by someone else meanwhile; run the command again",
                       serial=item["serial"])
    audit(tx, actor, "item.transition", "item", item["serial"], at=at,
          municipality=_location_municipality(tx, to_loc),
          detail={"from": current.value, "to": target.value, "reason": reason, "ref": ref})
    return find_item(tx, item["serial"])


def move(tx: Tx, actor: Actor, key: str, location: str, *, reason: str, at: float, ref: str | None = None) -> dict:
    """Change an item's location without changing its state (e.g. warehouse -> van)."""
    item = find_item(tx, key)
    state = ItemState(item["state"])
    if state not in MOVABLE_STATES:
        raise InvalidTransition(
            f"{item['serial']} is {state.value}; an {state.value} item is not moved directly "
            f"({'deinstall it first' if state is ItemState.INSTALLED else 'it is written off'})",
            serial=item["serial"], state=state.value)
    if item["kit_id"] is not None and state is not ItemState.IN_KIT:
        pass
    loc = get_location(tx, location)
    actor.require(Permission.STOCK_WRITE, _location_municipality(tx, item["location_id"]))
    actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
    _ledger(tx, item, actor, state.value, loc["id"], reason, ref, at)
    tx.execute("UPDATE item SET location_id = ?, updated_at = ?, version = version + 1 WHERE id = ?",
               (loc["id"], at, item["id"]))
    audit(tx, actor, "item.move", "item", item["serial"], at=at, municipality=loc["municipality_id"],
          detail={"to": location, "reason": reason})
    return find_item(tx, item["serial"])


def item_history(tx: Tx, item_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    return tx.query(
        "SELECT m.at, m.actor, m.from_state, m.to_state, fl.code AS from_location, tl.code AS to_location,"
        " m.reason, m.ref FROM item_movement m LEFT JOIN location fl ON fl.id = m.from_location_id"
        " LEFT JOIN location tl ON tl.id = m.to_location_id WHERE m.item_id = ? ORDER BY m.id DESC LIMIT ?",
        (item_id, limit))


def device_show(tx: Tx, actor: Actor, key: str) -> dict[str, Any]:
    actor.require(Permission.STOCK_READ)
    item = find_item(tx, key)
    model = get_model(tx, item["model_code"])
    loc = tx.one("SELECT code, kind, municipality_id FROM location WHERE id = ?", (item["location_id"],)) \
        if item["location_id"] is not None else None
    if loc and loc["municipality_id"] and not actor.can(Permission.STOCK_READ, loc["municipality_id"]):
        actor.require(Permission.STOCK_READ, loc["municipality_id"])
    kit = tx.scalar("SELECT code FROM kit WHERE id = ?", (item["kit_id"],)) if item["kit_id"] else None
    inst = tx.scalar("SELECT code FROM installation WHERE id = ?", (item["installation_id"],)) \
        if item["installation_id"] else None
    out: dict[str, Any] = {
        "serial": item["serial"], "hw_id": item["hw_id"], "model": model["code"], "model_name": model["name"],
        "role": model["role"], "radio": model["radio"], "firmware_family": model["firmware_family"],
        "state": item["state"], "location": loc["code"] if loc else None,
        "location_kind": loc["kind"] if loc else None, "municipality": loc["municipality_id"] if loc else None,
        "kit": kit, "installation": inst, "updated_at": item["updated_at"],
    }
    if model["role"] == "gateway" and item["hw_id"]:
        gs = tx.one("SELECT last_seen, online, version, config_version FROM gateway_status WHERE gateway_id = ?",
                    (item["hw_id"],))
        if gs:
            out.update({"online": bool(gs["online"]), "last_seen": gs["last_seen"], "sw_version": gs["version"],
                        "config_version": gs["config_version"]})
    out["history"] = item_history(tx, item["id"], limit=20)
    return out


# ----------------------------------------------------------------- stock levels
def stock_levels(tx: Tx, actor: Actor, *, location: str | None = None, model: str | None = None,
                 municipality: str | None = None) -> list[dict[str, Any]]:
    """Per location and model: counts by shelf state, the reorder point and a warning flag."""
    actor.require(Permission.STOCK_READ, municipality)
    where, params = ["l.kind IN ('warehouse', 'van', 'repair_vendor')"], []
    scope, sp = actor.scope_sql("l.municipality_id")
    where.append(f"({scope} OR l.municipality_id IS NULL)")
    params += sp
    if location:
        where.append("l.code = ?")
        params.append(location)
    if model:
        where.append("m.code = ?")
        params.append(model)
    if municipality:
        where.append("l.municipality_id = ?")
        params.append(municipality)
    sql = (
        "SELECT l.code AS location, m.code AS model, m.role AS role,"
        " coalesce(c.in_stock, 0) AS in_stock, coalesce(c.in_kit, 0) AS in_kit,"
        " coalesce(c.received, 0) AS received, coalesce(c.other, 0) AS other, r.min_qty AS reorder_point"
        " FROM location l CROSS JOIN device_model m"
        " LEFT JOIN (SELECT location_id, model_code,"
        "   sum(CASE WHEN state = 'in_stock' THEN 1 ELSE 0 END) AS in_stock,"
        "   sum(CASE WHEN state = 'in_kit' THEN 1 ELSE 0 END) AS in_kit,"
        "   sum(CASE WHEN state = 'received' THEN 1 ELSE 0 END) AS received,"
        "   sum(CASE WHEN state NOT IN ('in_stock', 'in_kit', 'received') THEN 1 ELSE 0 END) AS other"
        "   FROM item GROUP BY location_id, model_code) c ON c.location_id = l.id AND c.model_code = m.code"
        " LEFT JOIN reorder_point r ON r.location_id = l.id AND r.model_code = m.code"
        f" WHERE {' AND '.join(where)} AND (c.location_id IS NOT NULL OR r.min_qty IS NOT NULL)"
        " ORDER BY l.code, m.code")
    rows = tx.query(sql, params)
    for r in rows:
        for k in ("in_stock", "in_kit", "received", "other"):
            r[k] = int(r[k])
        r["warning"] = "REORDER" if r["reorder_point"] is not None and r["in_stock"] < r["reorder_point"] else ""
    return rows


def reorder_warnings(tx: Tx, actor: Actor, **kw: Any) -> list[dict[str, Any]]:
    return [r for r in stock_levels(tx, actor, **kw) if r["warning"]]


# ----------------------------------------------------------------- kits
def add_kit_template(tx: Tx, actor: Actor, code: str, name: str, parts: dict[str, int], *, at: float) -> None:
    actor.require(Permission.CATALOG_WRITE)
    code = check_code(code, "kit template code")
    if not parts:
        raise ValidationError("a kit template needs at least one part, e.g. gateway=1 button=1", field="parts")
    for role, qty in parts.items():
        if role not in ROLES or qty < 1:
            raise ValidationError(f"bad kit part {role}={qty}; roles: {', '.join(ROLES)}, qty >= 1", field="parts")
    tx.execute("INSERT INTO kit_template (code, name) VALUES (?, ?)", (code, name))
    tx.executemany("INSERT INTO kit_template_part (template_code, role, qty) VALUES (?, ?, ?)",
                   [(code, r, q) for r, q in sorted(parts.items())])
    audit(tx, actor, "kit_template.create", "kit_template", code, at=at, detail={"parts": parts})


def kit_template_parts(tx: Tx, code: str) -> dict[str, int]:
    rows = tx.query("SELECT role, qty FROM kit_template_part WHERE template_code = ?", (code,))
    if not rows:
        raise NotFound(f"no kit template {code!r}; list them with `fleet kit templates`", template=code)
    return {r["role"]: int(r["qty"]) for r in rows}


def assemble_kit(tx: Tx, actor: Actor, template: str, serials: Sequence[str], *, at: float,
                 code: str | None = None) -> dict[str, Any]:
    """Put in-stock items that match the template's parts into a new kit at their location."""
    parts = kit_template_parts(tx, template)
    items = [find_item(tx, s) for s in serials]
    if len({i["id"] for i in items}) != len(items):
        raise ValidationError("the same item was given twice", field="serials")
    roles: dict[str, int] = {}
    for it in items:
        role = get_model(tx, it["model_code"])["role"]
        roles[role] = roles.get(role, 0) + 1
        if it["state"] != ItemState.IN_STOCK.value:
            raise InvalidTransition(f"{it['serial']} is {it['state']}; only in_stock items go into a kit",
                                    serial=it["serial"])
    if roles != parts:
        need = ", ".join(f"{r}×{q}" for r, q in sorted(parts.items()))
        got = ", ".join(f"{r}×{q}" for r, q in sorted(roles.items()))
        raise ValidationError(f"kit {template} needs {need}; the scanned items are {got}", field="serials")
    locs = {it["location_id"] for it in items}
    if len(locs) != 1:
        raise ValidationError("all items of a kit must be at the same location; move them first", field="serials")
    loc_id = locs.pop()
    actor.require(Permission.STOCK_WRITE, _location_municipality(tx, loc_id))
    kit_id = tx.scalar("INSERT INTO kit (code, template_code, state, location_id, created_at, created_by)"
                       " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                       (code or "pending-" + uuid.uuid4().hex, template, "assembled", loc_id, at, actor.name))
    if code is None:  # the code derives from the id, so concurrent assemblers never collide
        code = f"K-{int(kit_id):06d}"
        tx.execute("UPDATE kit SET code = ? WHERE id = ?", (code, kit_id))
    for it in items:
        transition(tx, actor, it["serial"], ItemState.IN_KIT, reason=f"kit {code} assembled", ref=code, at=at,
                   kit_id=kit_id)
    audit(tx, actor, "kit.assemble", "kit", code, at=at, municipality=_location_municipality(tx, loc_id),
          detail={"template": template, "items": [i["serial"] for i in items]})
    return get_kit(tx, code)


def get_kit(tx: Tx, code: str) -> dict[str, Any]:
    kit = tx.one("SELECT k.*, l.code AS location FROM kit k LEFT JOIN location l ON l.id = k.location_id"
                 " WHERE k.code = ?", (code,))
    if kit is None:
        raise NotFound(f"no kit {code!r}; list them with `fleet kit list`", kit=code)
    kit["items"] = tx.query("SELECT i.serial, i.hw_id, i.model_code, m.role, i.state FROM item i"
                            " JOIN device_model m ON m.code = i.model_code WHERE i.kit_id = ? ORDER BY m.role, i.serial",
                            (kit["id"],))
    return kit


def dismantle_kit(tx: Tx, actor: Actor, code: str, *, at: float) -> dict[str, Any]:
    kit = get_kit(tx, code)
    if kit["state"] != "assembled":
        raise InvalidTransition(f"kit {code} is {kit['state']}; only an assembled kit can be dismantled", kit=code)
    for it in kit["items"]:
        transition(tx, actor, it["serial"], ItemState.IN_STOCK, reason=f"kit {code} dismantled", ref=code, at=at,
                   kit_id=None)
    tx.execute("UPDATE kit SET state = 'dismantled' WHERE id = ?", (kit["id"],))
    audit(tx, actor, "kit.dismantle", "kit", code, at=at)
    return get_kit(tx, code)
