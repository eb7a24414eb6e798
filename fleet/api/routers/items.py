"""Serial-numbered items: list, look up (device show), receive, delivery notes, move, state changes."""
from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Annotated, Any, AsyncIterator, Literal

import anyio
from fastapi import Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field, StringConstraints

from ...access import Permission
from ...clock import FixedClock
from ...errors import FleetError
from ...inventory import TRANSITIONS, ItemState, NewItem, receive_delivery_note
from ...store import sql_transactions
from .._body import MUNICIPALITY_QUERY, Body, Code, narrowed
from .._problems import api_router, fleet_error_response
from .._context import FLEETWIDE, MUNICIPALITY, Ctx, _counted, _Inventory, need
from .._pagination import Page, PageParams

router = api_router("stock and items")
log = logging.getLogger("fleet.api")
NDJSON = "application/x-ndjson"
ItemKey = Annotated[str, Path(min_length=1, max_length=64, description="serial number or device id")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200)]


@router.get("/items", response_model=Page, summary="Items (filters combine)", openapi_extra=MUNICIPALITY)
def list_items(ctx: Ctx = need(Permission.STOCK_READ), page: PageParams = Depends(),
               location: str | None = Query(None, max_length=64), model: str | None = Query(None, max_length=64),
               state: ItemState | None = Query(None), municipality: str | None = MUNICIPALITY_QUERY) -> dict[str, Any]:
    actor = narrowed(ctx.actor, Permission.STOCK_READ, municipality)
    with ctx.tx(write=False) as s:
        return page.page_of(lambda n: s.inventory.list_items(actor, location=location, model=model,
                                                             state=state.value if state else None, limit=n))


@router.get("/items/{key}", summary="One item: model, state, place, kit, installation, gateway status, history",
            openapi_extra=MUNICIPALITY)
def get_item(key: ItemKey, ctx: Ctx = need(Permission.STOCK_READ)) -> dict[str, Any]:
    with ctx.read() as s:            # two SELECTs, no audit (an item is not personal data)
        return s.inventory.device_show(ctx.actor, key)


class NewItemBody(Body):
    serial: Code = Field(examples=["SN-OSL-BTN-00042"])
    model: Code = Field(examples=["WT-BTN-2"])
    hw_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(None, examples=["a4c138000042"])
    location: Code = Field(examples=["WH-OSL"])
    state: Literal["received", "in_stock"] = "in_stock"
    ref: Annotated[str, StringConstraints(max_length=100)] | None = Field(None, examples=["DN-2026-118"])


@router.post("/items", status_code=201, summary="Register one new item", openapi_extra=MUNICIPALITY)
def receive_item(body: NewItemBody, ctx: Ctx = need(Permission.STOCK_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.receive_items(ctx.actor, [NewItem(body.serial, body.model, body.hw_id)], body.location,
                                  state=ItemState(body.state), ref=body.ref)
        return s.inventory.device_show(ctx.actor, body.serial)


class DeliveryNote(Body):
    location: Code = Field(examples=["WH-OSL"])
    ref: Annotated[str, StringConstraints(max_length=100)] | None = Field(None, examples=["DN-2026-118"])
    state: Literal["received", "in_stock"] = "in_stock"
    csv: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="the delivery note: a header 'serial,model[,hw_id]' and one row per item",
        examples=["serial,model,hw_id\nSN-1,WT-BTN-2,a4c138000001\n"])


@router.post("/deliveries", status_code=201, summary="Import a delivery note (all rows or none)",
             openapi_extra=MUNICIPALITY,
             responses={201: {"description": "{imported, location, ref}; or, with 'Accept: application/x-ndjson', "
                                             "status 200 and one JSON object per line: {\"done\", \"total\"} while "
                                             "rows are written, then {\"result\": {imported, location, ref}} or "
                                             "{\"problem\": <problem detail>} (nothing stored)",
                              "content": {"application/json": {}, NDJSON: {}}}})
async def import_delivery(body: DeliveryNote, request: Request, ctx: Ctx = need(Permission.STOCK_WRITE)) -> Any:
    """Asked for NDJSON, the answer streams the import's progress (the command line's progress
    bar): the work runs in a thread of its own with a database connection of its own (closed at
    the end); it finishes (or rolls back) even if the client goes away."""
    if NDJSON not in request.headers.get("accept", ""):
        return await anyio.to_thread.run_sync(lambda: _import(ctx, body))

    def precheck() -> None:         # who may write where: a proper 403/404 status, before the stream starts
        with ctx.tx(write=False) as s:
            loc = s.inventory.get_location(body.location)
            ctx.actor.require(Permission.STOCK_WRITE, loc["municipality_id"])

    await anyio.to_thread.run_sync(precheck)
    total = max(body.csv.count("\n") - 1, 1)
    lines: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def work() -> None:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            lines.put({"done": min(done, total), "total": total})

        try:
            lines.put({"result": _import(ctx, body, on_progress=progress)})
        except FleetError as exc:
            lines.put({"problem": json.loads(bytes(fleet_error_response(request, exc).body))})
        except Exception:   # noqa: BLE001 - answered like any unexpected error: 500, nothing about the inside
            log.exception("delivery import failed")
            lines.put({"problem": {"type": "urn:fleet:problem:internal", "title": "internal error", "status": 500,
                                   "detail": "the server could not complete the request", "instance": request.url.path,
                                   "errors": []}})
        finally:
            ctx.state.stores.discard()       # this thread's connection: closed with the thread

    threading.Thread(target=work, name="delivery-import", daemon=True).start()

    async def ndjson() -> AsyncIterator[bytes]:
        yield (json.dumps({"done": 0, "total": total}) + "\n").encode()
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                await anyio.sleep(0.05)
                continue
            yield (json.dumps(line) + "\n").encode()
            if "result" in line or "problem" in line:
                return

    return StreamingResponse(ndjson(), status_code=200, media_type=NDJSON)


def _import(ctx: Ctx, body: DeliveryNote, *, on_progress: Any = None) -> dict[str, Any]:
    sink: list[str] = []
    with ctx.state.stores.using() as store:
        n = receive_delivery_note(sql_transactions(store, lambda tx: _counted(_Inventory, tx, sink)),
                                  FixedClock(ctx.now()), ctx.actor, body.csv, body.location, ref=body.ref,
                                  state=ItemState(body.state), on_progress=on_progress)
    for entity in sink:
        ctx.state.metrics.audit_writes.labels(entity).inc()
    return {"imported": n, "location": body.location, "ref": body.ref}


class Move(Body):
    to: Code = Field(examples=["VAN-OSL-1"])
    reason: Reason = "moved"


@router.post("/items/{key}/move", summary="Move an item to another location (state unchanged)",
             openapi_extra=MUNICIPALITY)
def move_item(key: ItemKey, body: Move, ctx: Ctx = need(Permission.STOCK_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.device_show(ctx.actor, key)      # the item's own municipality first
        s.inventory.move(ctx.actor, key, body.to, reason=body.reason)
        return s.inventory.device_show(ctx.actor, key)


class Transition(Body):
    state: ItemState
    reason: Reason
    to: Code | None = Field(None, description="also move it (e.g. to the repair vendor)")
    ref: Annotated[str, StringConstraints(max_length=100)] | None = None


@router.post("/items/{key}/transition", summary="Change an item's state along the transition table",
             openapi_extra=MUNICIPALITY)
def transition_item(key: ItemKey, body: Transition, ctx: Ctx = need(Permission.STOCK_WRITE)) -> dict[str, Any]:
    with ctx.tx() as s:
        s.inventory.device_show(ctx.actor, key)
        s.inventory.transition(ctx.actor, key, body.state, reason=body.reason, location=body.to, ref=body.ref)
        return s.inventory.device_show(ctx.actor, key)


@router.get("/item-states", summary="The item state transition table (state -> allowed next states)",
            openapi_extra=FLEETWIDE)
def item_states(ctx: Ctx = need(None)) -> dict[str, list[str]]:
    return {st.value: sorted(t.value for t in targets) for st, targets in TRANSITIONS.items()}
