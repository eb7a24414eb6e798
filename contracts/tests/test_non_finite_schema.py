"""Non-finite numbers are refused everywhere (issue 10, F4).

NaN compares false with everything, so ``max_out_min = nan`` passed both range checks and
silenced the bed alarm. Here: the numeric fields of the WHOLE gateway schema, discovered by
walking the frozen dataclasses (no hand list), each refused as NaN, +inf and -inf with the key,
the value and a fix; and every ``wt.*`` JSON decoder refusing ``NaN`` / ``Infinity`` /
``1e999`` with the field named.

:func:`numeric_fields` and :func:`document` are shared with the gateway's loader/override/push
test (gateway/tests/test_config_non_finite.py) and the fleet's template test
(fleet/tests/test_config_non_finite.py).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import payloads as P
from contracts.gateway_config import _schema as schema_module
from contracts.gateway_config import ConfigError, GatewayConfig, validate
from contracts.payloads import NOT_FINITE, Rejected, load_json

DEV = "a4c1380a1b2c"
NON_FINITE = (math.nan, math.inf, -math.inf)
# what a user may type: TOML spellings, JSON-ish spellings, a float too large for a double
NON_FINITE_TEXT = ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "NaN", "Infinity", "-Infinity", "1e999", "-1e999")

Path = tuple[Any, ...]      # keys (str) and list indexes (int) from the document root


@dataclass(frozen=True)
class NumericField:
    key: str                # as the validator names it: rules.geofence.zones[0].points[0][1]
    path: Path              # where it sits in the nested tables
    kind: type              # int or float
    owner: type             # the dataclass declaring it
    name: str               # the field name (for points: "points")


def _is_number(tp: Any) -> bool:
    return tp in (int, float)


def _required(cls: type) -> dict[str, Any]:
    """The required fields of a table element, from their examples (``role = "button"``)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name != "id":
            out[f.name] = json.loads(f.metadata["example"])
    return out


def _examples(cls: type) -> dict[str, Any]:
    """The numeric fields of a table element at their examples (a zone of radius 300 m)."""
    hints = typing.get_type_hints(cls)
    return {f.name: f.metadata["example"] for f in dataclasses.fields(cls)
            if _is_number(hints[f.name]) and isinstance(f.metadata.get("example"), (int, float))}


def _walk(cls: type, key: str, path: Path, skeleton: dict[str, Any], out: list[NumericField]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, k, p = hints[f.name], f"{key}{f.name}", path + (f.name,)
        if _is_number(tp):
            out.append(NumericField(k, p, tp, cls, f.name))
        elif dataclasses.is_dataclass(tp):
            _walk(tp, k + ".", p, skeleton.setdefault(f.name, {}), out)
        elif typing.get_origin(tp) is tuple:
            elem = typing.get_args(tp)[0]
            if dataclasses.is_dataclass(elem) and cls is GatewayConfig and f.name == "devices":
                table = skeleton.setdefault("devices", {}).setdefault(DEV, _required(elem))   # [devices.<id>]
                _walk(elem, f"devices.{DEV}.", p + (DEV,), table, out)
            elif dataclasses.is_dataclass(elem):                                            # [[...]] tables
                row = {"id": "home", **_required(elem), **_examples(elem)}
                skeleton[f.name] = [row]
                _walk(elem, f"{k}[0].", p + (0,), row, out)
            elif typing.get_origin(elem) is tuple and all(_is_number(a) for a in typing.get_args(elem)):
                rows = json.loads(f.metadata["example"])                                   # [[lat, lon], ...]
                skeleton[f.name] = rows
                for i, a in enumerate(typing.get_args(elem)):
                    out.append(NumericField(f"{k}[0][{i}]", p + (0, i), a, cls, f.name))


def _discover() -> tuple[list[NumericField], dict[str, Any]]:
    out: list[NumericField] = []
    skeleton: dict[str, Any] = {}
    _walk(GatewayConfig, "", (), skeleton, out)
    return out, skeleton


_FIELDS, _SKELETON = _discover()


def numeric_fields() -> list[NumericField]:
    """Every int/float in the gateway schema (inside device tables, zone tables and point lists too)."""
    return list(_FIELDS)


def document(values: dict[Path, Any] | None = None) -> dict[str, Any]:
    """A valid config document (one device, one zone with three points) with ``values`` set at their paths."""
    doc = copy.deepcopy(_SKELETON)
    for path, value in (values or {}).items():
        node: Any = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return doc


def issues_for(data: dict[str, Any]) -> list[Any]:
    try:
        validate(data)
    except ConfigError as exc:
        return exc.issues
    return []


# --------------------------------------------------------------------------- discovery
def test_discovery_finds_every_numeric_field_of_every_schema_dataclass():
    """Cross-check the walk against the module: each int/float field of each schema dataclass is
    reached, and the known dangerous ones are there."""
    declared = set()
    for obj in vars(schema_module).values():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            hints = typing.get_type_hints(obj)
            declared |= {(obj, f.name) for f in dataclasses.fields(obj)
                         if _is_number(hints[f.name]) or hints[f.name] == tuple[tuple[float, float], ...]}
    found = {(f.owner, f.name) for f in numeric_fields()}
    assert found == declared
    keys = {f.key for f in numeric_fields()}
    assert {"rules.bed.max_out_min", "uplink.ack_timeout_s", "rules.dose.delay_min", "rules.door.repeat_after_min",
            f"devices.{DEV}.silent_after_s", "rules.geofence.zones[0].radius_m",
            "rules.geofence.zones[0].points[0][1]", "supervision.tick_s"} <= keys
    assert issues_for(document()) == []            # the skeleton itself is valid


# --------------------------------------------------------------------------- the schema
@pytest.mark.security
@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", numeric_fields(), ids=lambda f: f.key)
def test_F4_every_numeric_field_refuses_non_finite_naming_key_value_and_fix(field, value):
    issues = issues_for(document({field.path: value}))
    mine = [i for i in issues if i.key == field.key]
    assert len(mine) == 1, issues
    issue = mine[0]
    assert issue.problem == "not a finite number" and issue.fix.startswith("set a ")
    assert str(issue).startswith(f"{field.key} = {value}: not a finite number; set a ")


def test_message_names_the_key_the_value_and_the_fix():
    [issue] = issues_for({"rules": {"bed": {"max_out_min": math.nan}}})
    assert str(issue) == "rules.bed.max_out_min = nan: not a finite number; set a number of minutes such as 30"
    [issue] = issues_for({"uplink": {"port": -math.inf}})
    assert str(issue) == "uplink.port = -inf: not a finite number; set a whole number such as 8883"
    [issue] = issues_for({"rules": {"battery": {"low_pct": "NaN"}}})       # an override string
    assert str(issue) == 'rules.battery.low_pct = "NaN": not a finite number; set a whole number of percent such as 20'


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(numeric_fields()), min_size=1, max_size=8, unique_by=lambda f: f.key),
       st.data())
def test_any_set_of_non_finite_fields_is_refused_each_by_name(chosen, data):
    """Several at once, as floats or as the strings an override may carry: every one is named
    (all problems at once, ESPHome style), and validation never raises anything but ConfigError."""
    values = {f.path: data.draw(st.sampled_from(NON_FINITE) | st.sampled_from(NON_FINITE_TEXT)) for f in chosen}
    issues = issues_for(document(values))
    named = {i.key for i in issues if i.problem == "not a finite number"}
    assert named == {f.key for f in chosen}


# --------------------------------------------------------------------------- wt.* JSON
VALID = {
    "wt.ack/1": (lambda b: P.decode_ack(b, 1.0), P.encode_ack(event_id="e-1", status="accepted", by="op", at=1.0)),
    "wt.alarm/1": (lambda b: P.decode_alarm("gw-1", b, 1.0), json.dumps(
        {"schema": "wt.alarm/1", "event_id": "e-1", "type": "button_press", "class": "care", "data": {"v": 1.5}}
    ).encode()),
    "published": (P.decode_published, json.dumps(
        {"schema": "wt.alarm/1", "event_id": "e-1", "attempt": 1, "route": "primary", "data": {"v": 1.5}}).encode()),
    "wt.state/1": (lambda b: P.decode_state("gw-1", b, 1.0), P.encode_state(gateway_id="gw-1", online=True, version="1", since=1.0)),
    "wt.health/1": (lambda b: P.decode_health("gw-1", b, 1.0), json.dumps(
        {"schema": "wt.health/1", "at": "2026-11-23T06:00:00.000Z", "uplink": {"backlog": 1}}).encode()),
    "wt.config/1": (P.decode_config, P.encode_config(version=3, config={"rules": {"bed": {"max_out_min": 20}}},
                                                      hash=None)),
    "wt.config-applied/1": (P.decode_applied, P.encode_applied(version=3, status="applied", error=None)),
    "wt.cmd/1": (P.decode_cmd, P.encode_cmd("c-1", "ping", {"n": 1})),
    "wt.cmd-result/1": (P.decode_cmd_result, P.encode_cmd_result("c-1", "ok", {"n": 1})),
    "update-result": (P.decode_update_result, P.encode_cmd_result("c-1", "ok", {"deployment": "d", "n": 1})),
}


def _inject(doc: Any, token: str) -> tuple[str, str]:
    """Add ``x`` = token at the deepest object of ``doc`` (as raw JSON text); return (text, path)."""
    path, node = "", doc
    while True:
        inner = next(((k, v) for k, v in node.items() if isinstance(v, dict)), None)
        if inner is None:
            break
        path, node = f"{path}.{inner[0]}" if path else inner[0], inner[1]
    node["x"] = "@@"
    return json.dumps(doc).replace('"@@"', token), f"{path}.x" if path else "x"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
@pytest.mark.parametrize("name", sorted(VALID))
def test_every_wt_decoder_refuses_non_finite_numbers_naming_the_field(name, token):
    decode, good = VALID[name]
    assert not isinstance(decode(good), Rejected), decode(good)
    text, path = _inject(json.loads(good), token)
    out = decode(text.encode())
    assert isinstance(out, Rejected) and out.field == path and NOT_FINITE in out.reason, out
    assert out.reason.startswith(f"{path} = {token}: ")


def test_load_json_names_a_path_through_lists_and_keeps_finite_numbers():
    out = load_json(b'{"rules": {"geofence": {"zones": [{"points": [[59.9, NaN]]}]}}}')
    assert isinstance(out, Rejected) and out.field == "rules.geofence.zones[0].points[0][1]"
    assert isinstance(load_json(b"NaN"), Rejected) and load_json(b"NaN").field == "<root>"
    assert load_json(b'{"a": [1, 2.5, -0.0, 1e308, 12345678901234567890]}') == {
        "a": [1, 2.5, -0.0, 1e308, 12345678901234567890]}


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=10))
def test_load_json_accepts_exactly_the_finite_documents(value):
    """Whatever Python's json writes (NaN/Infinity included): accepted iff every number is finite."""
    def finite(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list):
            return all(finite(x) for x in v)
        if isinstance(v, dict):
            return all(finite(x) for x in v.values())
        return True
    out = load_json(json.dumps(value).encode())
    assert isinstance(out, Rejected) is (not finite(value))
    if not isinstance(out, Rejected):
        assert out == json.loads(json.dumps(value))
