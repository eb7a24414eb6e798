"""Request bodies: strict (unknown fields are refused with "did you mean"), bounded strings."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, StringConstraints

from ..access import Actor, Permission
from ..errors import AccessDenied

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=500)]
Municipality = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]

MUNICIPALITY_QUERY = Query(None, pattern=r"^[0-9]{4}$", description="kommunenummer, e.g. 0301")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def narrowed(actor: Actor, permission: Permission, municipality: str | None) -> Actor:
    """The actor limited to ``?municipality=`` (refused if it is outside the actor's scope)."""
    if municipality is None:
        return actor
    if not actor.can(permission, municipality):
        raise AccessDenied(f"{actor.name} is not scoped to municipality {municipality}",
                           municipality=municipality, permission=permission.value)
    return Actor(actor.name, actor.role, frozenset({municipality}), actor.permissions)


def visible(actor: Actor, permission: Permission, municipality: str | None, *, unowned: bool = True) -> bool:
    """A row of ``municipality`` may be shown to ``actor``; a row tied to no municipality is shown
    to everyone if ``unowned``, else only to an actor of all municipalities."""
    if municipality is None:
        return actor.can(permission) and (unowned or actor.municipalities is None)
    return actor.can(permission, municipality)


def require_row(actor: Actor, permission: Permission, municipality: str | None, *, fleet_wide_only: bool = False) -> None:
    """Check a row before acting on it; a row not tied to a municipality needs an unscoped actor if
    ``fleet_wide_only``."""
    if municipality is None and fleet_wide_only and actor.municipalities is not None:
        raise AccessDenied(f"{actor.name} is scoped to municipalities; this needs a user for all municipalities",
                           municipality="*", permission=permission.value)
    actor.require(permission, municipality)


Json = dict[str, Any]
