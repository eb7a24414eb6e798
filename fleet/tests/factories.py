"""Input factories and service wiring for fleet tests: catalog, kits, ids, and the services over
the SQL adapters or the in-memory fakes (:class:`World`)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from fleet.access import MemoryAccessRepo
from fleet.clock import Clock, FixedClock
from fleet.installations import MemoryInstallationRepo
from fleet.store import MemoryTransactions, sql_transactions


def inventory(tx, clock: Clock):
    """The inventory service over the SQL adapter in ``tx``."""
    from fleet.inventory import InventoryService
    from fleet.inventory._sql import SqlInventoryRepo

    return InventoryService(SqlInventoryRepo(tx), clock)


def installations(tx, clock: Clock):
    """The installation service over the SQL adapters in ``tx``."""
    from fleet.installations import InstallationService
    from fleet.installations._sql import SqlInstallationRepo

    return InstallationService(SqlInstallationRepo(tx), inventory(tx, clock), clock)


def access(tx, clock: Clock):
    """The access service over the SQL adapter in ``tx``."""
    from fleet.access import AccessService
    from fleet.access._sql import SqlAccessRepo

    return AccessService(SqlAccessRepo(tx), clock)


@dataclass
class MemoryFleet(MemoryInstallationRepo, MemoryAccessRepo):
    """One fake database for every area (as one SQL database serves them all)."""


@dataclass
class Services:
    """The services of one transaction."""

    inventory: Any
    installations: Any
    access: Any


class World:
    """The fleet's services over one backend: the in-memory fakes (``store=None``) or the SQL
    adapters on a fleet.store Store. ``with world.tx() as s:`` is one transaction."""

    def __init__(self, clock: Clock, store: Any = None) -> None:
        self.clock, self.store = clock, store
        self.fake = MemoryFleet() if store is None else None
        self._fake_tx = MemoryTransactions(self.fake) if store is None else None

    @property
    def kind(self) -> str:
        return "memory" if self.store is None else self.store.dialect.name.value

    def transactions(self, repo_type: str = "inventory") -> Any:
        """A unit of work handing out one area's repository (for flows such as login and import)."""
        if self._fake_tx is not None:
            return self._fake_tx
        from fleet.access._sql import SqlAccessRepo
        from fleet.inventory._sql import SqlInventoryRepo

        return sql_transactions(self.store, {"inventory": SqlInventoryRepo, "access": SqlAccessRepo}[repo_type])

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Services]:
        from fleet.access import AccessService
        from fleet.installations import InstallationService
        from fleet.inventory import InventoryService

        if self._fake_tx is not None:
            with self._fake_tx(write=write) as repo:
                inv = InventoryService(repo, self.clock)
                yield Services(inv, InstallationService(repo, inv, self.clock), AccessService(repo, self.clock))
        else:
            with self.store.transaction(write=write) as tx:
                yield Services(inventory(tx, self.clock), installations(tx, self.clock), access(tx, self.clock))


def seed(inv, actor) -> None:
    """A small catalog through an inventory service: two municipalities, a warehouse, a van, a
    home, an institution with two rooms, a repair vendor, four device models, a safety-alarm kit
    template."""
    inv.add_municipality(actor, "0301", "Oslo")
    inv.add_municipality(actor, "4601", "Bergen")
    inv.add_location(actor, "WH-OSLO", "warehouse", "Oslo central store", municipality="0301")
    inv.add_location(actor, "VAN-01", "van", "Van 1", municipality="0301")
    inv.add_location(actor, "WH-BGO", "warehouse", "Bergen store", municipality="4601")
    inv.add_location(actor, "HOME-0001", "home", municipality="0301")
    inv.add_location(actor, "INST-SAGA", "institution", "Saga care home", municipality="0301")
    inv.add_location(actor, "INST-SAGA/101", "room", "Room 101", municipality=None, parent="INST-SAGA")
    inv.add_location(actor, "INST-SAGA/102", "room", "Room 102", municipality=None, parent="INST-SAGA")
    inv.add_location(actor, "REPAIR-ACME", "repair_vendor", "Acme repairs", municipality=None)
    inv.add_model(actor, "WT-GW-1", "Home gateway", "gateway", "wifi+lte", "wt-gateway")
    inv.add_model(actor, "WT-BTN-2", "Alarm button", "button", "ble", "wt-sensor")
    inv.add_model(actor, "WT-FALL-1", "Fall sensor", "fall", "ble", "wt-sensor")
    inv.add_model(actor, "WT-BED-1", "Bed sensor", "bed", "serial", "wt-sensor")
    inv.add_kit_template(actor, "safety-alarm", "Safety alarm kit", {"gateway": 1, "button": 1, "fall": 1})


def seed_catalog(store, actor, at: float = 1_795_400_000.0) -> None:
    """:func:`seed` in one transaction of ``store``."""
    with store.transaction() as tx:
        seed(inventory(tx, FixedClock(at)), actor)


def hexid(n: int) -> str:
    return f"a4c138{n:06x}"


ROUTING = {"response_centre": "arc-oslo", "staff_group": "home-care-zone-3",
           "relatives": [{"relation": "daughter", "phone": "+47 912 34 567"}], "escalation_s": [120, 300]}

ANSWERS = {"alarm_recipient": "response centre arc-oslo", "responder": "home care night team",
           "technical_settings": {"window": "20:30-06:00", "delay_min": 30}, "relatives_agreement": "daughter is second contact",
           "charging_routine": "home care charges on Mondays", "supervision_checks_count": 2,
           "supervision_check_times": ["23:00", "03:00"], "care_plan_updated": "yes",
           "placement": "pendant"}   # asked of the fall sensor; recorded for the button too


def kit_for(inv, actor, n: int = 1, location: str = "WH-OSLO") -> str:
    """Receive a gateway, a button and a fall sensor and assemble a safety-alarm kit; returns the kit code."""
    from fleet.inventory import NewItem

    inv.receive_items(actor, [NewItem(f"GW-{n:04d}", "WT-GW-1", hexid(0x100000 + n)),
                              NewItem(f"BTN-{n:04d}", "WT-BTN-2", hexid(0x200000 + n)),
                              NewItem(f"FAL-{n:04d}", "WT-FALL-1", hexid(0x300000 + n))], location)
    return inv.assemble_kit(actor, "safety-alarm", [f"GW-{n:04d}", f"BTN-{n:04d}", f"FAL-{n:04d}"])["code"]


def stock_kit(store, actor, at: float, n: int = 1, location: str = "WH-OSLO") -> str:
    """:func:`kit_for` in one transaction of ``store``."""
    with store.transaction() as tx:
        return kit_for(inventory(tx, FixedClock(at)), actor, n, location)
