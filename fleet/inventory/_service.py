"""Inventory service: catalog, items and their ledger, stock levels, kits (no SQL here).

``InventoryService(repo, clock)`` runs inside one transaction over an
:class:`~fleet.inventory._model.InventoryRepo`. Every change writes the movement ledger
and/or the audit log through the same repository, so they commit together; every method
that acts for a user checks the user's permission and municipality scope first.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..access import Actor, Permission, audit
from ..clock import Clock
from ..errors import Conflict, InvalidTransition, NotFound, ValidationError
from ._ids import check_code, normalise_hw_id, normalise_serial
from ._model import InventoryRepo, NewItem, Row
from ._states import INITIAL_STATES, MOVABLE_STATES, ItemState, check_transition

LOCATION_KINDS = ("warehouse", "van", "home", "institution", "room", "repair_vendor")
ROLES = ("button", "fall", "bed", "door", "motion", "gps", "dispenser", "health", "gateway")
_LEAVES_KIT = (ItemState.IN_STOCK, ItemState.RETURNED, ItemState.REPAIR, ItemState.WRITTEN_OFF,
               ItemState.CLEANING, ItemState.TESTED)
KEEP = -1   # transition(kit_id=KEEP): the item keeps its kit unless the target state leaves kits


@dataclass
class InventoryService:
    repo: InventoryRepo
    clock: Clock

    def _audit(self, actor: Actor, action: str, entity: str, entity_id: Any, **kw: Any) -> None:
        audit(self.repo, actor, action, entity, entity_id, at=self.clock.time(), **kw)

    # ------------------------------------------------------------- catalog
    def add_municipality(self, actor: Actor, mid: str, name: str) -> None:
        actor.require(Permission.CATALOG_WRITE)
        if not (mid.isdigit() and len(mid) == 4):
            raise ValidationError(f"municipality id {mid!r} must be the 4-digit kommunenummer, e.g. 0301", field="id")
        self.repo.add_municipality(mid, name)
        self._audit(actor, "municipality.create", "municipality", mid, municipality=mid)

    def municipalities(self) -> list[Row]:
        return self.repo.municipalities()

    def get_location(self, code: str) -> Row:
        row = self.repo.location(code)
        if row is None:
            raise NotFound(f"no location {code!r}; list them with `fleet location list`", location=code)
        return row

    def location_municipality(self, location_id: int | None) -> str | None:
        loc = None if location_id is None else self.repo.location_by_id(location_id)
        return loc["municipality_id"] if loc else None

    def location_code(self, location_id: int | None) -> str | None:
        loc = None if location_id is None else self.repo.location_by_id(location_id)
        return loc["code"] if loc else None

    def location_summary(self, location_id: int) -> Row | None:
        """``code, kind, parent`` (the institution's code for a room)."""
        loc = self.repo.location_by_id(location_id)
        if loc is None:
            return None
        return {"code": loc["code"], "kind": loc["kind"], "parent": self.location_code(loc["parent_id"])}

    def add_location(self, actor: Actor, code: str, kind: str, name: str | None = None, *,
                     municipality: str | None, parent: str | None = None) -> Row:
        actor.require(Permission.CATALOG_WRITE, municipality)
        code = check_code(code, "location code")
        if kind not in LOCATION_KINDS:
            raise ValidationError(f"unknown location kind {kind!r}; use one of {', '.join(LOCATION_KINDS)}",
                                  field="kind")
        parent_id = None
        if kind == "room":
            if not parent:
                raise ValidationError("a room needs --parent INSTITUTION_CODE", field="parent")
            p = self.get_location(parent)
            if p["kind"] != "institution":
                raise ValidationError(f"parent {parent!r} is a {p['kind']}, not an institution", field="parent")
            parent_id = p["id"]
            municipality = municipality or p["municipality_id"]
        if kind in ("home", "institution", "room") and not municipality:
            raise ValidationError(f"a {kind} belongs to a municipality; give --municipality NNNN",
                                  field="municipality")
        if kind == "home":
            name = name or code  # homes are named by code only: an address would be personal data
            if any(ch.isdigit() for ch in name) and name != code:
                raise ValidationError("a home is identified by its code only; do not store street addresses here",
                                      field="name")
        self.repo.add_location(code, kind, name or code, municipality, parent_id)
        self._audit(actor, "location.create", "location", code, municipality=municipality, detail={"kind": kind})
        return self.get_location(code)

    def locations(self, actor: Actor, *, kind: str | None = None, municipality: str | None = None) -> list[Row]:
        return self.repo.locations(kind=kind, municipality=municipality, scope=actor.municipalities)

    def get_model(self, code: str) -> Row:
        row = self.repo.model(code)
        if row is None:
            raise NotFound(f"no device model {code!r}; list them with `fleet model list`", model=code)
        return row

    def models(self) -> list[Row]:
        return self.repo.models()

    def add_model(self, actor: Actor, code: str, name: str, role: str, radio: str, firmware_family: str) -> None:
        actor.require(Permission.CATALOG_WRITE)
        code = check_code(code, "model code")
        if role not in ROLES:
            raise ValidationError(f"unknown device role {role!r}; use one of {', '.join(ROLES)}", field="role")
        self.repo.add_model(code, name, role, radio, firmware_family)
        self._audit(actor, "model.create", "device_model", code, detail={"role": role})

    def set_reorder_point(self, actor: Actor, location: str, model: str, min_qty: int) -> None:
        loc = self.get_location(location)
        actor.require(Permission.CATALOG_WRITE, loc["municipality_id"])
        self.get_model(model)
        if min_qty < 0:
            raise ValidationError(f"reorder point {min_qty} is negative; use 0 or more", field="min_qty")
        self.repo.set_reorder_point(loc["id"], model, min_qty)
        self._audit(actor, "reorder.set", "reorder_point", f"{location}/{model}", detail={"min_qty": min_qty})

    # ------------------------------------------------------------- items
    def find_item(self, key: str) -> Row:
        """An item by serial, or by hardware id (device id / gateway id)."""
        key = key.strip()
        row = self.repo.item(key) or self.repo.item_by_hw_id(key.lower())
        if row is None:
            raise NotFound(f"no item with serial or device id {key!r}; check the label (fleet item list --model ...)",
                           serial=key)
        return row

    def receive_items(self, actor: Actor, items: Sequence[NewItem], location: str, *,
                      state: ItemState = ItemState.IN_STOCK, ref: str | None = None,
                      on_progress: Callable[[int], None] | None = None, chunk: int = 20_000,
                      validated: bool = False) -> int:
        """Create items in their first state with one ledger row each (bulk, one transaction).

        Serials and hardware ids are normalised unless ``validated`` (the CSV parser did it).
        """
        loc = self.get_location(location)
        if not validated:
            roles = self.repo.model_roles()
            checked = []
            for it in items:
                if it.model_code not in roles:
                    raise NotFound(f"no device model {it.model_code!r}; list them with `fleet model list`")
                checked.append(NewItem(normalise_serial(it.serial), it.model_code,
                                       normalise_hw_id(it.hw_id, role=roles[it.model_code]), it.line))
            items = checked
        return self.bulk_receive(actor, loc, items, len(items), state=state, ref=ref, on_progress=on_progress,
                                 chunk=chunk)

    def bulk_receive(self, actor: Actor, loc: Row, items: Iterable[NewItem], upper: int, *, state: ItemState,
                     ref: str | None, on_progress: Callable[[int], None] | None = None, chunk: int = 20_000) -> int:
        """Write already-validated items (at most ``upper``) and one ledger row each; returns the count."""
        actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
        if state not in INITIAL_STATES:
            raise InvalidTransition(f"new items start as received or in_stock, not {state.value}", state=state.value)
        if upper <= 0:
            return 0
        at = self.clock.time()
        first = self.repo.reserve_item_ids(upper)
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

        self.repo.insert_items(item_rows())
        if not count:
            return 0
        self.repo.insert_movements((first + n, at, actor.name, None, state.value, None, loc_id, reason, ref)
                                   for n in range(count))
        if on_progress:
            on_progress(count % chunk or chunk)
        self._audit(actor, "item.receive", "location", loc["code"], municipality=loc["municipality_id"],
                    detail={"count": count, "ref": ref, "state": state.value})
        return count

    def _ledger(self, item: Row, actor: Actor, to_state: str, to_location: int | None, reason: str,
                ref: str | None) -> None:
        self.repo.add_movement((item["id"], self.clock.time(), actor.name, item["state"], to_state,
                                item["location_id"], to_location, reason, ref))

    def transition(self, actor: Actor, key: str, target: ItemState, *, reason: str, location: str | None = None,
                   ref: str | None = None, installation_id: int | None = None, kit_id: int | None = KEEP) -> Row:
        """Change an item's state (and optionally its location) if the table allows it."""
        item = self.find_item(key)
        actor.require(Permission.STOCK_WRITE, self.location_municipality(item["location_id"]))
        current = ItemState(item["state"])
        check_transition(item["serial"], current, target)
        if not reason.strip():
            raise ValidationError("give a reason for the movement (--reason)", field="reason")
        to_loc = item["location_id"]
        if location:
            loc = self.get_location(location)
            actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
            to_loc = loc["id"]
        new_kit = item["kit_id"] if kit_id == KEEP else kit_id
        if target in _LEAVES_KIT and kit_id == KEEP:
            new_kit = None
        new_inst = installation_id if target is ItemState.INSTALLED else (
            item["installation_id"] if target is ItemState.IN_TRANSIT else None)
        self._ledger(item, actor, target.value, to_loc, reason, ref)
        n = self.repo.update_item(item["id"], {"state": target.value, "location_id": to_loc, "kit_id": new_kit,
                                               "installation_id": new_inst, "updated_at": self.clock.time()},
                                  expected_version=item["version"])
        if n != 1:
            raise Conflict(f"{item['serial']} was changed by someone else meanwhile; run the command again",
                           serial=item["serial"])
        self._audit(actor, "item.transition", "item", item["serial"], municipality=self.location_municipality(to_loc),
                    detail={"from": current.value, "to": target.value, "reason": reason, "ref": ref})
        return self.find_item(item["serial"])

    def move(self, actor: Actor, key: str, location: str, *, reason: str, ref: str | None = None) -> Row:
        """Change an item's location without changing its state (e.g. warehouse -> van)."""
        item = self.find_item(key)
        state = ItemState(item["state"])
        if state not in MOVABLE_STATES:
            raise InvalidTransition(
                f"{item['serial']} is {state.value}; an {state.value} item is not moved directly "
                f"({'deinstall it first' if state is ItemState.INSTALLED else 'it is written off'})",
                serial=item["serial"], state=state.value)
        loc = self.get_location(location)
        actor.require(Permission.STOCK_WRITE, self.location_municipality(item["location_id"]))
        actor.require(Permission.STOCK_WRITE, loc["municipality_id"])
        self._ledger(item, actor, state.value, loc["id"], reason, ref)
        self.repo.update_item(item["id"], {"location_id": loc["id"], "updated_at": self.clock.time()})
        self._audit(actor, "item.move", "item", item["serial"], municipality=loc["municipality_id"],
                    detail={"to": location, "reason": reason})
        return self.find_item(item["serial"])

    def follow_installation(self, actor: Actor, serial: str, location_id: int, *, reason: str, ref: str) -> None:
        """An installed item goes along when its resident moves: ledger row, same state, new place."""
        item = self.repo.item(serial)
        if item is None:
            return
        self._ledger(item, actor, item["state"], location_id, reason, ref)
        self.repo.update_item(item["id"], {"location_id": location_id, "updated_at": self.clock.time()})

    def attach_to_installation(self, serial: str, installation_id: int) -> None:
        """Mark an item as belonging to an installation (no ledger row: its state does not change)."""
        item = self.find_item(serial)
        self.repo.update_item(item["id"], {"installation_id": installation_id}, bump_version=False)

    def items_of_installation(self, installation_id: int) -> list[Row]:
        return self.repo.items_of_installation(installation_id)

    def list_items(self, actor: Actor, *, location: str | None = None, model: str | None = None,
                   state: str | None = None, limit: int = 100) -> list[Row]:
        actor.require(Permission.STOCK_READ)
        return self.repo.items(location=location, model=model, state=state, scope=actor.municipalities, limit=limit)

    def item_history(self, item_id: int, *, limit: int = 50) -> list[Row]:
        return self.repo.item_history(item_id, limit)

    def device_show(self, actor: Actor, key: str) -> dict[str, Any]:
        """One item by serial or device id: model, state, place, kit, installation, gateway status and
        the last 20 ledger rows — two reads (:meth:`InventoryRepo.item_detail`, the history)."""
        actor.require(Permission.STOCK_READ)
        key = key.strip()
        d = self.repo.item_detail(key, key.lower())
        if d is None:
            raise NotFound(f"no item with serial or device id {key!r}; check the label (fleet item list --model ...)",
                           serial=key)
        if d["loc_municipality"]:
            actor.require(Permission.STOCK_READ, d["loc_municipality"])
        out: dict[str, Any] = {
            "serial": d["serial"], "hw_id": d["hw_id"], "model": d["model_code"], "model_name": d["model_name"],
            "role": d["model_role"], "radio": d["model_radio"], "firmware_family": d["model_firmware_family"],
            "state": d["state"], "location": d["loc_code"], "location_kind": d["loc_kind"],
            "municipality": d["loc_municipality"], "kit": d["kit_code"], "installation": d["installation_code"],
            "updated_at": d["updated_at"],
        }
        if d["gw_id"] is not None:
            out.update({"online": bool(d["gw_online"]), "last_seen": d["gw_last_seen"], "sw_version": d["gw_version"],
                        "config_version": d["gw_config_version"]})
        out["history"] = self.item_history(d["id"], limit=20)
        return out

    # ------------------------------------------------------------- stock levels
    def stock_levels(self, actor: Actor, *, location: str | None = None, model: str | None = None,
                     municipality: str | None = None) -> list[Row]:
        """Per location and model: counts by shelf state, the reorder point and a warning flag."""
        actor.require(Permission.STOCK_READ, municipality)
        rows = self.repo.stock_levels(location=location, model=model, municipality=municipality,
                                      scope=actor.municipalities)
        for r in rows:
            for k in ("in_stock", "in_kit", "received", "other"):
                r[k] = int(r[k])
            r["warning"] = "REORDER" if r["reorder_point"] is not None and r["in_stock"] < r["reorder_point"] else ""
        return rows

    def reorder_warnings(self, actor: Actor, **kw: Any) -> list[Row]:
        return [r for r in self.stock_levels(actor, **kw) if r["warning"]]

    # ------------------------------------------------------------- kits
    def add_kit_template(self, actor: Actor, code: str, name: str, parts: dict[str, int]) -> None:
        actor.require(Permission.CATALOG_WRITE)
        code = check_code(code, "kit template code")
        if not parts:
            raise ValidationError("a kit template needs at least one part, e.g. gateway=1 button=1", field="parts")
        for role, qty in parts.items():
            if role not in ROLES or qty < 1:
                raise ValidationError(f"bad kit part {role}={qty}; roles: {', '.join(ROLES)}, qty >= 1",
                                      field="parts")
        self.repo.add_kit_template(code, name, parts)
        self._audit(actor, "kit_template.create", "kit_template", code, detail={"parts": parts})

    def kit_templates(self) -> list[Row]:
        return self.repo.kit_templates()

    def kit_template_parts(self, code: str) -> dict[str, int]:
        parts = self.repo.kit_template_parts(code)
        if not parts:
            raise NotFound(f"no kit template {code!r}; list them with `fleet kit templates`", template=code)
        return parts

    def assemble_kit(self, actor: Actor, template: str, serials: Sequence[str], *, code: str | None = None) -> Row:
        """Put in-stock items that match the template's parts into a new kit at their location."""
        parts = self.kit_template_parts(template)
        items = [self.find_item(s) for s in serials]
        if len({i["id"] for i in items}) != len(items):
            raise ValidationError("the same item was given twice", field="serials")
        roles: dict[str, int] = {}
        for it in items:
            role = self.get_model(it["model_code"])["role"]
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
            raise ValidationError("all items of a kit must be at the same location; move them first",
                                  field="serials")
        loc_id = locs.pop()
        actor.require(Permission.STOCK_WRITE, self.location_municipality(loc_id))
        kit_id = self.repo.add_kit(code or "pending-" + uuid.uuid4().hex, template, "assembled", loc_id,
                                   at=self.clock.time(), by=actor.name)
        if code is None:  # the code derives from the id, so concurrent assemblers never collide
            code = f"K-{int(kit_id):06d}"
            self.repo.update_kit(kit_id, {"code": code})
        for it in items:
            self.transition(actor, it["serial"], ItemState.IN_KIT, reason=f"kit {code} assembled", ref=code,
                            kit_id=kit_id)
        self._audit(actor, "kit.assemble", "kit", code, municipality=self.location_municipality(loc_id),
                    detail={"template": template, "items": [i["serial"] for i in items]})
        return self.get_kit(code)

    def get_kit(self, code: str) -> Row:
        kit = self.repo.kit(code)
        if kit is None:
            raise NotFound(f"no kit {code!r}; list them with `fleet kit list`", kit=code)
        kit["items"] = self.repo.kit_items(kit["id"])
        return kit

    def kit_code(self, kit_id: int) -> str | None:
        return self.repo.kit_code(kit_id)

    def kits(self, *, state: str | None = None) -> list[Row]:
        return self.repo.kits(state=state)

    def set_kit(self, kit_id: int, *, state: str, location_id: int | None) -> None:
        """A kit follows its installation: installed at the home, dismantled when deinstalled."""
        self.repo.update_kit(kit_id, {"state": state, "location_id": location_id})

    def move_kit(self, kit_id: int, location_id: int) -> None:
        self.repo.update_kit(kit_id, {"location_id": location_id})

    def dismantle_kit(self, actor: Actor, code: str) -> Row:
        kit = self.get_kit(code)
        if kit["state"] != "assembled":
            raise InvalidTransition(f"kit {code} is {kit['state']}; only an assembled kit can be dismantled", kit=code)
        for it in kit["items"]:
            self.transition(actor, it["serial"], ItemState.IN_STOCK, reason=f"kit {code} dismantled", ref=code,
                            kit_id=None)
        self.repo.update_kit(kit["id"], {"state": "dismantled"})
        self._audit(actor, "kit.dismantle", "kit", code)
        return self.get_kit(code)
