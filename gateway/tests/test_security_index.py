"""The security regression suite cannot rot: every finding of the control-plane review
(issue 10: F1-F8, F10-F14, F18, F19) has at least one test named ``test_F<n>_…`` that is
marked ``security``, and docs/security.md's index table lists the same findings.

Found by reading the test files (ast), not by importing them: a test module that fails to
import would otherwise hide its findings from this check.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = ("F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F10", "F11", "F12", "F13", "F14", "F18", "F19")
TEST_DIRS = ("gateway/tests", "fleet/tests", "firmware/tests", "contracts/tests", "hil_tests")


def _is_security_mark(node: ast.expr) -> bool:
    # pytest.mark.security, or a list/tuple holding it
    if isinstance(node, (ast.List, ast.Tuple)):
        return any(_is_security_mark(e) for e in node.elts)
    return isinstance(node, ast.Attribute) and node.attr == "security" and ast.unparse(node).endswith("mark.security")


def security_tests() -> dict[str, list[str]]:
    """finding -> ["path::test_name", ...] for every security-marked test named after it."""
    found: dict[str, list[str]] = {}
    for d in TEST_DIRS:
        for path in sorted((ROOT / d).rglob("test_*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            module_marked = any(
                isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                and _is_security_mark(n.value) for n in tree.body)
            for n in tree.body:
                if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                m = re.match(r"test_(F\d+)_", n.name)
                if not m:
                    continue
                marked = module_marked or any(_is_security_mark(dec) for dec in n.decorator_list)
                if marked:
                    found.setdefault(m.group(1), []).append(f"{path.relative_to(ROOT)}::{n.name}")
    return found


def test_every_finding_has_a_security_marked_test_named_after_it():
    found = security_tests()
    missing = [f for f in FINDINGS if not found.get(f)]
    assert missing == [], f"findings without a test_F<n>_… marked security: {missing}"


def test_the_check_sees_an_unmarked_test_as_missing(tmp_path):
    # the scanner itself: a test_F<n> without the mark does not count
    src = "import pytest\n\ndef test_F99_unmarked():\n    pass\n\n@pytest.mark.security\ndef test_F98_marked():\n    pass\n"
    tree = ast.parse(src)
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
             and any(_is_security_mark(d) for d in n.decorator_list)]
    assert names == ["test_F98_marked"]


def test_docs_security_index_lists_every_finding_with_its_tests():
    text = (ROOT / "docs/security.md").read_text()
    section = text.split("## Finding → test index", 1)
    assert len(section) == 2, "docs/security.md needs the '## Finding → test index' table"
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (F\d+) \|(.*)$", section[1], re.M)}
    assert sorted(rows, key=lambda f: int(f[1:])) == list(FINDINGS)
    found = security_tests()
    for f, row in rows.items():
        assert any(t.split("::")[1] in row for t in found[f]), f"{f}: the table names none of {found[f]}"
