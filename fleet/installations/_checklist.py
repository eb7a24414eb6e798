"""The installation checklist from the national programme's material (seeds), per device.

Every installed device answers these questions; an installation cannot be completed
while any answer is missing. A question with ``roles`` is asked of those devices only
(where a fall sensor is worn: its detector depends on it); it may be recorded for any
device. Answers that set a device's firmware setting (``DEVICE_SETTINGS``) reach its
configuration through :func:`device_settings` (fleet.config: the ``[devices.<id>]`` table
of its gateway's configuration).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import ValidationError
from ._privacy import check_no_personal_data


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    kind: str          # 'text', 'bool', 'int', 'times', 'settings', 'choice'
    roles: tuple[str, ...] = ()                      # required of these device roles only; () = every device
    choices: tuple[str, ...] = ()                    # 'choice': the answers
    aliases: tuple[tuple[str, str], ...] = ()        # 'choice': other words (Norwegian) -> an answer


# where a fall sensor is worn -> its detector (firmware/lib/fall_schema.py "placement";
# docs/fall-detection.md): pendant = chest, pocket = waist
PLACEMENTS = ("pendant", "wrist", "waist", "pocket")


QUESTIONS: tuple[Question, ...] = (
    Question("alarm_recipient", "Who receives the alarm (response centre, staff group, relatives)?", "text"),
    Question("responder", "Who goes out on the alarm?", "text"),
    Question("technical_settings", "Technical settings (time windows, delays), e.g. {\"window\": \"20:30-06:00\", \"delay_min\": 30}", "settings"),
    Question("relatives_agreement", "Agreement with relatives (what they do, when)", "text"),
    Question("charging_routine", "Charging routine (who charges, how often)", "text"),
    Question("supervision_checks_count", "Number of supervision checks (per night / day)", "int"),
    Question("supervision_check_times", "Times of supervision checks, e.g. [\"23:00\", \"03:00\"]", "times"),
    Question("care_plan_updated", "Care plan updated with the measure?", "bool"),
    Question("placement", "Where is the fall sensor worn: pendant (on a cord round the neck), wrist (wristband), "
             "waist (belt) or pocket (trouser pocket)?", "choice", roles=("fall",), choices=PLACEMENTS,
             aliases=(("anheng", "pendant"), ("halssmykke", "pendant"), ("chest", "pendant"), ("bryst", "pendant"),
                      ("håndledd", "wrist"), ("armbånd", "wrist"), ("wristband", "wrist"), ("belte", "waist"),
                      ("belt", "waist"), ("midje", "waist"), ("lomme", "pocket"), ("bukselomme", "pocket"))),
)
KEYS = tuple(q.key for q in QUESTIONS)
# answers that are device settings: question key -> (device roles, setting key in [devices.<id>])
DEVICE_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {"placement": (("fall",), "placement")}


def questions_for(role: str | None) -> tuple[Question, ...]:
    """The questions a device of ``role`` must answer (None: role unknown, the general ones)."""
    return tuple(q for q in QUESTIONS if not q.roles or (role is not None and role in q.roles))


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
    if q.kind == "choice":
        s = str(raw).strip().lower()
        s = dict(q.aliases).get(s, s)
        if s not in q.choices:
            raise ValidationError(f"{key}: answer one of {', '.join(q.choices)}, not {raw!r}", field=key)
        return s
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


def missing_answers(checklist: dict[str, dict[str, Any]],
                    devices: Iterable[str] | Mapping[str, str]) -> dict[str, list[str]]:
    """device -> keys still unanswered. ``devices``: serial -> role (a role's own questions
    count, e.g. where a fall sensor is worn), or serials only (the general questions)."""
    roles = devices if isinstance(devices, Mapping) else dict.fromkeys(devices)
    out = {}
    for d, role in roles.items():
        have = checklist.get(d, {})
        miss = [q.key for q in questions_for(role) if q.key not in have]
        if miss:
            out[d] = miss
    return out


def device_settings(answers: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The firmware settings a device of ``role`` takes from its checklist answers
    (``{"placement": "wrist"}`` for a fall sensor worn on the wrist)."""
    return {setting: answers[key] for key, (roles, setting) in DEVICE_SETTINGS.items()
            if role in roles and answers.get(key) is not None}
