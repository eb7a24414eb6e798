"""Typed calls of the fleet API (docs/fleet-openapi.json), one small class per area.

``FleetClient(http)`` holds them as collaborators: ``c.items.show(serial)``,
``c.installations.create(...)``, ``c.monitoring.offline(...)``. Each method is one request
(lists: every page, or the first ``limit`` rows) and returns the decoded JSON; errors arrive
as fleet errors with their exit codes (:mod:`._errors`).
"""
from __future__ import annotations

import base64
from typing import Any, Callable, Iterable
from urllib.parse import quote

from ._http import Http

Row = dict[str, Any]
Rows = list[Row]          # (the areas' methods named ``list`` hide the builtin inside their classes)
Names = list[str]


def _p(segment: str) -> str:
    """One path segment, escaped (codes may hold '/', e.g. room INST-OSL-1/101)."""
    return quote(str(segment), safe="")


class _Area:
    def __init__(self, http: Http) -> None:
        self.http = http


class Auth(_Area):
    def login(self, user: str, password: str) -> Row:
        return self.http.post("/login", {"user": user, "password": password}, auth=False)

    def logout(self) -> None:
        self.http.post("/logout")

    def me(self) -> Row:
        return self.http.get("/me")

    def create_token(self, user: str, name: str, *, expires_at: float | None = None,
                     permissions: list[str] | None = None, municipalities: list[str] | None = None) -> Row:
        return self.http.post("/tokens", {"user": user, "name": name, "expires_at": expires_at,
                                          "permissions": permissions, "municipalities": municipalities})


class Users(_Area):
    def list(self) -> Rows:
        return self.http.pages("/users")

    def create(self, name: str, role: str, *, municipalities: Names | None, password: str) -> Row:
        return self.http.post("/users", {"name": name, "role": role, "municipalities": municipalities,
                                         "password": password})

    def set_scope(self, name: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Row:
        return self.http.put(f"/users/{_p(name)}/scope", {"add": list(add), "remove": list(remove)})


class Audit(_Area):
    def entries(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                limit: int = 50) -> Rows:
        return self.http.pages("/audit", {"entity": entity, "entity_id": entity_id, "actor": actor}, limit=limit)


class Catalog(_Area):
    def municipalities(self) -> Rows:
        return self.http.pages("/municipalities")

    def add_municipality(self, id: str, name: str) -> Row:
        return self.http.post("/municipalities", {"id": id, "name": name})

    def locations(self, *, kind: str | None = None, municipality: str | None = None) -> Rows:
        return self.http.pages("/locations", {"kind": kind, "municipality": municipality})

    def add_location(self, code: str, kind: str, *, name: str | None = None, municipality: str | None = None,
                     parent: str | None = None) -> Row:
        return self.http.post("/locations", {"code": code, "kind": kind, "name": name, "municipality": municipality,
                                             "parent": parent})

    def models(self) -> Rows:
        return self.http.pages("/models")

    def add_model(self, code: str, name: str, *, role: str, radio: str, firmware_family: str) -> Row:
        return self.http.post("/models", {"code": code, "name": name, "role": role, "radio": radio,
                                          "firmware_family": firmware_family})

    def kit_templates(self) -> Rows:
        return self.http.pages("/kit-templates")

    def add_kit_template(self, code: str, name: str, parts: dict[str, int]) -> Row:
        return self.http.post("/kit-templates", {"code": code, "name": name, "parts": parts})


class Items(_Area):
    def list(self, *, location: str | None = None, model: str | None = None, state: str | None = None,
             municipality: str | None = None, limit: int = 100) -> Rows:
        return self.http.pages("/items", {"location": location, "model": model, "state": state,
                                          "municipality": municipality}, limit=limit)

    def show(self, key: str) -> Row:
        """model, state, place, kit, installation, gateway status, history (``fleet device show``)."""
        return self.http.get(f"/items/{_p(key)}")

    def receive(self, serial: str, model: str, location: str, *, hw_id: str | None = None, state: str = "in_stock",
                ref: str | None = None) -> Row:
        return self.http.post("/items", {"serial": serial, "model": model, "hw_id": hw_id, "location": location,
                                         "state": state, "ref": ref})

    def import_delivery(self, csv_text: str, location: str, *, ref: str | None = None, state: str = "in_stock",
                        on_progress: Callable[[int, int], None] | None = None) -> Row:
        """All rows or none; ``on_progress(done, total)`` as the server writes them (an NDJSON stream)."""
        body = {"location": location, "ref": ref, "state": state, "csv": csv_text}
        result: Row | None = None
        for line in self.http.lines("POST", "/deliveries", body, timeout=None):
            if "problem" in line:
                from ._errors import error_from_problem

                p = line["problem"]
                raise error_from_problem(int(p.get("status", 500)), p, method="POST", path="/api/v1/deliveries")
            if "result" in line:
                result = line["result"]
            elif on_progress is not None and "done" in line:
                on_progress(int(line["done"]), int(line.get("total") or 0))
        if result is None:
            from ._errors import ServerUnavailable

            raise ServerUnavailable("the connection ended before the server said how the import went; check with "
                                    f"`fleet item list --location {location}` before importing again")
        return result

    def move(self, key: str, to: str, *, reason: str = "moved") -> Row:
        return self.http.post(f"/items/{_p(key)}/move", {"to": to, "reason": reason})

    def transition(self, key: str, state: str, *, reason: str, to: str | None = None, ref: str | None = None) -> Row:
        return self.http.post(f"/items/{_p(key)}/transition", {"state": state, "reason": reason, "to": to, "ref": ref})

    def states(self) -> dict[str, Names]:
        return self.http.get("/item-states")


class Stock(_Area):
    def levels(self, *, location: str | None = None, model: str | None = None, municipality: str | None = None,
               below_reorder_point: bool = False) -> Rows:
        return self.http.pages("/stock", {"location": location, "model": model, "municipality": municipality,
                                          "below_reorder_point": below_reorder_point or None})

    def set_reorder_point(self, location: str, model: str, min_qty: int) -> Row:
        return self.http.put(f"/stock/reorder-points/{_p(location)}/{_p(model)}", {"min_qty": min_qty})


class Kits(_Area):
    def list(self, *, state: str | None = None) -> Rows:
        return self.http.pages("/kits", {"state": state})

    def show(self, code: str) -> Row:
        return self.http.get(f"/kits/{_p(code)}")

    def assemble(self, template: str, serials: Iterable[str], *, code: str | None = None) -> Row:
        return self.http.post("/kits", {"template": template, "serials": [*serials], "code": code})

    def dismantle(self, code: str) -> Row:
        return self.http.post(f"/kits/{_p(code)}/dismantle")


class Installations(_Area):
    def list(self, *, municipality: str | None = None, status: str | None = None) -> Rows:
        return self.http.pages("/installations", {"municipality": municipality, "status": status})

    def create(self, *, resident_ref: str, location: str, kit: str, consent_kind: str, consent_date: str,
               consent_ref: str | None = None, routing: dict[str, Any] | None = None) -> Row:
        return self.http.post("/installations", {
            "resident_ref": resident_ref, "location": location, "kit": kit, "consent_kind": consent_kind,
            "consent_date": consent_date, "consent_ref": consent_ref, "routing": routing})

    def show(self, code: str) -> Row:
        """With checklist, consent and routing: the server audits this read of personal data."""
        return self.http.get(f"/installations/{_p(code)}")

    def handover(self, code: str, fmt: str = "md") -> str:
        return self.http.text(f"/installations/{_p(code)}/handover", params={"format": fmt})

    def questions(self) -> Rows:
        return self.http.get("/installation-questions")

    def set_checklist(self, code: str, serial: str, answers: dict[str, Any], *, version: int | None) -> Row:
        return self.http.put(f"/installations/{_p(code)}/checklist/{_p(serial)}",
                             {"answers": answers, "version": version})

    def set_routing(self, code: str, routing: dict[str, Any], *, version: int | None) -> Row:
        return self.http.put(f"/installations/{_p(code)}/routing", {"routing": routing, "version": version})

    def set_consent(self, code: str, kind: str, date: str, ref: str | None, *, version: int | None) -> Row:
        return self.http.put(f"/installations/{_p(code)}/consent",
                             {"kind": kind, "date": date, "ref": ref, "version": version})

    def commissioning(self, code: str) -> Row:
        """gateway_id, devices, missing_test_alarms and the readiness problems (checklist, consent)."""
        return self.http.get(f"/installations/{_p(code)}/commissioning")

    def push_config(self, code: str) -> Row:
        """The configuration of the installation's gateway, pushed by the service (commissioning)."""
        return self.http.post(f"/installations/{_p(code)}/config/push")

    def sign_command(self, code: str, cmd: str, args: dict[str, Any]) -> Row:
        """A commissioning command (ping, pair, test_mode) signed by the service for the installation's
        gateway: ``cmd_id``, ``gateway_id`` and ``payload`` (the ``wt.signed/1`` text to publish)."""
        return self.http.post(f"/installations/{_p(code)}/commands", {"cmd": cmd, "args": args})

    def test_alarm(self, code: str, *, device_id: str, event_id: str, seen_at: float | None,
                   latency_ms: float | None, placement: int | None = None) -> Row:
        """Report a test alarm; ``placement``: a fall alarm's ``data.placement`` (sent only when known).
        The answer's ``placement`` says whether it matches the checklist (a fall sensor)."""
        body: dict[str, Any] = {"device_id": device_id, "event_id": event_id, "seen_at": seen_at,
                                "latency_ms": latency_ms}
        if placement is not None:
            body["placement"] = placement
        return self.http.post(f"/installations/{_p(code)}/test-alarms", body)

    def complete(self, code: str, *, version: int | None) -> Row:
        return self.http.post(f"/installations/{_p(code)}/complete", {"version": version})

    def move(self, code: str, to: str, *, version: int | None) -> Row:
        return self.http.post(f"/installations/{_p(code)}/move", {"to": to, "version": version})

    def deinstall(self, code: str, to: str, *, retention_days: float, version: int | None) -> Row:
        return self.http.post(f"/installations/{_p(code)}/deinstall",
                              {"to": to, "retention_days": retention_days, "version": version})


class Privacy(_Area):
    def purge(self, code: str | None = None, *, now: bool = False) -> Row:
        return self.http.post("/privacy/purges", {"code": code, "now": now})

    def verify(self, code: str, *, resident_ref: str | None = None) -> Row:
        return self.http.post(f"/installations/{_p(code)}/privacy-verification", {"resident_ref": resident_ref})


class Config(_Area):
    def templates(self) -> Rows:
        return self.http.pages("/config/templates")

    def set_key(self, scope: str, scope_id: str, key: str, value: Any) -> Row:
        """``value=None`` removes the key from the template."""
        path = f"/config/templates/{_p(scope)}/{_p(scope_id)}/keys/{_p(key)}"
        return self.http.delete(path) if value is None else self.http.put(path, {"value": value})

    def assign(self, gateway: str, *, group: str | None = None, municipality: str | None = None) -> Row:
        return self.http.put(f"/gateways/{_p(gateway)}/config-assignment", {"group": group,
                                                                            "municipality": municipality})

    def show(self, gateway: str, *, version: int | None = None) -> Row:
        return self.http.get(f"/gateways/{_p(gateway)}/config", params={"version": version})

    def check(self, gateway: str) -> Row:
        return self.http.get(f"/gateways/{_p(gateway)}/config/check")

    def diff(self, gateway: str, *, from_version: int | None = None, to_version: int | None = None) -> Row:
        return self.http.get(f"/gateways/{_p(gateway)}/config/diff", params={"from": from_version, "to": to_version})

    def push(self, gateway: str) -> Row:
        return self.http.post(f"/gateways/{_p(gateway)}/config/push")

    def status(self, *, drift_only: bool = False) -> Rows:
        return self.http.pages("/config/status", {"drift_only": drift_only or None})


class Releases(_Area):
    def keys(self) -> Rows:
        return self.http.pages("/release-keys")

    def add_key(self, public_pem: str, name: str) -> Row:
        return self.http.post("/release-keys", {"public_pem": public_pem, "name": name})

    def list(self, *, target: str | None = None) -> Rows:
        return self.http.pages("/releases", {"target": target})

    def show(self, release_id: str) -> Row:
        return self.http.get(f"/releases/{_p(release_id)}")

    def add(self, signed: dict[str, Any], artifact: bytes) -> Row:
        return self.http.post("/releases", {"signed": signed, "artifact_base64": base64.b64encode(artifact).decode()},
                              timeout=600)


class Rollouts(_Area):
    def create(self, **body: Any) -> Row:
        return self.http.post("/rollouts", body)

    def list(self) -> Rows:
        return self.http.pages("/rollouts")

    def show(self, rollout_id: str) -> Row:
        return self.http.get(f"/rollouts/{_p(rollout_id)}")

    def units(self, rollout_id: str, *, state: str | None = None) -> Rows:
        return self.http.pages(f"/rollouts/{_p(rollout_id)}/units", {"state": state})

    def control(self, rollout_id: str, action: str, *, retry_failed: bool = False) -> Row:
        return self.http.post(f"/rollouts/{_p(rollout_id)}/{_p(action)}",
                              params={"retry_failed": True} if retry_failed else None)


class Monitoring(_Area):
    def offline(self, *, minutes: float, municipality: str | None = None, limit: int = 200) -> tuple[int, Rows]:
        extra: dict[str, Any] = {}
        rows = self.http.pages("/monitoring/offline-gateways", {"minutes": minutes, "municipality": municipality},
                               limit=limit, extra=extra)
        return int(extra.get("total", len(rows))), rows

    def silent_devices(self, *, minutes: float, municipality: str | None = None, limit: int = 500) -> Rows:
        return self.http.pages("/monitoring/silent-devices", {"minutes": minutes, "municipality": municipality},
                               limit=limit)

    def low_batteries(self, *, below: int, municipality: str | None = None, limit: int = 500) -> Rows:
        return self.http.pages("/monitoring/low-batteries", {"below": below, "municipality": municipality},
                               limit=limit)

    def failed_updates(self, *, days: float, municipality: str | None = None, limit: int = 500) -> Rows:
        return self.http.pages("/monitoring/failed-updates", {"days": days, "municipality": municipality},
                               limit=limit)

    def ingest(self, *, hours: float = 24.0) -> Row:
        return self.http.get("/monitoring/ingest", params={"hours": hours})

    def quarantine(self, *, reason: str | None = None, gateway: str | None = None, days: float | None = None,
                   limit: int = 200) -> Rows:
        return self.http.pages("/monitoring/quarantine", {"reason": reason, "gateway": gateway, "days": days},
                               limit=limit)


class Stats(_Area):
    def benefits(self, *, start: str, end: str, by: str = "month", municipality: str | None = None) -> Rows:
        return self.http.get("/statistics/benefits", params={"from": start, "to": end, "by": by,
                                                             "municipality": municipality})["items"]

    def set_baseline(self, municipality: str, night_checks_per_night: float) -> Row:
        return self.http.put(f"/statistics/baselines/{_p(municipality)}",
                             {"night_checks_per_night": night_checks_per_night})


class FleetClient:
    """The fleet service as typed calls; ``where`` says which service (for messages)."""

    def __init__(self, http: Http, *, embedded: bool) -> None:
        self.http = http
        self.embedded = embedded
        self.where = http.where
        self.auth = Auth(http)
        self.users = Users(http)
        self.audit = Audit(http)
        self.catalog = Catalog(http)
        self.items = Items(http)
        self.stock = Stock(http)
        self.kits = Kits(http)
        self.installations = Installations(http)
        self.privacy = Privacy(http)
        self.config = Config(http)
        self.releases = Releases(http)
        self.rollouts = Rollouts(http)
        self.monitoring = Monitoring(http)
        self.stats = Stats(http)
        self._me: Row | None = None

    def me(self) -> Row:
        """Who the token belongs to (``/me``: user, role, municipalities, permissions), asked once."""
        if self._me is None:
            self._me = self.auth.me()
        return self._me

    def close(self) -> None:
        self.http.close()
