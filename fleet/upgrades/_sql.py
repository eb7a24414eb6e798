"""Releases, trusted keys and rollouts on the fleet database (tables from migration 0401)."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Iterable

from fleet.clock import Clock
from fleet.errors import NotFound
from fleet.upgrades._errors import ArtifactRejected, RolloutError, UpgradeError
from fleet.upgrades._rollout import RolloutEngine, RolloutPlan, Unit, UnitRecord, assign_waves
from fleet.upgrades._signing import SignedManifest, Target, key_id, load_public, verify
from fleet.upgrades._states import RolloutEvent, RolloutState, UnitState


class ReleaseRepo:
    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def add_key(self, public_pem: bytes, name: str, *, at: float, by: str) -> str:
        kid = key_id(load_public(public_pem))
        self.tx.execute("INSERT INTO release_key (key_id, name, public_pem, added_at, added_by) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (key_id) DO UPDATE SET name = excluded.name",
                        (kid, name, public_pem.decode(), at, by))
        return kid

    def trusted_keys(self) -> list:
        return [load_public(r["public_pem"].encode()) for r in self.tx.query("SELECT public_pem FROM release_key")]

    def keys(self) -> list[dict[str, Any]]:
        return self.tx.query("SELECT key_id, name, added_at, added_by FROM release_key ORDER BY added_at")

    def add(self, artifact: bytes, signed: SignedManifest, *, at: float, by: str) -> str:
        """Verify against the trusted keys, then store; a rejected artifact stores nothing."""
        m = verify(artifact, signed, self.trusted_keys())
        rid = m.release_id
        existing = self.tx.one("SELECT sha256 FROM release WHERE release_id = ?", (rid,))
        if existing is not None:
            if existing["sha256"] == m.sha256:
                return rid                      # same signed artifact again: no-op
            raise ArtifactRejected(f"release {rid} already exists with different content; "
                                   "bump the version instead of replacing a release", reason="version_taken")
        self.tx.execute(
            "INSERT INTO release (release_id, target, version, artifact_name, size, sha256, key_id, signed, artifact, "
            "added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rid, m.target.value, m.version, m.artifact, m.size, m.sha256, signed.key_id, signed.to_json(),
             artifact, at, by))
        return rid

    def get(self, release_id: str) -> dict[str, Any]:
        r = self.tx.one("SELECT release_id, target, version, artifact_name, size, sha256, key_id, signed, added_at, "
                        "added_by FROM release WHERE release_id = ?", (release_id,))
        if r is None:
            raise NotFound(f"no release {release_id!r}; list them with: fleet release list", release=release_id)
        return r

    def signed(self, release_id: str) -> SignedManifest:
        return SignedManifest.from_json(self.get(release_id)["signed"])

    def artifact(self, release_id: str) -> bytes:
        return bytes(self.tx.scalar("SELECT artifact FROM release WHERE release_id = ?", (release_id,)))

    def releases(self, target: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT release_id, target, version, size, sha256, key_id, added_at FROM release"
        if target:
            return self.tx.query(sql + " WHERE target = ? ORDER BY added_at", (target,))
        return self.tx.query(sql + " ORDER BY target, added_at")


class RolloutRepo:
    def __init__(self, tx: Any) -> None:
        self.tx = tx

    # -- choosing units ----------------------------------------------------------
    def candidate_units(self, target: Target, *, gateways: Iterable[str] = (), municipality: str | None = None,
                        group: str | None = None) -> list[Unit]:
        gws = set(gateways)
        if group:
            rows = self.tx.query("SELECT gateway_id FROM config_gateway WHERE group_id = ?", (group,))
            gws |= {r["gateway_id"] for r in rows}
        if municipality:
            rows = self.tx.query(
                "SELECT gateway_id FROM config_gateway WHERE municipality_id = ? UNION SELECT gateway_id FROM "
                "installation WHERE municipality_id = ? AND gateway_id IS NOT NULL AND status IN (?, ?)",
                (municipality, municipality, "commissioning", "active"))
            found = {r["gateway_id"] for r in rows}
            gws = (gws & found) if group else (gws | found)
        if not gws and not (group or municipality):
            rows = self.tx.query("SELECT gateway_id FROM gateway_status UNION SELECT gateway_id FROM config_gateway")
            gws = {r["gateway_id"] for r in rows}
        if target is Target.GATEWAY:
            return sorted(Unit(g) for g in gws)
        rows = self.tx.query("SELECT device_id, gateway_id FROM device_status WHERE role = ?", (target.role,))
        return sorted(Unit(r["gateway_id"], r["device_id"]) for r in rows if r["gateway_id"] in gws)

    def current_units(self, target: Target, version: str) -> set[Unit]:
        if target is Target.GATEWAY:
            return {Unit(r["gateway_id"]) for r in self.tx.query(
                "SELECT gateway_id FROM gateway_status WHERE version = ?", (version,))}
        return {Unit(r["gateway_id"], r["device_id"]) for r in self.tx.query(
            "SELECT gateway_id, device_id FROM device_status WHERE role = ? AND fw = ?", (target.role, version))}

    # -- persistence -------------------------------------------------------------
    def create(self, rollout_id: str, release_id: str, previous_id: str | None, plan: RolloutPlan,
               units: list[Unit], clock: Clock, *, current: set[Unit], at: float, by: str, seed: int = 0) -> RolloutEngine:
        if not units:
            raise RolloutError("no units match the selection; check --gateways/--municipality/--group and that "
                               "monitoring has seen the devices (fleet monitor devices)")
        if self.tx.one("SELECT 1 AS x FROM rollout WHERE rollout_id = ?", (rollout_id,)):
            raise RolloutError(f"rollout {rollout_id!r} already exists; pick another id", rollout=rollout_id)
        eng = RolloutEngine.create(rollout_id, plan, units, clock, seed=seed, current=current)
        self.tx.execute(
            "INSERT INTO rollout (rollout_id, release_id, previous_id, state, wave, plan, created_at, created_by, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rollout_id, release_id, previous_id, eng.state.value, 0, json.dumps(asdict(plan)), at, by, at))
        self.tx.bulk_insert("rollout_unit", ["rollout_id", "unit_key", "gateway_id", "device_id", "wave", "state",
                                             "attempts", "updated_at"],
                            [(rollout_id, r.unit.key, r.unit.gateway_id, r.unit.device_id, r.wave, r.state.value, 0, at)
                             for r in eng.units.values()])
        eng.dirty.clear()
        return eng

    def row(self, rollout_id: str) -> dict[str, Any]:
        r = self.tx.one("SELECT * FROM rollout WHERE rollout_id = ?", (rollout_id,))
        if r is None:
            raise NotFound(f"no rollout {rollout_id!r}; list them with: fleet rollout list", rollout=rollout_id)
        return r

    def load(self, rollout_id: str, clock: Clock) -> RolloutEngine:
        r = self.row(rollout_id)
        p = json.loads(r["plan"])
        plan = RolloutPlan(**{**p, "waves": tuple(p["waves"])})
        units = {}
        for u in self.tx.query("SELECT * FROM rollout_unit WHERE rollout_id = ?", (rollout_id,)):
            unit = Unit(u["gateway_id"], u["device_id"])
            units[unit] = UnitRecord(unit, int(u["wave"]), UnitState(u["state"]), u["sent_at"], u["updated_at"],
                                     u["error"], int(u["attempts"]))
        return RolloutEngine(rollout_id, plan, units, clock, RolloutState(r["state"]), int(r["wave"]), r["halt_reason"])

    def save(self, eng: RolloutEngine, *, at: float, runner: bool = False, detach: bool = False) -> None:
        """Persist the engine; ``runner``: a running `fleet rollout run` is alive now; ``detach``: it has ended."""
        self.tx.execute("UPDATE rollout SET state = ?, wave = ?, halt_reason = ?, updated_at = ?"
                        + (", runner_seen_at = ?" if runner else "") + " WHERE rollout_id = ?",
                        (eng.state.value, eng.wave, eng.halt_reason, at, *((at,) if runner else ()), eng.rollout_id))
        if eng.dirty:
            recs = [eng.units[u] for u in sorted(eng.dirty)]
            self.tx.executemany("UPDATE rollout_unit SET state = ?, attempts = ?, sent_at = ?, updated_at = ?, error = ? "
                                "WHERE rollout_id = ? AND unit_key = ?",
                                [(r.state.value, r.attempts, r.sent_at, r.updated_at, r.error, eng.rollout_id, r.unit.key)
                                 for r in recs])
            eng.dirty.clear()
        if detach:
            self.tx.execute("UPDATE rollout SET runner_seen_at = NULL WHERE rollout_id = ?", (eng.rollout_id,))

    def request(self, rollout_id: str, event: RolloutEvent) -> None:
        self.row(rollout_id)
        self.tx.execute("UPDATE rollout SET control = ? WHERE rollout_id = ?", (event.value, rollout_id))

    def take_control(self, rollout_id: str) -> RolloutEvent | None:
        v = self.tx.scalar("SELECT control FROM rollout WHERE rollout_id = ?", (rollout_id,))
        if v:
            self.tx.execute("UPDATE rollout SET control = NULL WHERE rollout_id = ?", (rollout_id,))
            return RolloutEvent(v)
        return None

    def rollouts(self) -> list[dict[str, Any]]:
        return self.tx.query("SELECT rollout_id, release_id, state, wave, halt_reason, created_at, updated_at "
                             "FROM rollout ORDER BY created_at")

    def unit_rows(self, rollout_id: str, *, state: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT unit_key, gateway_id, device_id, wave, state, attempts, updated_at, error FROM rollout_unit "
               "WHERE rollout_id = ?")
        params: list[Any] = [rollout_id]
        if state:
            sql += " AND state = ?"
            params.append(state)
        return self.tx.query(sql + " ORDER BY wave, unit_key", params)

    def failed_units(self, since: float | None = None) -> list[dict[str, Any]]:
        return self.tx.query(
            "SELECT u.rollout_id, r.release_id, u.gateway_id, u.device_id, u.state, u.error, u.updated_at "
            "FROM rollout_unit u JOIN rollout r ON r.rollout_id = u.rollout_id WHERE u.state = ? "
            "AND u.updated_at >= ? ORDER BY u.updated_at DESC", ("failed", since or 0.0))


__all__ = ["ReleaseRepo", "RolloutRepo", "UpgradeError"]
