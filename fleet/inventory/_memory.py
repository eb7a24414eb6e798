"""In-memory InventoryRepo: the fake for unit tests (same contract as the SQL adapter).

Unique and foreign-key rules the database enforces are enforced here too, raising
:class:`fleet.errors.IntegrityViolation`, so error paths behave as on a real store.
Wrap it in :class:`fleet.store.MemoryTransactions` for all-or-nothing blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..access import MemoryAuditLog
from ..errors import IntegrityViolation
from ._model import ITEM_COLUMNS, MOVEMENT_COLUMNS, Row, Scope

_STOCKING = ("warehouse", "van", "repair_vendor")


def _visible(municipality: str | None, scope: Scope) -> bool:
    return scope is None or municipality is None or municipality in scope


@dataclass
class MemoryInventoryRepo(MemoryAuditLog):
    municipality_names: dict[str, str] = field(default_factory=dict)
    location_rows: dict[int, Row] = field(default_factory=dict)
    model_rows: dict[str, Row] = field(default_factory=dict)
    reorder: dict[tuple[int, str], int] = field(default_factory=dict)
    item_rows: dict[int, Row] = field(default_factory=dict)
    movements: list[Row] = field(default_factory=list)
    templates: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    kit_rows: dict[int, Row] = field(default_factory=dict)
    installation_codes: dict[int, str] = field(default_factory=dict)   # written by the installations fake
    gateways: dict[str, Row] = field(default_factory=dict)              # gateway_status, as monitoring writes it
    next_id: dict[str, int] = field(default_factory=dict)

    def _new_id(self, table: str) -> int:
        self.next_id[table] = self.next_id.get(table, 0) + 1
        return self.next_id[table]

    # -- catalog -----------------------------------------------------------------
    def add_municipality(self, mid: str, name: str) -> None:
        if mid in self.municipality_names:
            raise IntegrityViolation(f"municipality {mid} exists", constraint="municipality_pkey")
        self.municipality_names[mid] = name

    def municipalities(self) -> list[Row]:
        return [{"id": m, "name": n} for m, n in sorted(self.municipality_names.items())]

    def location(self, code: str) -> Row | None:
        return next((dict(r) for r in self.location_rows.values() if r["code"] == code), None)

    def location_by_id(self, location_id: int) -> Row | None:
        r = self.location_rows.get(location_id)
        return dict(r) if r else None

    def add_location(self, code: str, kind: str, name: str, municipality_id: str | None,
                     parent_id: int | None) -> int:
        if self.location(code) is not None:
            raise IntegrityViolation(f"location {code} exists", constraint="location_code_key")
        if municipality_id is not None and municipality_id not in self.municipality_names:
            raise IntegrityViolation(f"no municipality {municipality_id}", constraint="location_municipality_id_fkey")
        lid = self._new_id("location")
        self.location_rows[lid] = {"id": lid, "code": code, "kind": kind, "name": name,
                                   "municipality_id": municipality_id, "parent_id": parent_id, "active": True}
        return lid

    def _code_of(self, location_id: int | None) -> str | None:
        r = self.location_rows.get(location_id) if location_id is not None else None
        return r["code"] if r else None

    def locations(self, *, kind: str | None, municipality: str | None, scope: Scope) -> list[Row]:
        return [{"code": r["code"], "kind": r["kind"], "name": r["name"], "municipality": r["municipality_id"],
                 "parent": self._code_of(r["parent_id"])}
                for r in sorted(self.location_rows.values(), key=lambda r: r["code"])
                if (not kind or r["kind"] == kind) and (not municipality or r["municipality_id"] == municipality)
                and _visible(r["municipality_id"], scope)]

    def model(self, code: str) -> Row | None:
        r = self.model_rows.get(code)
        return dict(r) if r else None

    def add_model(self, code: str, name: str, role: str, radio: str, firmware_family: str) -> None:
        if code in self.model_rows:
            raise IntegrityViolation(f"model {code} exists", constraint="device_model_pkey")
        self.model_rows[code] = {"code": code, "name": name, "role": role, "radio": radio,
                                 "firmware_family": firmware_family}

    def models(self) -> list[Row]:
        return [dict(self.model_rows[c]) for c in sorted(self.model_rows)]

    def model_roles(self) -> dict[str, str]:
        return {c: r["role"] for c, r in self.model_rows.items()}

    def set_reorder_point(self, location_id: int, model_code: str, min_qty: int) -> None:
        self.reorder[(location_id, model_code)] = min_qty

    # -- items and the movement ledger -------------------------------------------
    def item(self, serial: str) -> Row | None:
        return next((dict(r) for r in self.item_rows.values() if r["serial"] == serial), None)

    def item_by_hw_id(self, hw_id: str) -> Row | None:
        return next((dict(r) for r in self.item_rows.values() if r["hw_id"] == hw_id), None)

    def item_detail(self, serial: str, hw_id: str) -> Row | None:
        item = self.item(serial) or self.item_by_hw_id(hw_id)
        model = self.model(item["model_code"]) if item else None
        if item is None or model is None:
            return None
        loc = self.location_by_id(item["location_id"]) if item["location_id"] is not None else None
        gw = self.gateway_status(item["hw_id"]) if model["role"] == "gateway" and item["hw_id"] else None
        return {**item, "model_name": model["name"], "model_role": model["role"], "model_radio": model["radio"],
                "model_firmware_family": model["firmware_family"],
                "loc_id": loc["id"] if loc else None, "loc_code": loc["code"] if loc else None,
                "loc_kind": loc["kind"] if loc else None, "loc_municipality": loc["municipality_id"] if loc else None,
                "kit_code": self.kit_code(item["kit_id"]) if item["kit_id"] else None,
                "installation_code": self.installation_code(item["installation_id"]) if item["installation_id"]
                else None,
                "gw_id": item["hw_id"] if gw else None, "gw_last_seen": gw["last_seen"] if gw else None,
                "gw_online": gw["online"] if gw else None, "gw_version": gw["version"] if gw else None,
                "gw_config_version": gw["config_version"] if gw else None}

    def reserve_item_ids(self, n: int) -> int:
        first = max([self.next_id.get("item", 0), *self.item_rows]) + 1
        self.next_id["item"] = first + n - 1 if n else first
        return first

    def insert_items(self, rows: Iterable[tuple]) -> None:
        for t in rows:
            r = dict(zip(ITEM_COLUMNS, t), kit_id=None, installation_id=None)
            if r["model_code"] not in self.model_rows:
                raise IntegrityViolation(f"no model {r['model_code']}", constraint="item_model_code_fkey")
            if r["id"] in self.item_rows or self.item(r["serial"]) is not None or (
                    r["hw_id"] is not None and self.item_by_hw_id(r["hw_id"]) is not None):
                raise IntegrityViolation(f"item {r['serial']} exists", constraint="item_serial_key")
            self.item_rows[r["id"]] = r

    def insert_movements(self, rows: Iterable[tuple]) -> None:
        for t in rows:
            self.add_movement(t)

    def add_movement(self, row: tuple) -> None:
        m = dict(zip(MOVEMENT_COLUMNS, row))
        if m["item_id"] not in self.item_rows:
            raise IntegrityViolation(f"no item {m['item_id']}", constraint="item_movement_item_id_fkey")
        self.movements.append({"id": len(self.movements) + 1, **m})

    def update_item(self, item_id: int, changes: dict[str, Any], *, expected_version: int | None = None,
                    bump_version: bool = True) -> int:
        r = self.item_rows.get(item_id)
        if r is None or (expected_version is not None and r["version"] != expected_version):
            return 0
        r.update(changes)
        if bump_version:
            r["version"] += 1
        return 1

    def item_history(self, item_id: int, limit: int) -> list[Row]:
        rows = [m for m in reversed(self.movements) if m["item_id"] == item_id][:limit]
        return [{"at": m["at"], "actor": m["actor"], "from_state": m["from_state"], "to_state": m["to_state"],
                 "from_location": self._code_of(m["from_location_id"]), "to_location": self._code_of(m["to_location_id"]),
                 "reason": m["reason"], "ref": m["ref"]} for m in rows]

    def items(self, *, location: str | None = None, model: str | None = None, state: str | None = None,
              scope: Scope = None, limit: int = 100) -> list[Row]:
        out = []
        for r in sorted(self.item_rows.values(), key=lambda r: r["serial"]):
            loc = self.location_rows.get(r["location_id"]) if r["location_id"] is not None else None
            if ((location and (loc is None or loc["code"] != location)) or (model and r["model_code"] != model)
                    or (state and r["state"] != state) or not _visible(loc["municipality_id"] if loc else None, scope)):
                continue
            out.append({"serial": r["serial"], "hw_id": r["hw_id"], "model": r["model_code"], "state": r["state"],
                        "location": loc["code"] if loc else None, "updated_at": r["updated_at"]})
        return out[:limit]

    def existing(self, serials: list[str], hw_ids: list[str]) -> tuple[set[str], set[str]]:
        have = {r["serial"] for r in self.item_rows.values()}
        have_hw = {r["hw_id"] for r in self.item_rows.values() if r["hw_id"]}
        return set(serials) & have, set(hw_ids) & have_hw

    def _with_model(self, r: Row, *cols: str) -> Row:
        m = self.model_rows[r["model_code"]]
        return {"serial": r["serial"], "hw_id": r["hw_id"], "model_code": r["model_code"], "role": m["role"],
                **{c: m[c] for c in cols}, "state": r["state"]}

    def items_of_installation(self, installation_id: int) -> list[Row]:
        rows = [self._with_model(r, "firmware_family") for r in self.item_rows.values()
                if r["installation_id"] == installation_id]
        return sorted(rows, key=lambda d: (d["role"], d["serial"]))

    def stock_levels(self, *, location: str | None, model: str | None, municipality: str | None,
                     scope: Scope) -> list[Row]:
        out = []
        for loc in sorted(self.location_rows.values(), key=lambda r: r["code"]):
            if (loc["kind"] not in _STOCKING or not _visible(loc["municipality_id"], scope)
                    or (location and loc["code"] != location) or (municipality and loc["municipality_id"] != municipality)):
                continue
            for code in sorted(self.model_rows):
                if model and code != model:
                    continue
                states = [r["state"] for r in self.item_rows.values()
                          if r["location_id"] == loc["id"] and r["model_code"] == code]
                rp = self.reorder.get((loc["id"], code))
                if not states and rp is None:
                    continue
                n = {s: states.count(s) for s in ("in_stock", "in_kit", "received")}
                out.append({"location": loc["code"], "model": code, "role": self.model_rows[code]["role"], **n,
                            "other": len(states) - sum(n.values()), "reorder_point": rp})
        return out

    def installation_code(self, installation_id: int) -> str | None:
        return self.installation_codes.get(installation_id)

    def gateway_status(self, gateway_id: str) -> Row | None:
        r = self.gateways.get(gateway_id)
        return dict(r) if r else None

    # -- kits --------------------------------------------------------------------
    def add_kit_template(self, code: str, name: str, parts: dict[str, int]) -> None:
        if code in self.templates:
            raise IntegrityViolation(f"kit template {code} exists", constraint="kit_template_pkey")
        self.templates[code] = (name, dict(parts))

    def kit_template_parts(self, code: str) -> dict[str, int]:
        return dict(self.templates[code][1]) if code in self.templates else {}

    def kit_templates(self) -> list[Row]:
        return [{"code": c, "name": n, "parts": dict(sorted(p.items()))} for c, (n, p) in sorted(self.templates.items())]

    def add_kit(self, code: str, template: str, state: str, location_id: int | None, *, at: float, by: str) -> int:
        if any(k["code"] == code for k in self.kit_rows.values()):
            raise IntegrityViolation(f"kit {code} exists", constraint="kit_code_key")
        kid = self._new_id("kit")
        self.kit_rows[kid] = {"id": kid, "code": code, "template_code": template, "state": state,
                              "location_id": location_id, "created_at": at, "created_by": by}
        return kid

    def update_kit(self, kit_id: int, changes: dict[str, Any]) -> None:
        if kit_id in self.kit_rows:
            self.kit_rows[kit_id].update(changes)

    def kit(self, code: str) -> Row | None:
        k = next((k for k in self.kit_rows.values() if k["code"] == code), None)
        return None if k is None else {**k, "location": self._code_of(k["location_id"])}

    def kit_code(self, kit_id: int) -> str | None:
        k = self.kit_rows.get(kit_id)
        return k["code"] if k else None

    def kit_items(self, kit_id: int) -> list[Row]:
        rows = [self._with_model(r) for r in self.item_rows.values() if r["kit_id"] == kit_id]
        return sorted(rows, key=lambda d: (d["role"], d["serial"]))

    def kits(self, *, state: str | None) -> list[Row]:
        return [{"code": k["code"], "template": k["template_code"], "state": k["state"],
                 "location": self._code_of(k["location_id"]), "created_at": k["created_at"],
                 "created_by": k["created_by"]}
                for k in sorted(self.kit_rows.values(), key=lambda k: k["code"]) if not state or k["state"] == state]
