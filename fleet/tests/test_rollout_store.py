"""Releases and rollouts on SQLite and PostgreSQL: unit selection, persistence, control."""
from __future__ import annotations

import pytest

from fleet.upgrades import (ArtifactRejected, RolloutEvent, RolloutPlan, RolloutState, Target, Unit, UnitEvent,
                            UnitState, generate_key, sign)
from fleet.upgrades._sql import ReleaseRepo, RolloutRepo

NOW = 1_800_000_000.0


def seed(tx):
    tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
    tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("4601", "Bergen"))
    tx.execute("INSERT INTO config_group (group_id, municipality_id) VALUES (?, ?)", ("night", "0301"))
    for gw, muni, group in (("gw-1", "0301", "night"), ("gw-2", "0301", None), ("gw-3", "4601", None)):
        tx.execute("INSERT INTO config_gateway (gateway_id, group_id, municipality_id) VALUES (?, ?, ?)", (gw, group, muni))
        tx.execute("INSERT INTO gateway_status (gateway_id, online, version) VALUES (?, ?, ?)",
                   (gw, True, "0.2.0" if gw == "gw-2" else "0.1.0"))
    for dev, gw, role, fw in (("00000000000a", "gw-1", "bed", "1.0.0"), ("00000000000b", "gw-1", "button", "1.0.0"),
                              ("00000000000c", "gw-2", "bed", "1.1.0"), ("00000000000d", "gw-3", "bed", "1.0.0")):
        tx.execute("INSERT INTO device_status (device_id, gateway_id, role, fw, reported_at) VALUES (?, ?, ?, ?, ?)",
                   (dev, gw, role, fw, NOW))


def test_release_repo_verifies_before_storing(store):
    priv, pub = generate_key()
    art = b"fw" * 500
    s = sign(art, "bed.tar", Target.FW_BED, "1.1.0", priv)
    with store.transaction() as tx:
        repo = ReleaseRepo(tx)
        repo.add_key(pub, "ci", at=NOW, by="t")
        with pytest.raises(ArtifactRejected):
            repo.add(art[:-1] + b"x", s, at=NOW, by="t")
        assert repo.releases() == []
        rid = repo.add(art, s, at=NOW, by="t")
        assert repo.add(art, s, at=NOW, by="t") == rid             # same release again: no-op
        assert repo.artifact(rid) == art and repo.signed(rid).manifest.version == "1.1.0"
        other = sign(b"different", "bed.tar", Target.FW_BED, "1.1.0", priv)
        with pytest.raises(ArtifactRejected, match="bump the version"):
            repo.add(b"different", other, at=NOW, by="t")


def test_unit_selection_persistence_and_control(store, make_clock):
    with store.transaction() as tx:
        seed(tx)
        repo = RolloutRepo(tx)
        assert repo.candidate_units(Target.GATEWAY) == [Unit("gw-1"), Unit("gw-2"), Unit("gw-3")]
        assert repo.candidate_units(Target.GATEWAY, municipality="0301") == [Unit("gw-1"), Unit("gw-2")]
        assert repo.candidate_units(Target.GATEWAY, group="night") == [Unit("gw-1")]
        beds = repo.candidate_units(Target.FW_BED, municipality="0301")
        assert beds == [Unit("gw-1", "00000000000a"), Unit("gw-2", "00000000000c")]
        assert repo.current_units(Target.FW_BED, "1.1.0") == {Unit("gw-2", "00000000000c")}
        assert repo.current_units(Target.GATEWAY, "0.2.0") == {Unit("gw-2")}
        tx.execute("INSERT INTO release_key (key_id, name, public_pem, added_at, added_by) VALUES (?, ?, ?, ?, ?)",
                   ("k", "k", "-", NOW, "t"))
        tx.execute("INSERT INTO release (release_id, target, version, artifact_name, size, sha256, key_id, signed, "
                   "artifact, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ("fw-bed@1.1.0", "fw-bed", "1.1.0", "a", 1, "0", "k", "{}", b"x", NOW, "t"))
        eng = repo.create("r1", "fw-bed@1.1.0", None, RolloutPlan(waves=(0.5, 1.0)), beds, make_clock(NOW),
                          current=repo.current_units(Target.FW_BED, "1.1.0"), at=NOW, by="t")
        assert eng.counts()[UnitState.CURRENT] == 1
        eng.control(RolloutEvent.START)
        sent = eng.due()
        for unit, _ in sent:
            eng.report(unit, UnitEvent.DOWNLOADED)
        repo.save(eng, at=NOW, runner=True)
    with store.transaction() as tx:
        repo = RolloutRepo(tx)
        back = repo.load("r1", make_clock(NOW))
        assert back.state is RolloutState.RUNNING
        assert {u: r.state for u, r in back.units.items()} == {u: r.state for u, r in eng.units.items()}
        assert any(r.state is UnitState.INSTALLING for r in back.units.values())
        repo.request("r1", RolloutEvent.PAUSE)
        assert repo.take_control("r1") is RolloutEvent.PAUSE and repo.take_control("r1") is None
        with pytest.raises(Exception, match="already exists"):
            repo.create("r1", "fw-bed@1.1.0", None, RolloutPlan(), beds, make_clock(NOW), current=set(), at=NOW, by="t")
        with pytest.raises(Exception, match="no units"):
            repo.create("r2", "fw-bed@1.1.0", None, RolloutPlan(), [], make_clock(NOW), current=set(), at=NOW, by="t")
