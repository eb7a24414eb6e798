"""The checked-in API contract: docs/fleet-openapi.json is the app's /openapi.json.

    python -m fleet.api.openapi --check   # exit 1 and a diff summary if the app's document differs
    python -m fleet.api.openapi --write   # update docs/fleet-openapi.json after an intended change
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "fleet-openapi.json"


def document() -> dict[str, Any]:
    """The app's OpenAPI document (built without a database)."""
    from . import ApiSettings, create_app

    return create_app(ApiSettings(db_url="sqlite://:memory:")).openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for path in sorted(set(old.get("paths", {})) | set(new.get("paths", {}))):
        a, b = old.get("paths", {}).get(path), new.get("paths", {}).get(path)
        if a is None:
            out.append(f"+ {path}")
        elif b is None:
            out.append(f"- {path}")
        elif a != b:
            out.append(f"~ {path} ({', '.join(sorted(m for m in set(a) | set(b) if a.get(m) != b.get(m)))})")
    if old.get("components") != new.get("components"):
        out.append("~ components")
    if old.get("info") != new.get("info"):
        out.append("~ info")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fleet.api.openapi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help=f"write {CONTRACT.name}")
    g.add_argument("--check", action="store_true", help="compare the app with the checked-in contract")
    args = p.parse_args(argv)
    new = document()
    if args.write:
        CONTRACT.write_text(render(new), encoding="utf-8")
        print(f"wrote {CONTRACT} ({len(new['paths'])} paths)")
        return 0
    old = json.loads(CONTRACT.read_text(encoding="utf-8")) if CONTRACT.exists() else {}
    diffs = differences(old, new)
    if diffs or render(old) != render(new):
        print("the API differs from docs/fleet-openapi.json:\n  " + "\n  ".join(diffs or ["(formatting)"]) +
              "\nif the change is intended: python -m fleet.api.openapi --write", file=sys.stderr)
        return 1
    print("API matches docs/fleet-openapi.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
