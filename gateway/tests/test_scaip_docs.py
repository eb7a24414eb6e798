"""docs/scaip.md shows what the code does: the mapping, the role table, the reply state
machine, the SIP transaction table and the hbi table, verbatim; and it names every SIPp
scenario checked in."""
from __future__ import annotations

from pathlib import Path

from gateway.adapters.sip._transaction import transition_table_markdown as transaction_table_markdown
from gateway.domain.scaip import (
    DEFAULT_HBI_INTERVALS_S,
    mapping_table_markdown,
    role_table_markdown,
    transition_table_markdown,
)
from gateway.tests.sipp import SCENARIOS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "scaip.md").read_text(encoding="utf-8")


def test_mapping_table_matches_code():
    assert mapping_table_markdown() in DOC


def test_role_table_matches_code():
    assert role_table_markdown() in DOC


def test_reply_state_machine_matches_code():
    assert transition_table_markdown() in DOC


def test_sip_transaction_table_matches_code():
    assert transaction_table_markdown() in DOC


def test_hbi_table_matches_code():
    rows = "\n".join(f"| {k} | {v:g} s |" for k, v in DEFAULT_HBI_INTERVALS_S.items())
    assert "| hbi | interval |\n| --- | --- |\n" + rows in DOC


def test_every_sipp_scenario_is_documented():
    scenarios = sorted(p.name for p in SCENARIOS.glob("*.xml"))
    assert scenarios
    for name in scenarios:
        assert f"| `{name}` |" in DOC, name
