"""Alarm routing chain per resident: response centre, staff group, relatives, escalation."""
from __future__ import annotations

import re
from typing import Any

from ..errors import ValidationError
from ._privacy import check_no_personal_data

_PHONE = re.compile(r"^\+?[0-9 ]{8,15}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def validate_routing(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"response_centre": "arc-oslo", "staff_group": "home-care-zone-3",
    "relatives": [{"relation": "daughter", "phone": "+47 912 34 567"}], "escalation_s": [120, 300]}``.

    The chain is response centre -> staff group -> relatives; ``escalation_s[i]`` is how long
    an unacknowledged alarm waits before going to the next step.
    """
    if not isinstance(doc, dict):
        raise ValidationError("routing must be a JSON object", field="routing")
    check_no_personal_data(doc, "routing")
    allowed = {"response_centre", "staff_group", "relatives", "escalation_s"}
    extra = set(doc) - allowed
    if extra:
        raise ValidationError(f"routing: unknown key(s) {', '.join(sorted(extra))}; use {', '.join(sorted(allowed))}",
                              field="routing")
    for k in ("response_centre", "staff_group"):
        if not isinstance(doc.get(k), str) or not _ID.match(doc[k]):
            raise ValidationError(f"routing.{k}: give the id of the {k.replace('_', ' ')}, e.g. arc-oslo "
                                  "(lower-case letters, digits, '-', '.')", field=f"routing.{k}")
    rel = doc.get("relatives", [])
    if not isinstance(rel, list):
        raise ValidationError("routing.relatives must be a list", field="routing.relatives")
    for i, r in enumerate(rel):
        if not isinstance(r, dict) or not isinstance(r.get("relation"), str):
            raise ValidationError(f"routing.relatives[{i}] needs a relation, e.g. {{\"relation\": \"daughter\", "
                                  "\"phone\": \"+47 91234567\"}", field=f"routing.relatives[{i}]")
        if "phone" in r and not _PHONE.match(str(r["phone"])):
            raise ValidationError(f"routing.relatives[{i}].phone {r['phone']!r} is not a phone number",
                                  field=f"routing.relatives[{i}].phone")
    esc = doc.get("escalation_s", [])
    steps = 1 + len(rel)   # staff group, then each relative
    if not isinstance(esc, list) or not all(isinstance(x, (int, float)) and x > 0 for x in esc):
        raise ValidationError("routing.escalation_s must be a list of positive seconds, e.g. [120, 300]",
                              field="routing.escalation_s")
    if len(esc) != steps:
        raise ValidationError(f"routing.escalation_s needs {steps} value(s): one per escalation step "
                              "(response centre -> staff group, then -> each relative)", field="routing.escalation_s")
    return doc
