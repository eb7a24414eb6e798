"""The installation checklist from the national programme's material (seeds), per device.

Every installed device answers these questions; an installation cannot be completed
while any answer is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ._privacy import check_no_personal_data


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    kind: str          # 'text', 'bool', 'int', 'times', 'settings'


QUESTIONS: tuple[Question, ...] = (
    Question("alarm_recipient", "Who receives the alarm (response centre, staff group, relatives)?", "text"),
    Question("responder", "Who goes out on the alarm?", "text"),
    Question("technical_settings", "Technical settings (time windows, delays), e.g. {\"window\": \"20:30-06:00\", \"delay_min\": 30}", "settings"),
    Question("relatives_agreement", "Agreement with relatives (what they do, when)", "text"),
    Question("charging_routine", "Charging routine (who charges, how often)", "text"),
    Question("supervision_checks_count", "Number of supervision checks (per night / day)", "int"),
    Question("supervision_check_times", "Times of supervision checks, e.g. [\"23:00\", \"03:00\"]", "times"),
    Question("care_plan_updated", "Care plan updated with the measure?", "bool"),
)
KEYS = tuple(q.key for q in QUESTIONS)


def parse_answer(key: str, raw: Any) -> Any:
    q = next((q for q in QUESTIONS if q.key == key), None)
    if q is None:
        raise ValidationError(f"unknown checklist question {key!r}; questions: {', '.join(KEYS)}", field=key)
    if q.kind == "bool":
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in ("yes", "ja", "true", "1", "y"):
            return True
        if s in ("no", "nei", "false", "0", "n"):
            return False
        raise ValidationError(f"{key}: answer yes or no, not {raw!r}", field=key)
    if q.kind == "int":
        try:
            n = int(raw)
        except (TypeError, ValueError):
            raise ValidationError(f"{key}: give a whole number, not {raw!r}", field=key) from None
        if n < 0:
            raise ValidationError(f"{key}: {n} is negative", field=key)
        return n
    if q.kind == "times":
        items = raw if isinstance(raw, list) else [t.strip() for t in str(raw).split(",") if t.strip()]
        for t in items:
            hh, _, mm = str(t).partition(":")
            if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60 and len(mm) == 2):
                raise ValidationError(f"{key}: {t!r} is not a time; use HH:MM, e.g. 23:00,03:00", field=key)
        return list(items)
    if q.kind == "settings":
        if isinstance(raw, dict):
            return raw
        import json

        try:
            v = json.loads(raw)
        except (TypeError, ValueError):
            return str(raw)
        return v
    s = str(raw).strip()
    if not s:
        raise ValidationError(f"{key}: the answer is empty", field=key)
    return s


def validate_answers(device: str, answers: dict[str, Any]) -> dict[str, Any]:
    out = {k: parse_answer(k, v) for k, v in answers.items()}
    check_no_personal_data(out, f"checklist[{device}]")
    return out


def missing_answers(checklist: dict[str, dict[str, Any]], devices: list[str]) -> dict[str, list[str]]:
    """device -> keys still unanswered."""
    out = {}
    for d in devices:
        have = checklist.get(d, {})
        miss = [k for k in KEYS if k not in have]
        if miss:
            out[d] = miss
    return out
