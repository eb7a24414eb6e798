"""Data minimisation: residents are pseudonyms; names and national ids are refused.

Pure functions. A Norwegian national id (fødselsnummer / D-number) is 11 digits; any
run of 11 digits (spaces, dots or dashes allowed between groups, e.g. ``010190 12345``)
is refused whether or not its mod-11 check digits are valid — a near-miss typo is still
personal data.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import ValidationError

RESIDENT_REF = re.compile(r"^[A-Za-z]{1,8}-[A-Za-z0-9]{3,24}$")
_ELEVEN = re.compile(r"(?<!\d)\d(?:[ .-]?\d){10}(?!\d)")
# keys that would hold a person's identity
NAME_KEYS = {"name", "navn", "first_name", "last_name", "firstname", "lastname", "fornavn", "etternavn",
             "full_name", "fullname", "surname", "resident_name", "fnr", "fodselsnummer", "fødselsnummer",
             "personnummer", "national_id", "ssn", "birth_date", "date_of_birth", "fodselsdato", "address",
             "adresse", "email", "e_post"}
# "Kari Nordmann", "Ola J. Hansen": two or more capitalised words
_PERSON_NAME = re.compile(r"^[A-ZÆØÅ][a-zæøåéü]+(?:[ -][A-ZÆØÅ]\.?)?(?:\s+[A-ZÆØÅ][a-zæøåéü]+)+$")


def fnr_checksum_ok(digits: str) -> bool:
    """Mod-11 check digits of a fødselsnummer (for messages only; both cases are refused)."""
    d = [int(c) for c in digits]
    w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
    w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    k1 = 11 - sum(a * b for a, b in zip(w1, d[:9])) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(a * b for a, b in zip(w2, d[:10])) % 11
    k2 = 0 if k2 == 11 else k2
    return k1 == d[9] and k2 == d[10]


def contains_national_id(text: str) -> bool:
    return bool(_ELEVEN.search(text))


def looks_like_person_name(text: str) -> bool:
    return bool(_PERSON_NAME.match(text.strip()))


def validate_resident_ref(value: str) -> str:
    v = (value or "").strip()
    if contains_national_id(v):
        raise ValidationError(
            "the resident id looks like a national identity number (11 digits); never store it here — "
            "use the pseudonymous resident reference from the care record, e.g. R-7F3K9Q",
            field="resident_ref")
    if looks_like_person_name(v) or " " in v:
        raise ValidationError(
            "the resident id looks like a person's name; use the pseudonymous reference, e.g. R-7F3K9Q",
            field="resident_ref")
    if not RESIDENT_REF.match(v):
        raise ValidationError(
            f"resident id {value!r} is not a pseudonymous reference; use letters, a dash and 3-24 letters/digits, "
            "e.g. R-7F3K9Q", field="resident_ref")
    return v


def check_no_personal_data(doc: Any, where: str) -> None:
    """Refuse name/national-id keys and national-id-like or name-like values anywhere in ``doc``."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                key = str(k).strip().lower().replace("-", "_").replace(" ", "_")
                if key in NAME_KEYS:
                    raise ValidationError(
                        f"{path}.{k}: a {k!r} field is personal data and is not stored here; refer to people by "
                        "role (e.g. 'daughter', 'home care zone 3') or by a pseudonymous reference", field=f"{path}.{k}")
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str):
            if contains_national_id(node):
                raise ValidationError(f"{path}: the text contains an 11-digit number that looks like a national "
                                      "identity number; remove it", field=path)
            if looks_like_person_name(node):
                raise ValidationError(f"{path}: {node!r} looks like a person's name; describe the role instead "
                                      "(e.g. 'daughter', 'night staff')", field=path)

    walk(doc, where)
