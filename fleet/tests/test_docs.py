"""docs/fleet.md describes what exists: the transition table, the roles and the checklist."""
from __future__ import annotations

from pathlib import Path

from fleet.access import ROLE_PERMISSIONS, Permission, Role
from fleet.installations import QUESTIONS
from fleet.inventory import transition_table_markdown

DOC = (Path(__file__).resolve().parents[2] / "docs" / "fleet.md").read_text(encoding="utf-8")


def test_state_table_matches_code():
    assert transition_table_markdown() in DOC


def test_role_table_matches_code():
    for p in Permission:
        row = f"| `{p.value}` | " + " | ".join("✔" if p in ROLE_PERMISSIONS[r] else "" for r in Role) + " |"
        assert row in DOC, row


def test_checklist_questions_documented():
    for q in QUESTIONS:
        assert f"| `{q.key}` | {q.text} |" in DOC
