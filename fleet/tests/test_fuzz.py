"""Input handlers never raise on garbage except with a clear ValidationError."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import ValidationError
from fleet.installations import check_no_personal_data, decode_alarm, validate_resident_ref
from fleet.inventory import clean_scan, parse_delivery_note

MODELS = {"WT-BTN-2": "button", "WT-GW-1": "gateway"}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_clean_scan_never_raises(line):
    scan = clean_scan(line, prefixes=("WT",), suffixes=("#",), gs1=True)
    assert scan.ok == (scan.serial is not None)
    if scan.ok:
        assert scan.serial.strip() == scan.serial and 3 <= len(scan.serial) <= 64


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_decode_alarm_never_raises(payload):
    decode_alarm("gw-1", payload, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["SN-1", "WT-BTN-2", "a4c1380a1b2c", "", "x y", "WT-GW-1", "gw-ab",
                                          "01019012345", ";", "\"", "ÆØÅ"]), max_size=4), max_size=6))
def test_delivery_note_parser_only_raises_validation_errors(rows):
    text = "serial,model,hw_id\n" + "\n".join(",".join(r) for r in rows)
    try:
        items = parse_delivery_note(text, MODELS)
    except ValidationError as exc:
        assert exc.message.startswith("line ") or "delivery note" in exc.message
    else:
        assert len({i.serial for i in items}) == len(items)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.text(max_size=30) | st.integers() | st.booleans() | st.none(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
                    max_leaves=10))
def test_personal_data_check_only_raises_validation_errors(doc):
    try:
        check_no_personal_data(doc, "x")
    except ValidationError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_resident_ref_validation_only_raises_validation_errors(value):
    try:
        assert validate_resident_ref(value)
    except ValidationError:
        pass
