"""Server-sent events: an installation's commissioning status, live.

``GET /api/v1/installations/{code}/commissioning/events`` (``text/event-stream``) sends the
installation's commissioning state at once and again whenever it changes: the devices, which
of them their gateway has reported (paired), which test alarms the platform has seen, what
still blocks completion. The technician web app streams the same states as HTML fragments
(``/web/installations/{code}/events``, :mod:`fleet.web`).

Invariants:

- **Stateless.** A stream polls the database every :data:`POLL_S`; a test alarm reported to any
  worker (``POST /installations/{code}/test-alarms``) reaches every open stream, on any worker.
- **The same authorisation as every read.** The first state is computed before the response
  starts, so a missing installation or one of a foreign municipality is a 404 problem, never an
  empty stream. The token is checked again on every poll: logout, expiry or deactivation ends
  the stream (``event: end`` with ``reason: unauthenticated``).
- **Finite.** The stream ends with ``event: end`` when the installation leaves ``commissioning``
  (``reason: status``), and closes after :data:`MAX_S` (the client reconnects and gets the
  current state first, so nothing is lost; no ``Last-Event-ID`` bookkeeping is needed).
- Only codes, roles, serials, device ids, times, the *names* of unanswered checklist
  questions and a fall sensor's placement (the device setting its test fall reports, and the
  one its gateway's configuration was given) are streamed — no personal data, so a state is
  not an audited read.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

import anyio
from fastapi import Depends, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from ...access import Actor, Permission
from ...errors import NotAuthenticated
from ...installations import missing_answers
from ...installations._placement import check as placement_check
from .._context import MUNICIPALITY, AppState, Ctx, Services, authenticate, bearer, need
from .._problems import api_router
from .installations import InstCode

router = api_router("installations")
POLL_S = 1.0              # how often a stream looks at the database
HEARTBEAT_S = 15.0        # an SSE comment line this often, so proxies keep the connection and a gone client is noticed
MAX_S = 600.0             # a stream closes after this long; EventSource reconnects by itself
RETRY_MS = 3000           # the client's reconnect delay


def commissioning_state(s: Services, actor: Actor, code: str) -> dict[str, Any]:
    """The commissioning state of ``code`` as the actor may see it (raises NotFound / AccessDenied).

    ``blockers`` lists, in order, what keeps the installation from being completed: its status,
    each device whose test alarm the platform has not seen, each fall sensor whose test fall
    reports another placement than its checklist answer, unanswered checklist questions (the
    last two if the actor may read the checklist) and a missing consent record.
    """
    from ...monitoring._queries import firmware_versions

    inst = s.installations.show(actor, code, personal=True, audit_read=False)
    mun = inst["municipality"]
    seen = {a["device_id"]: a for a in inst["test_alarms"]}
    hw_ids = [d["hw_id"] for d in inst["devices"] if d["hw_id"]]
    fw = firmware_versions(s.tx, hw_ids)
    devices, gateway = [], None
    for d in inst["devices"]:
        if d["role"] == "gateway":
            gateway = {"serial": d["serial"], "id": d["hw_id"], "version": fw.get(d["hw_id"] or "")}
            continue
        alarm = seen.get(d["hw_id"])
        placement = None
        if "checklist" in inst:      # the comparison names the checklist's answer: only for who may read it
            answer = ((inst.get("checklist") or {}).get(d["serial"]) or {}).get("placement")
            placement = placement_check(code=inst["code"], device=d, answer=answer, alarm=alarm,
                                        gateway_id=inst["gateway_id"])
        devices.append({
            "serial": d["serial"], "role": d["role"], "model": d["model_code"], "hw_id": d["hw_id"],
            "state": d["state"], "fw": fw.get(d["hw_id"] or ""),
            # paired: the gateway has reported the device (its health carries the firmware), or its test alarm came
            "paired": bool(fw.get(d["hw_id"] or "")) or alarm is not None,
            "test_alarm": None if alarm is None else {"event_id": alarm["event_id"], "seen_at": alarm["seen_at"],
                                                      "latency_ms": alarm["latency_ms"]},
            # a fall sensor's test fall: the detector it runs against the checklist's placement (None otherwise)
            "placement": placement})
    blockers: list[dict[str, Any]] = []
    if inst["status"] != "commissioning":
        blockers.append({"kind": "status", "status": inst["status"]})
    blockers += [{"kind": "test_alarm", "serial": d["serial"], "role": d["role"]}
                 for d in devices if d["test_alarm"] is None]
    blockers += [{"kind": "placement", "serial": d["serial"], "role": d["role"],
                  "checklist": d["placement"]["checklist"], "reported": d["placement"]["reported"]}
                 for d in devices if d["placement"] and d["placement"]["status"] == "mismatch"]
    checklist_known = "checklist" in inst
    if checklist_known:
        roles = {d["serial"]: d["role"] for d in devices}
        for serial, keys in missing_answers(inst.get("checklist") or {}, roles).items():
            blockers.append({"kind": "checklist", "serial": serial, "role": roles[serial], "keys": keys})
    if "consent" in inst and not inst.get("consent"):
        blockers.append({"kind": "consent"})
    return {
        "code": inst["code"], "status": inst["status"], "version": inst["version"], "municipality": mun,
        "gateway": gateway, "devices": devices, "total": len(devices),
        "paired": sum(1 for d in devices if d["paired"]), "seen": sum(1 for d in devices if d["test_alarm"]),
        "missing_test_alarms": [d["serial"] for d in devices if d["test_alarm"] is None],
        "checklist_known": checklist_known, "blockers": blockers,
        "can_complete": not blockers and actor.can(Permission.INSTALL_WRITE, mun),
    }


def load_state(state: AppState, token: str, code: str) -> dict[str, Any]:
    """Authenticate ``token`` (again) and read the state, in one short read transaction (blocking)."""
    actor = authenticate(state, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
    actor.require(Permission.INSTALL_READ)
    ctx = Ctx(state, actor, "")
    with ctx.tx(write=False) as s:
        return commissioning_state(s, actor, code)


def _event(name: str, n: int, data: Any) -> bytes:
    return f"id: {n}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def sse_stream(state: AppState, token: str, code: str, first: dict[str, Any], *,
                     render: Callable[[dict[str, Any]], Any] = lambda st: st, poll_s: float = POLL_S,
                     max_s: float = MAX_S) -> AsyncIterator[bytes]:
    """``event: status`` with ``render(state)`` now and on every change; ``event: end`` when done.

    ``first`` is the state already read (and authorised) by the endpoint.
    """
    yield f"retry: {RETRY_MS}\n\n".encode()
    n = 1
    yield _event("status", n, render(first))
    last = json.dumps(first, sort_keys=True)
    current = first
    waited = quiet = 0.0
    while current["status"] == "commissioning" and waited < max_s:
        await anyio.sleep(poll_s)
        waited += poll_s
        quiet += poll_s
        try:
            current = await anyio.to_thread.run_sync(load_state, state, token, code)
        except NotAuthenticated:
            yield _event("end", n + 1, {"reason": "unauthenticated"})
            return
        now = json.dumps(current, sort_keys=True)
        if now != last:
            n += 1
            last, quiet = now, 0.0
            yield _event("status", n, render(current))
        elif quiet >= HEARTBEAT_S:
            quiet = 0.0
            yield b": keep-alive\n\n"
    if current["status"] != "commissioning":
        yield _event("end", n + 1, {"reason": "status", "status": current["status"]})


SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@router.get("/installations/{code}/commissioning/events",
            summary="Commissioning status, live (server-sent events: the state now and on every change)",
            openapi_extra=MUNICIPALITY, response_class=StreamingResponse,
            responses={200: {"description": "`event: status` with the commissioning state (the JSON of "
                                            "GET .../commissioning plus paired devices, test alarms seen and "
                                            "blockers), `event: end` when the installation leaves commissioning",
                             "content": {"text/event-stream": {}}}})
async def commissioning_events(code: InstCode, request: Request, ctx: Ctx = need(Permission.INSTALL_READ),
                               creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> StreamingResponse:
    token = creds.credentials.strip() if creds else ""
    first = await anyio.to_thread.run_sync(load_state, ctx.state, token, code)
    return StreamingResponse(sse_stream(ctx.state, token, code, first), media_type="text/event-stream",
                             headers=SSE_HEADERS)
