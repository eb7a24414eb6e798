"""InventoryRepo on the fleet database (fleet.store Tx; tables from migrations 0101, 0102).

One module for both engines: the SQL is the portable subset, dialect differences live in
fleet.store (``?`` placeholders, COPY vs executemany for bulk loads).
"""
from __future__ import annotations

from typing import Any, Iterable

from ..access._sql import SqlAuditLog
from ..store import in_scope
from ._model import ITEM_COLUMNS, MOVEMENT_COLUMNS, Row, Scope

_ITEM_FIELDS = frozenset({"state", "location_id", "kit_id", "installation_id", "updated_at"})
_KIT_FIELDS = frozenset({"code", "state", "location_id"})


def _sets(changes: dict[str, Any], allowed: frozenset[str]) -> str:
    bad = set(changes) - allowed
    if bad:
        raise ValueError(f"not an updatable column: {', '.join(sorted(bad))}")
    return ", ".join(f"{k} = ?" for k in changes)


class SqlInventoryRepo(SqlAuditLog):
    """All reads and writes of one service call run in the caller's transaction ``tx``."""

    # -- catalog -----------------------------------------------------------------
    def add_municipality(self, mid: str, name: str) -> None:
        self.tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", (mid, name))

    def municipalities(self) -> list[Row]:
        return self.tx.query("SELECT id, name FROM municipality ORDER BY id")

    def location(self, code: str) -> Row | None:
        return self.tx.one("SELECT * FROM location WHERE code = ?", (code,))

    def location_by_id(self, location_id: int) -> Row | None:
        return self.tx.one("SELECT * FROM location WHERE id = ?", (location_id,))

    def add_location(self, code: str, kind: str, name: str, municipality_id: str | None,
                     parent_id: int | None) -> int:
        return int(self.tx.scalar("INSERT INTO location (code, kind, name, municipality_id, parent_id, active)"
                                  " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                  (code, kind, name, municipality_id, parent_id, True)))

    def locations(self, *, kind: str | None, municipality: str | None, scope: Scope) -> list[Row]:
        where, params = ["1=1"], []
        if kind:
            where.append("l.kind = ?")
            params.append(kind)
        if municipality:
            where.append("l.municipality_id = ?")
            params.append(municipality)
        sc, sp = in_scope("l.municipality_id", scope)
        return self.tx.query("SELECT l.code, l.kind, l.name, l.municipality_id AS municipality, p.code AS parent"
                             " FROM location l LEFT JOIN location p ON p.id = l.parent_id"
                             f" WHERE {' AND '.join(where)} AND ({sc} OR l.municipality_id IS NULL) ORDER BY l.code",
                             (*params, *sp))

    def model(self, code: str) -> Row | None:
        return self.tx.one("SELECT * FROM device_model WHERE code = ?", (code,))

    def add_model(self, code: str, name: str, role: str, radio: str, firmware_family: str) -> None:
        self.tx.execute("INSERT INTO device_model (code, name, role, radio, firmware_family) VALUES (?, ?, ?, ?, ?)",
                        (code, name, role, radio, firmware_family))

    def models(self) -> list[Row]:
        return self.tx.query("SELECT code, name, role, radio, firmware_family FROM device_model ORDER BY code")

    def model_roles(self) -> dict[str, str]:
        return {r["code"]: r["role"] for r in self.tx.query("SELECT code, role FROM device_model")}

    def set_reorder_point(self, location_id: int, model_code: str, min_qty: int) -> None:
        self.tx.execute("INSERT INTO reorder_point (location_id, model_code, min_qty) VALUES (?, ?, ?)"
                        " ON CONFLICT (location_id, model_code) DO UPDATE SET min_qty = excluded.min_qty",
                        (location_id, model_code, min_qty))

    # -- items and the movement ledger -------------------------------------------
    def item(self, serial: str) -> Row | None:
        return self.tx.one("SELECT * FROM item WHERE serial = ?", (serial,))

    def item_by_hw_id(self, hw_id: str) -> Row | None:
        return self.tx.one("SELECT * FROM item WHERE hw_id = ?", (hw_id,))

    def item_detail(self, serial: str, hw_id: str) -> Row | None:
        # one round trip for what device show needs (it used to take up to seven); both lookups are
        # unique-index scans (serial, hw_id), the serial's row first as find_item has it
        return self.tx.one(
            "SELECT i.*, m.name AS model_name, m.role AS model_role, m.radio AS model_radio,"
            " m.firmware_family AS model_firmware_family, l.id AS loc_id, l.code AS loc_code, l.kind AS loc_kind,"
            " l.municipality_id AS loc_municipality, k.code AS kit_code, n.code AS installation_code,"
            " g.gateway_id AS gw_id, g.last_seen AS gw_last_seen, g.online AS gw_online, g.version AS gw_version,"
            " g.config_version AS gw_config_version"
            " FROM item i JOIN device_model m ON m.code = i.model_code"
            " LEFT JOIN location l ON l.id = i.location_id"
            " LEFT JOIN kit k ON k.id = i.kit_id"
            " LEFT JOIN installation n ON n.id = i.installation_id"
            " LEFT JOIN gateway_status g ON m.role = 'gateway' AND g.gateway_id = i.hw_id"
            " WHERE i.serial = ? OR i.hw_id = ? ORDER BY CASE WHEN i.serial = ? THEN 0 ELSE 1 END LIMIT 1",
            (serial, hw_id, serial))

    def reserve_item_ids(self, n: int) -> int:
        return self.tx.reserve_ids("item", n)

    def insert_items(self, rows: Iterable[tuple]) -> None:
        self.tx.bulk_insert("item", ITEM_COLUMNS, rows)

    def insert_movements(self, rows: Iterable[tuple]) -> None:
        self.tx.bulk_insert("item_movement", MOVEMENT_COLUMNS, rows)

    def add_movement(self, row: tuple) -> None:
        self.tx.execute(f"INSERT INTO item_movement ({', '.join(MOVEMENT_COLUMNS)})"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def update_item(self, item_id: int, changes: dict[str, Any], *, expected_version: int | None = None,
                    bump_version: bool = True) -> int:
        sets = _sets(changes, _ITEM_FIELDS) + (", version = version + 1" if bump_version else "")
        if expected_version is None:
            return self.tx.execute(f"UPDATE item SET {sets} WHERE id = ?", (*changes.values(), item_id))
        return self.tx.execute(f"UPDATE item SET {sets} WHERE id = ? AND version = ?",
                               (*changes.values(), item_id, expected_version))

    def item_history(self, item_id: int, limit: int) -> list[Row]:
        return self.tx.query(
            "SELECT m.at, m.actor, m.from_state, m.to_state, fl.code AS from_location, tl.code AS to_location,"
            " m.reason, m.ref FROM item_movement m LEFT JOIN location fl ON fl.id = m.from_location_id"
            " LEFT JOIN location tl ON tl.id = m.to_location_id WHERE m.item_id = ? ORDER BY m.id DESC LIMIT ?",
            (item_id, limit))

    def items(self, *, location: str | None = None, model: str | None = None, state: str | None = None,
              scope: Scope = None, limit: int = 100) -> list[Row]:
        where, params = ["1=1"], []
        for cond, val in (("l.code = ?", location), ("i.model_code = ?", model), ("i.state = ?", state)):
            if val:
                where.append(cond)
                params.append(val)
        sc, sp = in_scope("l.municipality_id", scope)
        return self.tx.query("SELECT i.serial, i.hw_id, i.model_code AS model, i.state, l.code AS location,"
                             " i.updated_at FROM item i LEFT JOIN location l ON l.id = i.location_id"
                             f" WHERE {' AND '.join(where)} AND ({sc} OR l.municipality_id IS NULL)"
                             " ORDER BY i.serial LIMIT ?", (*params, *sp, limit))

    def existing(self, serials: list[str], hw_ids: list[str]) -> tuple[set[str], set[str]]:
        have, have_hw = set(), set()
        for start in range(0, len(serials), 500):
            batch = serials[start:start + 500]
            have |= {r["serial"] for r in self.tx.query(
                f"SELECT serial FROM item WHERE serial IN ({', '.join('?' * len(batch))})", batch)}
        for start in range(0, len(hw_ids), 500):
            batch = hw_ids[start:start + 500]
            have_hw |= {r["hw_id"] for r in self.tx.query(
                f"SELECT hw_id FROM item WHERE hw_id IN ({', '.join('?' * len(batch))})", batch)}
        return have, have_hw

    def items_of_installation(self, installation_id: int) -> list[Row]:
        return self.tx.query("SELECT i.serial, i.hw_id, i.model_code, m.role, m.firmware_family, i.state FROM item i"
                             " JOIN device_model m ON m.code = i.model_code WHERE i.installation_id = ?"
                             " ORDER BY m.role, i.serial", (installation_id,))

    def stock_levels(self, *, location: str | None, model: str | None, municipality: str | None,
                     scope: Scope) -> list[Row]:
        where, params = ["l.kind IN ('warehouse', 'van', 'repair_vendor')"], []
        sc, sp = in_scope("l.municipality_id", scope)
        where.append(f"({sc} OR l.municipality_id IS NULL)")
        params += sp
        for cond, val in (("l.code = ?", location), ("m.code = ?", model), ("l.municipality_id = ?", municipality)):
            if val:
                where.append(cond)
                params.append(val)
        return self.tx.query(
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
            " ORDER BY l.code, m.code", params)

    def installation_code(self, installation_id: int) -> str | None:
        return self.tx.scalar("SELECT code FROM installation WHERE id = ?", (installation_id,))

    def gateway_status(self, gateway_id: str) -> Row | None:
        return self.tx.one("SELECT last_seen, online, version, config_version FROM gateway_status"
                           " WHERE gateway_id = ?", (gateway_id,))

    # -- kits --------------------------------------------------------------------
    def add_kit_template(self, code: str, name: str, parts: dict[str, int]) -> None:
        self.tx.execute("INSERT INTO kit_template (code, name) VALUES (?, ?)", (code, name))
        self.tx.executemany("INSERT INTO kit_template_part (template_code, role, qty) VALUES (?, ?, ?)",
                            [(code, r, q) for r, q in sorted(parts.items())])

    def kit_template_parts(self, code: str) -> dict[str, int]:
        rows = self.tx.query("SELECT role, qty FROM kit_template_part WHERE template_code = ?", (code,))
        return {r["role"]: int(r["qty"]) for r in rows}

    def kit_templates(self) -> list[Row]:
        out: dict[str, Row] = {}
        for r in self.tx.query("SELECT t.code, t.name, p.role, p.qty FROM kit_template t"
                               " JOIN kit_template_part p ON p.template_code = t.code ORDER BY t.code, p.role"):
            out.setdefault(r["code"], {"code": r["code"], "name": r["name"], "parts": {}})["parts"][r["role"]] = r["qty"]
        return list(out.values())

    def add_kit(self, code: str, template: str, state: str, location_id: int | None, *, at: float, by: str) -> int:
        return int(self.tx.scalar("INSERT INTO kit (code, template_code, state, location_id, created_at, created_by)"
                                  " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (code, template, state, location_id, at, by)))

    def update_kit(self, kit_id: int, changes: dict[str, Any]) -> None:
        self.tx.execute(f"UPDATE kit SET {_sets(changes, _KIT_FIELDS)} WHERE id = ?", (*changes.values(), kit_id))

    def kit(self, code: str) -> Row | None:
        return self.tx.one("SELECT k.*, l.code AS location FROM kit k LEFT JOIN location l ON l.id = k.location_id"
                           " WHERE k.code = ?", (code,))

    def kit_code(self, kit_id: int) -> str | None:
        return self.tx.scalar("SELECT code FROM kit WHERE id = ?", (kit_id,))

    def kit_items(self, kit_id: int) -> list[Row]:
        return self.tx.query("SELECT i.serial, i.hw_id, i.model_code, m.role, i.state FROM item i"
                             " JOIN device_model m ON m.code = i.model_code WHERE i.kit_id = ? ORDER BY m.role, i.serial",
                             (kit_id,))

    def kits(self, *, state: str | None) -> list[Row]:
        where, params = ("k.state = ?", [state]) if state else ("1=1", [])
        return self.tx.query("SELECT k.code, k.template_code AS template, k.state, l.code AS location, k.created_at,"
                             " k.created_by FROM kit k LEFT JOIN location l ON l.id = k.location_id"
                             f" WHERE {where} ORDER BY k.code", params)
