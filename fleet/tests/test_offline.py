"""`fleet offline` query on both backends: what counts as offline, order, municipality scope."""
from __future__ import annotations

from fleet.access import Actor, Role
from fleet.commands.offline import list_offline
from fleet.tests.factories import ROUTING, installations, seed_catalog, stock_kit


def test_offline_definition_order_and_scope(store, admin, clock):
    seed_catalog(store, admin, clock())
    kit = stock_kit(store, admin, clock(), 1)
    now = clock()
    with store.transaction() as tx:
        inst = installations(tx, clock).create(admin, resident_ref="R-OFF001", location="HOME-0001", kit=kit,
                                               consent_kind="consent", consent_date="2026-11-01", routing=ROUTING)
        rows = [("gw-fresh", now - 60, True), ("gw-stale", now - 3600, True), ("gw-said-off", now - 30, False),
                ("gw-never", None, False), (inst["gateway_id"], now - 7200, True)]
        tx.executemany("INSERT INTO gateway_status (gateway_id, last_seen, online, version, config_version)"
                       " VALUES (?, ?, ?, '0.1.0', 1)", rows)
    with store.transaction(write=False) as tx:
        total, got = list_offline(tx, admin, now=now, minutes=15)
        assert total == 4
        assert [r["gateway_id"] for r in got] == ["gw-never", inst["gateway_id"], "gw-stale", "gw-said-off"]
        assert got[1]["installation"] == inst["code"] and got[1]["municipality"] == "0301"
        oslo = Actor("o", Role.SUPPORT, frozenset({"0301"}))
        bergen = Actor("b", Role.SUPPORT, frozenset({"4601"}))
        assert [r["gateway_id"] for r in list_offline(tx, oslo, now=now, minutes=15)[1]] == [inst["gateway_id"]]
        assert list_offline(tx, bergen, now=now, minutes=15) == (0, [])
        assert list_offline(tx, admin, now=now, minutes=15, limit=2)[0] == 4
