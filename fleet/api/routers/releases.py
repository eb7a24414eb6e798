"""Signed releases and the trusted release keys. Signing happens offline (``fleet release sign``):
the private key never reaches the server."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import Field, StringConstraints

from ...access import Permission
from ...errors import ValidationError
from ...upgrades import SignedManifest, key_id
from .._body import Body, require_row
from .._problems import api_router
from .._context import FLEETWIDE, Ctx, need
from .._pagination import Page, PageParams

router = api_router("releases and rollouts")


@router.get("/release-keys", response_model=Page, summary="Trusted release signing keys (public PEM included)",
            openapi_extra=FLEETWIDE)
def list_keys(ctx: Ctx = need(Permission.UPGRADE_READ), page: PageParams = Depends()) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    with ctx.tx(write=False) as s:
        rows = s.releases.keys()
        pems = {key_id(k): k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode() for k in s.releases.trusted_keys()}
    # public keys are not secret: a client verifies an artifact offline against them (`fleet release verify`)
    return page.page([{**r, "public_pem": pems.get(r["key_id"])} for r in rows])


class NewKey(Body):
    public_pem: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="ed25519 public key (PEM) from `fleet release keygen`")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]


@router.post("/release-keys", status_code=201, summary="Trust a public key for new releases", openapi_extra=FLEETWIDE)
def add_key(body: NewKey, ctx: Ctx = need(Permission.UPGRADE_WRITE)) -> dict[str, Any]:
    require_row(ctx.actor, Permission.UPGRADE_WRITE, None, fleet_wide_only=True)
    with ctx.tx() as s:
        kid = s.releases.add_key(body.public_pem.encode(), body.name, at=ctx.now(), by=ctx.actor.name)
        s.audit("release.key_add", "release_key", kid, detail={"name": body.name})
    return {"key_id": kid, "name": body.name}


@router.get("/releases", response_model=Page, summary="Stored releases", openapi_extra=FLEETWIDE)
def list_releases(ctx: Ctx = need(Permission.UPGRADE_READ), page: PageParams = Depends(),
                  target: str | None = Query(None, max_length=32)) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        return page.page(s.releases.releases(target))


@router.get("/releases/{release_id}", summary="One release and its signed manifest", openapi_extra=FLEETWIDE)
def get_release(release_id: Annotated[str, Path(max_length=64)], ctx: Ctx = need(Permission.UPGRADE_READ)
                ) -> dict[str, Any]:
    with ctx.tx(write=False) as s:
        r = s.releases.get(release_id)
    return {**r, "signed": json.loads(r["signed"])}


class NewRelease(Body):
    signed: dict[str, Any] = Field(description="the signed manifest (the .sig file of `fleet release sign`)")
    artifact_base64: Annotated[str, StringConstraints(min_length=1)] = Field(description="the artifact, base64")


@router.post("/releases", status_code=201, summary="Verify and store a signed release (nothing stored if it fails)",
             openapi_extra=FLEETWIDE)
def add_release(body: NewRelease, ctx: Ctx = need(Permission.UPGRADE_WRITE)) -> dict[str, Any]:
    require_row(ctx.actor, Permission.UPGRADE_WRITE, None, fleet_wide_only=True)
    try:
        artifact = base64.b64decode(body.artifact_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("artifact_base64 is not base64; encode the artifact file with base64",
                              field="artifact_base64") from None
    signed = SignedManifest.from_obj(body.signed)
    with ctx.tx() as s:
        rid = s.releases.add(artifact, signed, at=ctx.now(), by=ctx.actor.name)
        s.audit("release.add", "release", rid, detail={"sha256": signed.manifest.sha256})
    return {"release_id": rid}
