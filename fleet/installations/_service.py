"""Installation service: create, read (audited), edit with optimistic concurrency, checklist,
test alarms and completion, room move, deinstall, purge of personal data and its proof.

``InstallationService(repo, inventory, clock)`` runs inside one transaction: ``repo`` is an
:class:`~fleet.installations._model.InstallationRepo`, ``inventory`` the
:class:`~fleet.inventory.InventoryService` of the same transaction (items, kits, places).
No SQL here.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from ..access import Actor, Permission, audit
from ..clock import Clock
from ..errors import CommissioningError, Conflict, InvalidTransition, NotFound, ValidationError
from ..inventory import InventoryService, ItemState
from ._checklist import missing_answers, validate_answers
from ._commission import check_command, new_cmd_id
from ._model import PERSONAL_COLUMNS, InstallationRepo, Row
from ._placement import DETECTOR, MISMATCH, expected_placement
from ._placement import check as placement_check
from ._privacy import check_no_personal_data, validate_resident_ref
from ._routing import validate_routing

DEFAULT_RETENTION_S = 30 * 86400
_CONSENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")


def _check_version(row: Row, expected: int | None) -> None:
    if expected is not None and int(row["version"]) != int(expected):
        raise Conflict(
            f"installation {row['code']} was changed by {row['updated_by']} (now version {row['version']}, you "
            f"edited version {expected}); reload it with `fleet install show {row['code']}` and apply your change again",
            installation=row["code"], expected=expected, current=row["version"], changed_by=row["updated_by"])


def _editable(row: Row) -> None:
    if row["status"] in ("deinstalled", "purged"):
        raise InvalidTransition(f"installation {row['code']} is {row['status']}; it can no longer be edited",
                                installation=row["code"])


def validate_consent(kind: str, ref: str | None, on: str) -> tuple[str, str | None, str]:
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


@dataclass
class InstallationService:
    repo: InstallationRepo
    inventory: InventoryService
    clock: Clock

    # -- loading and saving --------------------------------------------------------
    def _load(self, code: str) -> Row:
        row = self.repo.installation(code)
        if row is None:
            raise NotFound(f"no installation {code!r}; find it with `fleet install list`", installation=code)
        return row

    def _for_edit(self, actor: Actor, code: str, expected_version: int | None) -> Row:
        row = self._load(code)
        actor.require(Permission.INSTALL_WRITE, row["municipality_id"])
        _editable(row)
        _check_version(row, expected_version)
        return row

    def _save(self, actor: Actor, row: Row, expected: int | None, changes: Row) -> int:
        """Write only if the row still has the version the user edited: no lost updates."""
        version = int(row["version"]) if expected is None else int(expected)
        n = self.repo.update_installation(row["id"], {**changes, "updated_at": self.clock.time(),
                                                      "updated_by": actor.name}, expected_version=version)
        if n != 1:
            _check_version(self._load(row["code"]), version)
            raise Conflict(f"installation {row['code']} changed meanwhile; reload and try again")
        return version + 1

    def _audit(self, actor: Actor, action: str, row: Row, **kw: Any) -> None:
        audit(self.repo, actor, action, "installation", row["code"], at=self.clock.time(),
              municipality=row["municipality_id"], **kw)

    # -- create and read -------------------------------------------------------------
    def create(self, actor: Actor, *, resident_ref: str, location: str, kit: str, consent_kind: str,
               consent_date: str, consent_ref: str | None = None, routing: dict[str, Any] | None = None) -> Row:
        """A new installation (status ``commissioning``); the kit's items go ``in_transit``."""
        ref = validate_resident_ref(resident_ref)
        kind, cref, cdate = validate_consent(consent_kind, consent_ref, consent_date)
        loc = self.inventory.get_location(location)
        if loc["kind"] not in ("home", "room"):
            raise ValidationError(f"{location} is a {loc['kind']}; install in a home or an institution room",
                                  field="location")
        mun = loc["municipality_id"]
        actor.require(Permission.INSTALL_WRITE, mun)
        routing_json = json.dumps(validate_routing(routing), sort_keys=True) if routing is not None else None
        k = self.inventory.get_kit(kit)
        if k["state"] != "assembled":
            raise InvalidTransition(f"kit {kit} is {k['state']}; only an assembled kit can be installed", kit=kit)
        gateways = [i for i in k["items"] if i["role"] == "gateway"]
        if len(gateways) != 1 or not gateways[0]["hw_id"]:
            raise ValidationError(f"kit {kit} needs exactly one gateway with a gateway id", field="kit")
        now = self.clock.time()
        iid = self.repo.add_installation({
            "code": "pending-" + uuid.uuid4().hex,   # the final code derives from the id (no race between creators)
            "municipality_id": mun, "status": "commissioning", "resident_ref": ref, "location_id": loc["id"],
            "kit_id": k["id"], "gateway_id": gateways[0]["hw_id"], "checklist": json.dumps({}),
            "consent_kind": kind, "consent_ref": cref, "consent_date": cdate, "routing": routing_json,
            "created_at": now, "created_by": actor.name, "updated_at": now, "updated_by": actor.name, "version": 1})
        code = f"I-{int(iid):06d}"
        self.repo.update_installation(iid, {"code": code}, bump_version=False)
        for it in k["items"]:
            self.inventory.transition(actor, it["serial"], ItemState.IN_TRANSIT, reason=f"to installation {code}",
                                      ref=code, installation_id=iid)
            self.inventory.attach_to_installation(it["serial"], iid)
        audit(self.repo, actor, "installation.create", "installation", code, at=now, municipality=mun, personal=True,
              detail={"location": location, "kit": kit})
        return self.show(actor, code, audit_read=False)

    def devices(self, installation_id: int) -> list[Row]:
        return self.inventory.items_of_installation(installation_id)

    def sensor_devices(self, installation_id: int) -> list[Row]:
        """Devices that must send a test alarm: everything except the gateway itself."""
        return [d for d in self.devices(installation_id) if d["role"] != "gateway"]

    def show(self, actor: Actor, code: str, *, personal: bool = True, audit_read: bool = True) -> dict[str, Any]:
        """The installation; personal fields only with PERSONAL_READ, and that read is audited."""
        row = self._load(code)
        actor.require(Permission.INSTALL_READ, row["municipality_id"])
        loc = self.inventory.location_summary(row["location_id"]) if row["location_id"] else None
        out: dict[str, Any] = {
            "code": row["code"], "status": row["status"], "version": int(row["version"]),
            "municipality": row["municipality_id"], "location": loc["code"] if loc else None,
            "location_kind": loc["kind"] if loc else None, "institution": loc["parent"] if loc else None,
            "kit": self.inventory.kit_code(row["kit_id"]) if row["kit_id"] else None, "gateway_id": row["gateway_id"],
            "created_at": row["created_at"], "created_by": row["created_by"],
            "updated_at": row["updated_at"], "updated_by": row["updated_by"], "commissioned_at": row["commissioned_at"],
            "deinstalled_at": row["deinstalled_at"], "purge_due_at": row["purge_due_at"], "purged_at": row["purged_at"],
            "devices": self.devices(row["id"]),
            "test_alarms": self.repo.test_alarms(row["id"]),
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
                self._audit(actor, "installation.read", row, personal=True)
        return out

    def list_installations(self, actor: Actor, *, municipality: str | None = None, status: str | None = None,
             limit: int = 200) -> list[Row]:
        actor.require(Permission.INSTALL_READ, municipality)
        return self.repo.installations(municipality=municipality, status=status, scope=actor.municipalities,
                                       limit=limit)

    # -- edits -----------------------------------------------------------------------
    def set_checklist(self, actor: Actor, code: str, device: str, answers: dict[str, Any], *,
                      expected_version: int | None) -> int:
        """Merge answers for one device (serial) into the checklist; returns the new version."""
        row = self._for_edit(actor, code, expected_version)
        devs = {d["serial"]: d for d in self.devices(row["id"])}
        if device not in devs:
            raise ValidationError(f"{device} is not a device of {code}; its devices: {', '.join(devs)}",
                                  field="device")
        clean = validate_answers(device, answers)
        checklist = json.loads(row["checklist"] or "{}")
        checklist.setdefault(device, {}).update(clean)
        v = self._save(actor, row, expected_version, {"checklist": json.dumps(checklist, sort_keys=True)})
        self._audit(actor, "installation.checklist", row, personal=True,
                    detail={"device": device, "keys": sorted(clean)})
        return v

    def set_routing(self, actor: Actor, code: str, routing: dict[str, Any], *, expected_version: int | None) -> int:
        row = self._for_edit(actor, code, expected_version)
        doc = validate_routing(routing)
        v = self._save(actor, row, expected_version, {"routing": json.dumps(doc, sort_keys=True)})
        self._audit(actor, "installation.routing", row, personal=True,
                    detail={"steps": 2 + len(doc.get("relatives", []))})
        return v

    def set_consent(self, actor: Actor, code: str, kind: str, on: str, ref: str | None, *,
                    expected_version: int | None) -> int:
        row = self._for_edit(actor, code, expected_version)
        kind, ref, on = validate_consent(kind, ref, on)
        v = self._save(actor, row, expected_version, {"consent_kind": kind, "consent_ref": ref, "consent_date": on})
        self._audit(actor, "installation.consent", row, personal=True, detail={"kind": kind})
        return v

    # -- commissioning -----------------------------------------------------------------
    def commissioning_plan(self, actor: Actor, code: str) -> tuple[str, list[Row]]:
        """What `fleet install commission` needs: the gateway id and the devices that must send a test alarm."""
        row = self._load(code)
        actor.require(Permission.INSTALL_WRITE, row["municipality_id"])
        return row["gateway_id"], self.sensor_devices(row["id"])

    def sign_command(self, actor: Actor, code: str, cmd: str, args: dict[str, Any], *,
                     sign: Callable[[str, str, str, dict[str, Any]], bytes]) -> Row:
        """A commissioning command for the installation's own gateway, signed by the fleet:
        ``sign(gateway_id, cmd_id, cmd, args)`` is the service's control signer (its key, the
        store's sequence). Only while ``commissioning``, for a caller who may write the
        installation, and only ``ping``, ``pair`` and ``test_mode`` with the installation's
        devices (:func:`~fleet.installations._commission.check_command`). Audited as
        ``installation.command`` (cmd, cmd_id, gateway, device(s); never the key or signature).
        The technician's tool publishes ``payload`` to ``wt/v1/gw/{gateway_id}/cmd`` as it is."""
        row = self._load(code)
        actor.require(Permission.INSTALL_WRITE, row["municipality_id"])
        if row["status"] != "commissioning":
            raise InvalidTransition(f"installation {code} is {row['status']}, not commissioning; the fleet signs "
                                    "commissioning commands (ping, pair, test_mode) only while it is commissioned",
                                    installation=code, status=row["status"])
        gateway_id = row["gateway_id"]
        if not gateway_id:
            raise CommissioningError(f"installation {code} has no gateway (the kit needs one)", installation=code)
        detail = check_command(code, cmd, args, self.sensor_devices(row["id"]))
        cmd_id = new_cmd_id()
        payload = sign(gateway_id, cmd_id, cmd, args)
        seq = json.loads(payload)["seq"]
        self._audit(actor, "installation.command", row, detail={**detail, "cmd_id": cmd_id, "gateway": gateway_id,
                                                                 "seq": seq})
        return {"code": code, "cmd_id": cmd_id, "gateway_id": gateway_id, "cmd": cmd, "seq": seq,
                "payload": payload.decode()}

    def record_test_alarm(self, code: str, *, device_id: str, event_id: str, seen_at: float,
                          latency_ms: float | None, placement: int | None = None) -> bool:
        """Store a test alarm seen at the platform (a later one replaces the device's earlier one);
        True if it was the first from that device.

        ``placement``: the detector a fall sensor's test fall says it runs (``data.placement``,
        0 wrist, 1 chest/pendant, 2 waist/pocket); kept with what the checklist chose
        (:meth:`placement_checks` compares them).
        """
        if placement is not None and (isinstance(placement, bool) or placement not in DETECTOR):
            raise ValidationError(f"placement {placement!r} is not a detector: 0 wrist, 1 chest/pendant, "
                                  "2 waist/pocket (the fall alarm's data.placement)", field="placement")
        row = self._load(code)
        expected = None
        if placement is not None:
            dev = next((d for d in self.sensor_devices(row["id"]) if d["hw_id"] == device_id), None)
            if dev is not None and dev["role"] == "fall":
                answers = json.loads(row["checklist"] or "{}").get(dev["serial"], {})
                expected = expected_placement(answers.get("placement"))
        return self.repo.add_test_alarm(row["id"], device_id=device_id, event_id=event_id, seen_at=seen_at,
                                        latency_ms=latency_ms, placement=placement, placement_expected=expected)

    def missing_test_alarms(self, code: str) -> list[Row]:
        row = self._load(code)
        seen = {a["device_id"] for a in self.repo.test_alarms(row["id"])}
        return [d for d in self.sensor_devices(row["id"]) if d["hw_id"] not in seen]

    def placement_checks(self, code: str) -> list[Row]:
        """Per fall sensor whose test alarm was seen: does its latest test fall report the detector
        the checklist chose? (``status``: confirmed, mismatch — with ``message`` —, not_reported,
        not_answered; fleet/installations/_placement.py)."""
        row = self._load(code)
        checklist = json.loads(row["checklist"] or "{}")
        alarms = {a["device_id"]: a for a in self.repo.test_alarms(row["id"])}
        out = []
        for d in self.sensor_devices(row["id"]):
            c = placement_check(code=code, device=d, answer=checklist.get(d["serial"], {}).get("placement"),
                                alarm=alarms.get(d["hw_id"]), gateway_id=row["gateway_id"])
            if c is not None:
                out.append(c)
        return out

    def complete(self, actor: Actor, code: str, *, expected_version: int | None) -> int:
        """Mark the installation done: REFUSED until every device's test alarm was seen at the
        platform, every fall sensor's latest test fall reports the placement its checklist chose
        (one that does not report it does not block), and the checklist is complete. Items
        become ``installed``."""
        row = self._load(code)
        actor.require(Permission.INSTALL_WRITE, row["municipality_id"])
        if row["status"] != "commissioning":
            raise InvalidTransition(f"installation {code} is {row['status']}, not commissioning", installation=code)
        _check_version(row, expected_version)
        missing = self.missing_test_alarms(code)
        if missing:
            raise CommissioningError(
                f"installation {code} is not done: no test alarm seen at the platform from "
                + ", ".join(f"{d['role']} {d['serial']} ({d['hw_id']})" for d in missing)
                + "; run `fleet install commission` and trigger a test alarm on each",
                installation=code, missing=[d["serial"] for d in missing])
        wrong = [c for c in self.placement_checks(code) if c["status"] == MISMATCH]
        if wrong:
            raise CommissioningError(
                f"installation {code} is not done: " + " ".join(c["message"] for c in wrong),
                installation=code, placement_mismatch=[
                    {k: c[k] for k in ("serial", "hw_id", "checklist", "expected", "reported")} for c in wrong])
        checklist = json.loads(row["checklist"] or "{}")
        todo = missing_answers(checklist, {d["serial"]: d["role"] for d in self.sensor_devices(row["id"])})
        if todo:
            raise CommissioningError(
                f"installation {code} is not done: checklist incomplete for "
                + "; ".join(f"{d}: {', '.join(k)}" for d, k in todo.items())
                + " (fleet install checklist)", installation=code, missing_answers=todo)
        if row["consent_kind"] is None:
            raise CommissioningError(f"installation {code} has no consent record (fleet install consent)")
        loc_code = self.inventory.location_code(row["location_id"])
        for d in self.devices(row["id"]):
            self.inventory.transition(actor, d["serial"], ItemState.INSTALLED,
                                      reason=f"installation {code} commissioned", location=loc_code, ref=code,
                                      installation_id=row["id"])
        self.inventory.set_kit(row["kit_id"], state="installed", location_id=row["location_id"])
        v = self._save(actor, row, expected_version, {"status": "active", "commissioned_at": self.clock.time()})
        self._audit(actor, "installation.complete", row)
        return v

    # -- moves and the end of the service ------------------------------------------------
    def move_room(self, actor: Actor, code: str, new_location: str, *, expected_version: int | None) -> int:
        """The resident moves (e.g. to another institution room); the installed devices go along."""
        row = self._for_edit(actor, code, expected_version)
        loc = self.inventory.get_location(new_location)
        if loc["kind"] not in ("home", "room"):
            raise ValidationError(f"{new_location} is a {loc['kind']}; move to a home or an institution room")
        actor.require(Permission.INSTALL_WRITE, loc["municipality_id"])
        if loc["id"] == row["location_id"]:
            raise ValidationError(f"installation {code} is already at {new_location}")
        busy = self.repo.active_at(loc["id"], exclude_id=row["id"])
        if busy and loc["kind"] == "room":
            raise ValidationError(f"room {new_location} already has installation {busy}; move or deinstall that first")
        old = self.inventory.location_code(row["location_id"])
        for d in self.devices(row["id"]):
            self.inventory.follow_installation(actor, d["serial"], loc["id"],
                                               reason=f"resident moved with installation {code}", ref=code)
        self.inventory.move_kit(row["kit_id"], loc["id"])
        v = self._save(actor, row, expected_version, {"location_id": loc["id"]})
        self._audit(actor, "installation.move", row, detail={"from": old, "to": new_location})
        return v

    def deinstall(self, actor: Actor, code: str, *, to_location: str, expected_version: int | None,
                  retention_s: float = DEFAULT_RETENTION_S) -> int:
        """End the service: items -> returned (at ``to_location``), personal data scheduled for deletion."""
        row = self._for_edit(actor, code, expected_version)
        for d in self.devices(row["id"]):
            self.inventory.transition(actor, d["serial"], ItemState.RETURNED, reason=f"deinstalled from {code}",
                                      location=to_location, ref=code, kit_id=None)
        self.inventory.set_kit(row["kit_id"], state="dismantled", location_id=None)
        now = self.clock.time()
        v = self._save(actor, row, expected_version,
                       {"status": "deinstalled", "deinstalled_at": now, "purge_due_at": now + retention_s})
        self._audit(actor, "installation.deinstall", row,
                    detail={"returned_to": to_location, "purge_due_at": now + retention_s})
        return v

    def purge(self, actor: Actor, *, code: str | None = None, force: bool = False) -> list[str]:
        """Delete the personal data of deinstalled installations whose retention has passed
        (or of ``code`` now with ``force``). Returns the codes purged."""
        actor.require(Permission.PRIVACY_PURGE)
        now = self.clock.time()
        if code:
            row = self._load(code)
            if row["status"] != "deinstalled":
                raise InvalidTransition(f"installation {code} is {row['status']}; only deinstalled installations "
                                        "are purged")
            if not force and row["purge_due_at"] > now:
                raise InvalidTransition(f"installation {code} is due for purge later; use --now to purge it today")
            rows = [row]
        else:
            rows = self.repo.due_for_purge(now)
        for r in rows:
            self.repo.update_installation(r["id"], {**{c: None for c in PERSONAL_COLUMNS}, "status": "purged",
                                                    "purged_at": now})
            self._audit(actor, "installation.purge", r, personal=True)
        return [r["code"] for r in rows]

    def verify_purged(self, actor: Actor, code: str, *, resident_ref: str | None = None) -> dict[str, Any]:
        """Prove that no personal data of ``code`` remains.

        Checks that every personal column of the installation is empty and, given the former
        ``resident_ref``, searches every stored text for it.
        """
        actor.require(Permission.PRIVACY_PURGE)
        row = self._load(code)
        problems = [f"installation.{c} still holds data" for c in PERSONAL_COLUMNS if row[c] is not None]
        scanned = 0
        if resident_ref:
            scanned, found = self.repo.find_text(resident_ref)
            problems += [f"{table}.{col}: {n} row(s) contain the resident reference" for table, col, n in found]
        return {"installation": code, "status": row["status"], "ok": not problems, "problems": problems,
                "personal_columns_checked": list(PERSONAL_COLUMNS), "text_columns_scanned": scanned}
