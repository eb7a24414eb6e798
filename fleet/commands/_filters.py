"""List filters that name something must name something that exists.

``fleet stock levels --location WH-OSLO`` (the warehouse is ``WH-OSL``) used to print an
empty table and exit 0, which reads as "nothing in stock". A filter value that matches no
known location, model, state or municipality is invalid input instead: exit 2, with the
closest names ("did you mean") and the command that lists them all. A value that differs
only in letter case is taken as the known spelling.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from ..errors import ValidationError


def check_choice(value: str, known: Iterable[str], option: str, what: str, *, listing: str | None = None) -> str:
    """``value`` as spelled in ``known`` (case-insensitive), else ValidationError with suggestions."""
    names = sorted({k for k in known if k})
    if value in names:
        return value
    folded = {k.casefold(): k for k in names}
    if value.casefold() in folded:
        return folded[value.casefold()]
    close = difflib.get_close_matches(value.casefold(), list(folded), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(folded[c] for c in close)}?" if close else \
        (f"known: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}" if names else f"there is no {what} yet")
    tail = f" (all of them: `{listing}`)" if listing else ""
    raise ValidationError(f"{option} {value}: no such {what}; {hint}{tail}", field=option.lstrip("-"), value=value,
                          suggestions=[folded[c] for c in close])


def check_filters(c: Any, *, location: str | None = None, model: str | None = None,
                  state: str | None = None, municipality: str | None = None) -> dict[str, str | None]:
    """Validate the inventory filters of a list command against the service (``c``: a
    :class:`fleet.client.FleetClient`); returns them as the service spells them."""
    out: dict[str, str | None] = {"location": location, "model": model, "state": state,
                                  "municipality": municipality}
    if location:
        out["location"] = check_choice(location, (r["code"] for r in c.catalog.locations()), "--location",
                                       "location you can see", listing="fleet location list")
    if model:
        out["model"] = check_choice(model, (r["code"] for r in c.catalog.models()), "--model", "device model",
                                    listing="fleet model list")
    if state:
        from ..inventory import ItemState

        out["state"] = check_choice(state, (st.value for st in ItemState), "--state", "item state",
                                    listing="fleet item states")
    if municipality:
        out["municipality"] = check_municipality(c, municipality)
    return out


def check_municipality(c: Any, municipality: str) -> str:
    """The kommunenummer of ``-m`` (number or name). One that exists but lies outside the user's
    scope is access denied (exit 5) with the way out, said here: the server answers such a filter
    like a missing row (404), so as not to reveal another municipality's data."""
    rows = c.catalog.municipalities()
    by_name = {str(r["name"]).casefold(): str(r["id"]) for r in rows}
    if municipality.casefold() in by_name:          # `-m Oslo` means 0301
        found = by_name[municipality.casefold()]
    else:
        found = check_choice(municipality, [str(r["id"]) for r in rows] + [str(r["name"]) for r in rows],
                             "--municipality", "municipality (kommunenummer)", listing="fleet location municipalities")
        found = by_name.get(found.casefold(), found)
    me = c.me()
    if me["municipalities"] is not None and found not in me["municipalities"]:
        from ..errors import AccessDenied

        raise AccessDenied(f"{me['user']} is not scoped to municipality {found}; ask an admin to add it "
                           f"(fleet user scope {me['user']} --add {found})", municipality=found)
    return found
