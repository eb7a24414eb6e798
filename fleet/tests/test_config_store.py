"""SqlConfigStore on SQLite and PostgreSQL: same behaviour as the in-memory fake."""
from __future__ import annotations

import pytest

from fleet.config import AppliedReport, AppliedStatus, ConfigService, ConfigValidationError, Drift, Scope
from fleet.config._sql import SqlConfigStore

DEV = "a4c1380a1b2c"


class Pub:
    def __init__(self):
        self.n = 0

    def publish(self, topic, payload, *, qos=1, retain=False):
        self.n += 1


def test_templates_versions_applied_roundtrip(store, make_clock):
    with store.transaction() as tx:
        tx.execute("INSERT INTO municipality (id, name) VALUES (?, ?)", ("0301", "Oslo"))
        s = SqlConfigStore(tx)
        s.assign("gw-1", group_id="night", municipality_id="0301")
        tx.execute("INSERT INTO device_status (device_id, gateway_id, reported_at) VALUES (?, ?, ?)", (DEV, "gw-1", 1.0))
        svc = ConfigService(s, make_clock(1_800_000_000.0))
        svc.set_key(Scope.MUNICIPALITY, "0301", "rules.bed.max_out_min", 30, by="alice")
        svc.set_key(Scope.GROUP, "night", "rules.bed.window_start", "20:30", by="alice")
        svc.set_key(Scope.GROUP, "night", "rules.bed.window_end", "06:00", by="alice")
        svc.set_key(Scope.DEVICE, DEV, "role", "bed", by="alice")
        v = svc.push("gw-1", Pub())
    assert v.version == 1
    assert v.config == {"rules": {"bed": {"max_out_min": 30, "window_start": "20:30", "window_end": "06:00"}},
                        "devices": {DEV: {"role": "bed"}}}
    with store.transaction() as tx:
        s = SqlConfigStore(tx)
        svc = ConfigService(s, make_clock(1_800_000_000.0))
        with pytest.raises(ConfigValidationError, match="≥ 1"):
            svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 0, by="alice")
        assert s.get_template(Scope.GATEWAY, "gw-1") is None
        assert svc.status("gw-1").drift is Drift.PENDING
        s.record_applied(AppliedReport("gw-1", 1, AppliedStatus.APPLIED, None, 1_800_000_001.0, v.hash))
        s.record_applied(AppliedReport("gw-1", 0, AppliedStatus.APPLIED, None, 1_700_000_000.0))   # older: ignored
        assert svc.status("gw-1").drift is Drift.IN_SYNC
        svc.set_key(Scope.GATEWAY, "gw-1", "rules.bed.max_out_min", 20, by="bob")
        assert svc.push("gw-1", Pub()).version == 2
        assert [r["version"] for r in s.versions("gw-1")] == [1, 2]
        assert s.gateway_ids() == ["gw-1"]
        _, _, entries = svc.diff("gw-1", 1, 2)
        assert [(e.key, e.old, e.new) for e in entries] == [("rules.bed.max_out_min", 30, 20)]
