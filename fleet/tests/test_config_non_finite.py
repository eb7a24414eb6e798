"""The fleet refuses non-finite numbers in templates and pushes (issue 10, F4): ``fleet config
set`` parses its value as JSON the way Python does (``NaN``, ``Infinity``, ``1e999`` become
floats), and a NaN threshold set for a whole municipality would have silenced the bed alarm in
every home. Every numeric key of the gateway schema (discovered from the frozen dataclasses,
contracts/tests/test_non_finite_schema.py) is refused at every scope, nothing is stored, and a
template that already holds one (stored before this check) cannot be pushed."""
from __future__ import annotations

import json

import pytest

from contracts.tests.test_non_finite_schema import DEV, NumericField, document, numeric_fields
from fleet.clock import FixedClock
from fleet.config import ConfigService, ConfigValidationError, MemoryConfigStore, Scope, parse_value

FIELDS = numeric_fields()
TEXTS = ("NaN", "Infinity", "-Infinity", "1e999")
T0 = 1_800_000_000.0


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload))


def service() -> tuple[MemoryConfigStore, ConfigService]:
    store = MemoryConfigStore(membership={"gw-1": ("oslo", "night")}, devices={"gw-1": [DEV]})
    svc = ConfigService(store, FixedClock(T0))
    svc.set_key(Scope.MUNICIPALITY, "oslo", "uplink.host", "arc.oslo", by="t")
    svc.set_key(Scope.DEVICE, DEV, "role", "button", by="t")
    return store, svc


def where(field: NumericField, value: object) -> tuple[Scope, str, str, object]:
    """The template and key ``fleet config set`` would address, and the value under that key."""
    if field.key.startswith("devices."):
        return Scope.DEVICE, DEV, field.name, value
    keys, node = [], document({field.path: value})
    for step in field.path:
        if isinstance(step, int):                  # zones are a list: set the whole list
            break
        keys.append(step)
        node = node[step]
    return Scope.MUNICIPALITY, "oslo", ".".join(keys), node


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.key)
def test_a_non_finite_value_is_refused_for_every_key_and_nothing_is_stored(field, text):
    store, svc = service()
    templates = ((Scope.MUNICIPALITY, "oslo"), (Scope.DEVICE, DEV))
    before = [store.get_template(s, i) for s, i in templates]
    scope, scope_id, key, value = where(field, parse_value(text))
    with pytest.raises(ConfigValidationError) as exc:
        svc.set_key(scope, scope_id, key, value, by="t")
    problems = [p for p in exc.value.problems if p.reason == "not a finite number"]
    assert [p.key for p in problems] == [field.key], [str(p) for p in exc.value.problems]
    assert problems[0].fix.startswith("set a ")
    json.dumps(exc.value.details["problems"], allow_nan=False)      # the CLI's --json stays JSON
    assert [store.get_template(s, i) for s, i in templates] == before
    assert svc.commit("gw-1").version == 1                          # the gateway's config is still valid


def test_the_municipality_case_of_the_finding():
    store, svc = service()
    with pytest.raises(ConfigValidationError) as exc:
        svc.set_key(Scope.MUNICIPALITY, "oslo", "rules.bed.max_out_min", parse_value("NaN"), by="t")
    assert str(exc.value.problems[0]) == (
        'rules.bed.max_out_min = "nan": not a finite number; set a number of minutes such as 30')
    with pytest.raises(ConfigValidationError):
        svc.set_key(Scope.GROUP, "night", "uplink.ack_timeout_s", parse_value("Infinity"), by="t")
    assert store.get_template(Scope.GROUP, "night") is None


def test_a_template_stored_with_nan_before_the_check_cannot_be_pushed():
    store, svc = service()
    body = dict(store.get_template(Scope.MUNICIPALITY, "oslo") or {})
    store.put_template(Scope.MUNICIPALITY, "oslo", {**body, "rules": {"bed": {"max_out_min": float("nan")}}},
                       at=T0, by="legacy")
    pub = Publisher()
    with pytest.raises(ConfigValidationError) as exc:
        svc.push("gw-1", pub)
    assert [p.key for p in exc.value.problems] == ["rules.bed.max_out_min"]
    assert pub.sent == [] and store.latest_version("gw-1") is None
