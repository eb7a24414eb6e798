"""Installations: create, read (audited), edit with optimistic concurrency, checklist,
room move, deinstall, purge of personal data and its verification."""
from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Any

from ..access import Actor, Permission, audit
from ..errors import CommissioningError, Conflict, InvalidTransition, NotFound, ValidationError
from ..inventory import ItemState, get_kit, get_location, transition
from ..store import Tx
from ._checklist import missing_answers, validate_answers
from ._privacy import check_no_personal_data, validate_resident_ref
from ._routing import validate_routing

PERSONAL_COLUMNS = ("resident_ref", "checklist", "consent_kind", "consent_ref", "consent_date", "routing")
DEFAULT_RETENTION_S = 30 * 86400
_CONSENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")


def _load(tx: Tx, code: str) -> dict[str, Any]:
    row = tx.one("SELECT * FROM installation WHERE code = ?", (code,))
    if row is None:
        raise NotFound(f"no installation {code!r}; find it with `fleet install list`", installation=code)
    return row


def _check_version(row: dict[str, Any], expected: int | None) -> None:
    if expected is not None and int(row["version"]) != int(expected):
        raise Conflict(
            f"installation {row['code']} was changed by {row['updated_by']} (now version {row['version']}, you "
            f"edited version {expected}); reload it with `fleet install show {row['code']}` and apply your change again",
            installation=row["code"], expected=expected, current=row["version"], changed_by=row["updated_by"])


def _save(tx: Tx, actor: Actor, row: dict[str, Any], expected: int | None, changes: dict[str, Any], *,
          at: float) -> int:
    """UPDATE ... WHERE version = expected: the compare-and-swap that prevents lost updates."""
    version = int(row["version"]) if expected is None else int(expected)
    sets = ", ".join(f"{k} = ?" for k in changes)
    n = tx.execute(f"UPDATE installation SET {sets}, version = version + 1, updated_at = ?, updated_by = ?"
                   " WHERE id = ? AND version = ?",
                   (*changes.values(), at, actor.name, row["id"], version))
    if n != 1:
        _check_version(_load(tx, row["code"]), version)
        raise Conflict(f"installation {row['code']} changed meanwhile; reload and try again")
    return version + 1


def _validate_consent(kind: str, ref: str | None, on: str) -> tuple[str, str | None, str]:
    if kind not in ("consent", "capacity_assessment"):
        raise ValidationError("consent kind must be 'consent' (the resident consented) or 'capacity_assessment' "
                              "(give the reference of the documented assessment)", field="consent_kind")
    if kind == "capacity_assessment" and not ref:
        raise ValidationError("a capacity assessment needs its reference (--consent-ref, e.g. the case number)",
                              field="consent_ref")
    if ref is not None:
        check_no_personal_data(ref, "consent_ref")
        if not _CONSENT_REF.match(ref):
            raise ValidationError(f"consent reference {ref!r} must be a case/document number "
                                  "(letters, digits, '.', '/', '-')", field="consent_ref")
    try:
        d = date.fromisoformat(on)
    except (TypeError, ValueError):
        raise ValidationError(f"consent date {on!r} must be YYYY-MM-DD", field="consent_date") from None
    return kind, ref, d.isoformat()


def _require(actor: Actor, perm: Permission, row_or_mun: dict[str, Any] | str) -> None:
    mun = row_or_mun if isinstance(row_or_mun, str) else row_or_mun["municipality_id"]
    actor.require(perm, mun)


def create(tx: Tx, actor: Actor, *, resident_ref: str, location: str, kit: str, consent_kind: str,
           consent_date: str, consent_ref: str | None = None, routing: dict[str, Any] | None = None,
           at: float) -> dict[str, Any]:
    """A new installation (status ``commissioning``); the kit's items go ``in_transit``."""
    ref = validate_resident_ref(resident_ref)
    kind, cref, cdate = _validate_consent(consent_kind, consent_ref, consent_date)
    loc = get_location(tx, location)
    if loc["kind"] not in ("home", "room"):
        raise ValidationError(f"{location} is a {loc['kind']}; install in a home or an institution room",
                              field="location")
    mun = loc["municipality_id"]
    _require(actor, Permission.INSTALL_WRITE, mun)
    routing_json = json.dumps(validate_routing(routing), sort_keys=True) if routing is not None else None
    k = get_kit(tx, kit)
    if k["state"] != "assembled":
        raise InvalidTransition(f"kit {kit} is {k['state']}; only an assembled kit can be installed", kit=kit)
    if tx.one("SELECT code FROM installation WHERE resident_ref = ? AND status IN ('draft', 'commissioning', 'active')"
              " AND location_id <> ?", (ref, loc["id"])):
        pass  # a resident may have several services; nothing to refuse
    gateways = [i for i in k["items"] if i["role"] == "gateway"]
    if len(gateways) != 1 or not gateways[0]["hw_id"]:
        raise ValidationError(f"kit {kit} needs exactly one gateway with a gateway id", field="kit")
    pending = "pending-" + uuid.uuid4().hex  # the final code derives from the id (no race between creators)
    iid = tx.scalar(
        "INSERT INTO installation (code, municipality_id, status, resident_ref, location_id, kit_id, gateway_id,"
        " checklist, consent_kind, consent_ref, consent_date, routing, created_at, created_by, updated_at, updated_by,"
        " version) VALUES (?, ?, 'commissioning', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id",
        (pending, mun, ref, loc["id"], k["id"], gateways[0]["hw_id"], json.dumps({}), kind, cref, cdate, routing_json,
         at, actor.name, at, actor.name))
    code = f"I-{int(iid):06d}"
    tx.execute("UPDATE installation SET code = ? WHERE id = ?", (code, iid))
    for it in k["items"]:
        transition(tx, actor, it["serial"], ItemState.IN_TRANSIT, reason=f"to installation {code}", ref=code,
                   installation_id=iid, at=at)
        tx.execute("UPDATE item SET installation_id = ? WHERE serial = ?", (iid, it["serial"]))
    audit(tx, actor, "installation.create", "installation", code, at=at, municipality=mun, personal=True,
          detail={"location": location, "kit": kit})
    return show(tx, actor, code, at=at, audit_read=False)


def devices(tx: Tx, installation_id: int) -> list[dict[str, Any]]:
    return tx.query("SELECT i.serial, i.hw_id, i.model_code, m.role, m.firmware_family, i.state FROM item i"
                    " JOIN device_model m ON m.code = i.model_code WHERE i.installation_id = ?"
                    " ORDER BY m.role, i.serial", (installation_id,))


def show(tx: Tx, actor: Actor, code: str, *, at: float, personal: bool = True,
         audit_read: bool = True) -> dict[str, Any]:
    """The installation; personal fields only with PERSONAL_READ, and that read is audited."""
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_READ, row)
    loc = tx.one("SELECT l.code, l.kind, p.code AS parent FROM location l LEFT JOIN location p ON p.id = l.parent_id"
                 " WHERE l.id = ?", (row["location_id"],)) if row["location_id"] else None
    kit = tx.scalar("SELECT code FROM kit WHERE id = ?", (row["kit_id"],)) if row["kit_id"] else None
    out: dict[str, Any] = {
        "code": row["code"], "status": row["status"], "version": int(row["version"]),
        "municipality": row["municipality_id"], "location": loc["code"] if loc else None,
        "location_kind": loc["kind"] if loc else None, "institution": loc["parent"] if loc else None,
        "kit": kit, "gateway_id": row["gateway_id"], "created_at": row["created_at"], "created_by": row["created_by"],
        "updated_at": row["updated_at"], "updated_by": row["updated_by"], "commissioned_at": row["commissioned_at"],
        "deinstalled_at": row["deinstalled_at"], "purge_due_at": row["purge_due_at"], "purged_at": row["purged_at"],
        "devices": devices(tx, row["id"]),
        "test_alarms": tx.query("SELECT device_id, event_id, seen_at, latency_ms FROM installation_test_alarm"
                                " WHERE installation_id = ? ORDER BY device_id", (row["id"],)),
    }
    if personal and actor.can(Permission.PERSONAL_READ, row["municipality_id"]):
        out.update({
            "resident_ref": row["resident_ref"],
            "checklist": json.loads(row["checklist"]) if row["checklist"] else None,
            "consent": None if row["consent_kind"] is None else
            {"kind": row["consent_kind"], "ref": row["consent_ref"], "date": row["consent_date"]},
            "routing": json.loads(row["routing"]) if row["routing"] else None,
        })
        if audit_read:
            audit(tx, actor, "installation.read", "installation", code, at=at,
                  municipality=row["municipality_id"], personal=True)
    return out


def list_installations(tx: Tx, actor: Actor, *, municipality: str | None = None, status: str | None = None,
                       limit: int = 200) -> list[dict[str, Any]]:
    actor.require(Permission.INSTALL_READ, municipality)
    where, params = [], []
    scope, sp = actor.scope_sql("i.municipality_id")
    where.append(scope)
    params += sp
    if municipality:
        where.append("i.municipality_id = ?")
        params.append(municipality)
    if status:
        where.append("i.status = ?")
        params.append(status)
    return tx.query("SELECT i.code, i.status, i.municipality_id AS municipality, l.code AS location, k.code AS kit,"
                    " i.gateway_id, i.version, i.updated_at FROM installation i"
                    " LEFT JOIN location l ON l.id = i.location_id LEFT JOIN kit k ON k.id = i.kit_id"
                    f" WHERE {' AND '.join(where)} ORDER BY i.code LIMIT ?", (*params, limit))


def _editable(row: dict[str, Any]) -> None:
    if row["status"] in ("deinstalled", "purged"):
        raise InvalidTransition(f"installation {row['code']} is {row['status']}; it can no longer be edited",
                                installation=row["code"])


def set_checklist(tx: Tx, actor: Actor, code: str, device: str, answers: dict[str, Any], *,
                  expected_version: int | None, at: float) -> int:
    """Merge answers for one device (serial) into the checklist; returns the new version."""
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    _editable(row)
    _check_version(row, expected_version)
    devs = {d["serial"]: d for d in devices(tx, row["id"])}
    if device not in devs:
        raise ValidationError(f"{device} is not a device of {code}; its devices: {', '.join(devs)}", field="device")
    clean = validate_answers(device, answers)
    checklist = json.loads(row["checklist"] or "{}")
    checklist.setdefault(device, {}).update(clean)
    v = _save(tx, actor, row, expected_version, {"checklist": json.dumps(checklist, sort_keys=True)}, at=at)
    audit(tx, actor, "installation.checklist", "installation", code, at=at, municipality=row["municipality_id"],
          personal=True, detail={"device": device, "keys": sorted(clean)})
    return v


def set_routing(tx: Tx, actor: Actor, code: str, routing: dict[str, Any], *, expected_version: int | None,
                at: float) -> int:
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    _editable(row)
    _check_version(row, expected_version)
    doc = validate_routing(routing)
    v = _save(tx, actor, row, expected_version, {"routing": json.dumps(doc, sort_keys=True)}, at=at)
    audit(tx, actor, "installation.routing", "installation", code, at=at, municipality=row["municipality_id"],
          personal=True, detail={"steps": 2 + len(doc.get("relatives", []))})
    return v


def set_consent(tx: Tx, actor: Actor, code: str, kind: str, on: str, ref: str | None, *,
                expected_version: int | None, at: float) -> int:
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    _editable(row)
    _check_version(row, expected_version)
    kind, ref, on = _validate_consent(kind, ref, on)
    v = _save(tx, actor, row, expected_version, {"consent_kind": kind, "consent_ref": ref, "consent_date": on}, at=at)
    audit(tx, actor, "installation.consent", "installation", code, at=at, municipality=row["municipality_id"],
          personal=True, detail={"kind": kind})
    return v


def sensor_devices(tx: Tx, installation_id: int) -> list[dict[str, Any]]:
    """Devices that must send a test alarm: everything except the gateway itself."""
    return [d for d in devices(tx, installation_id) if d["role"] != "gateway"]


def record_test_alarm(tx: Tx, code: str, *, device_id: str, event_id: str, seen_at: float,
                      latency_ms: float | None) -> bool:
    """Store a test alarm seen at the platform; True if it was the first from that device."""
    row = _load(tx, code)
    n = tx.execute("INSERT INTO installation_test_alarm (installation_id, device_id, event_id, seen_at, latency_ms)"
                   " VALUES (?, ?, ?, ?, ?) ON CONFLICT (installation_id, device_id) DO NOTHING",
                   (row["id"], device_id, event_id, seen_at, latency_ms))
    return n == 1


def missing_test_alarms(tx: Tx, code: str) -> list[dict[str, Any]]:
    row = _load(tx, code)
    seen = {r["device_id"] for r in tx.query("SELECT device_id FROM installation_test_alarm WHERE installation_id = ?",
                                             (row["id"],))}
    return [d for d in sensor_devices(tx, row["id"]) if d["hw_id"] not in seen]


def complete(tx: Tx, actor: Actor, code: str, *, expected_version: int | None, at: float) -> int:
    """Mark the installation done: REFUSED until every device's test alarm was seen at the
    platform and the checklist is complete. Items become ``installed``."""
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    if row["status"] != "commissioning":
        raise InvalidTransition(f"installation {code} is {row['status']}, not commissioning", installation=code)
    _check_version(row, expected_version)
    missing = missing_test_alarms(tx, code)
    if missing:
        raise CommissioningError(
            f"installation {code} is not done: no test alarm seen at the platform from "
            + ", ".join(f"{d['role']} {d['serial']} ({d['hw_id']})" for d in missing)
            + "; run `fleet install commission` and trigger a test alarm on each",
            installation=code, missing=[d["serial"] for d in missing])
    checklist = json.loads(row["checklist"] or "{}")
    todo = missing_answers(checklist, [d["serial"] for d in sensor_devices(tx, row["id"])])
    if todo:
        raise CommissioningError(
            f"installation {code} is not done: checklist incomplete for "
            + "; ".join(f"{d}: {', '.join(k)}" for d, k in todo.items())
            + " (fleet install checklist)", installation=code, missing_answers=todo)
    if row["consent_kind"] is None:
        raise CommissioningError(f"installation {code} has no consent record (fleet install consent)")
    loc_code = tx.scalar("SELECT code FROM location WHERE id = ?", (row["location_id"],))
    for d in devices(tx, row["id"]):
        transition(tx, actor, d["serial"], ItemState.INSTALLED, reason=f"installation {code} commissioned",
                   location=loc_code, ref=code, installation_id=row["id"], at=at)
    tx.execute("UPDATE kit SET state = 'installed', location_id = ? WHERE id = ?", (row["location_id"], row["kit_id"]))
    v = _save(tx, actor, row, expected_version, {"status": "active", "commissioned_at": at}, at=at)
    audit(tx, actor, "installation.complete", "installation", code, at=at, municipality=row["municipality_id"])
    return v


def move_room(tx: Tx, actor: Actor, code: str, new_location: str, *, expected_version: int | None,
              at: float) -> int:
    """The resident moves (e.g. to another institution room); the installed devices go along."""
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    _editable(row)
    _check_version(row, expected_version)
    loc = get_location(tx, new_location)
    if loc["kind"] not in ("home", "room"):
        raise ValidationError(f"{new_location} is a {loc['kind']}; move to a home or an institution room")
    _require(actor, Permission.INSTALL_WRITE, loc["municipality_id"])
    if loc["id"] == row["location_id"]:
        raise ValidationError(f"installation {code} is already at {new_location}")
    busy = tx.scalar("SELECT code FROM installation WHERE location_id = ? AND status IN ('commissioning', 'active')"
                     " AND id <> ?", (loc["id"], row["id"]))
    if busy and loc["kind"] == "room":
        raise ValidationError(f"room {new_location} already has installation {busy}; move or deinstall that first")
    old = tx.scalar("SELECT code FROM location WHERE id = ?", (row["location_id"],))
    for d in devices(tx, row["id"]):
        item = tx.one("SELECT * FROM item WHERE serial = ?", (d["serial"],))
        if item is None:
            continue
        tx.execute("INSERT INTO item_movement (item_id, at, actor, from_state, to_state, from_location_id,"
                   " to_location_id, reason, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (item["id"], at, actor.name, item["state"], item["state"], item["location_id"], loc["id"],
                    f"resident moved with installation {code}", code))
        tx.execute("UPDATE item SET location_id = ?, updated_at = ?, version = version + 1 WHERE id = ?",
                   (loc["id"], at, item["id"]))
    tx.execute("UPDATE kit SET location_id = ? WHERE id = ?", (loc["id"], row["kit_id"]))
    v = _save(tx, actor, row, expected_version, {"location_id": loc["id"]}, at=at)
    audit(tx, actor, "installation.move", "installation", code, at=at, municipality=row["municipality_id"],
          detail={"from": old, "to": new_location})
    return v


def deinstall(tx: Tx, actor: Actor, code: str, *, to_location: str, expected_version: int | None, at: float,
              retention_s: float = DEFAULT_RETENTION_S) -> int:
    """End the service: items -> returned (at ``to_location``), personal data scheduled for deletion."""
    row = _load(tx, code)
    _require(actor, Permission.INSTALL_WRITE, row)
    _editable(row)
    _check_version(row, expected_version)
    for d in devices(tx, row["id"]):
        transition(tx, actor, d["serial"], ItemState.RETURNED, reason=f"deinstalled from {code}", location=to_location,
                   ref=code, at=at, kit_id=None)
    tx.execute("UPDATE kit SET state = 'dismantled', location_id = NULL WHERE id = ?", (row["kit_id"],))
    v = _save(tx, actor, row, expected_version,
              {"status": "deinstalled", "deinstalled_at": at, "purge_due_at": at + retention_s}, at=at)
    audit(tx, actor, "installation.deinstall", "installation", code, at=at, municipality=row["municipality_id"],
          detail={"returned_to": to_location, "purge_due_at": at + retention_s})
    return v


def purge(tx: Tx, actor: Actor, *, at: float, code: str | None = None, force: bool = False) -> list[str]:
    """Delete the personal data of deinstalled installations whose retention has passed
    (or of ``code`` now with ``force``). Returns the codes purged."""
    actor.require(Permission.PRIVACY_PURGE)
    if code:
        row = _load(tx, code)
        if row["status"] != "deinstalled":
            raise InvalidTransition(f"installation {code} is {row['status']}; only deinstalled installations are purged")
        if not force and row["purge_due_at"] > at:
            raise InvalidTransition(f"installation {code} is due for purge later; use --now to purge it today")
        rows = [row]
    else:
        rows = tx.query("SELECT * FROM installation WHERE status = 'deinstalled' AND purge_due_at <= ?", (at,))
    done = []
    for r in rows:
        tx.execute("UPDATE installation SET resident_ref = NULL, checklist = NULL, consent_kind = NULL,"
                   " consent_ref = NULL, consent_date = NULL, routing = NULL, status = 'purged', purged_at = ?,"
                   " version = version + 1 WHERE id = ?", (at, r["id"]))
        audit(tx, actor, "installation.purge", "installation", r["code"], at=at, municipality=r["municipality_id"],
              personal=True)
        done.append(r["code"])
    return done


def verify_purged(tx: Tx, actor: Actor, code: str, *, resident_ref: str | None = None) -> dict[str, Any]:
    """Prove that no personal data of ``code`` remains.

    Checks that every personal column of the installation is NULL and, given the former
    ``resident_ref``, scans every text column of every table for it.
    """
    actor.require(Permission.PRIVACY_PURGE)
    row = _load(tx, code)
    problems = [f"installation.{c} still holds data" for c in PERSONAL_COLUMNS if row[c] is not None]
    checked_columns = 0
    if resident_ref:
        for table, cols in _text_columns(tx):
            for col in cols:
                checked_columns += 1
                n = tx.scalar(f"SELECT count(*) FROM {table} WHERE {col} LIKE ?", (f"%{resident_ref}%",))
                if n:
                    problems.append(f"{table}.{col}: {n} row(s) contain the resident reference")
    return {"installation": code, "status": row["status"], "ok": not problems, "problems": problems,
            "personal_columns_checked": list(PERSONAL_COLUMNS), "text_columns_scanned": checked_columns}


def _text_columns(tx: Tx) -> list[tuple[str, list[str]]]:
    if tx.dialect.is_sqlite:
        tables = [r["name"] for r in tx.query("SELECT name FROM sqlite_master WHERE type = 'table'"
                                              " AND name NOT LIKE 'sqlite_%'")]
        out = []
        for t in tables:
            cols = [c["name"] for c in tx.query(f"PRAGMA table_info({t})") if (c["type"] or "").upper() == "TEXT"]
            if cols:
                out.append((t, cols))
        return out
    rows = tx.query("SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND data_type = 'text' ORDER BY table_name, column_name")
    out_map: dict[str, list[str]] = {}
    for r in rows:
        out_map.setdefault(r["table_name"], []).append(r["column_name"])
    return list(out_map.items())
