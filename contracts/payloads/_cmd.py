"""``wt.cmd/1`` (fleet -> gateway commands) and ``wt.cmd-result/1`` (gateway -> fleet
outcome / progress), docs/mqtt.md and docs/upgrades.md.

Commands are idempotent by ``cmd_id``: a re-delivered command gets the same result.
The ``update`` / ``ota`` results carry ``detail.deployment``; :func:`decode_update_result`
reads that shape once for every fleet consumer (rollout runner, monitoring).
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple

from contracts.payloads._common import Rejected, dumps, load

CMD_SCHEMA = "wt.cmd/1"
RESULT_SCHEMA = "wt.cmd-result/1"


class CmdStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"
    PROGRESS = "progress"


_STATUSES = frozenset(s.value for s in CmdStatus)


class Command(NamedTuple):
    cmd_id: str
    cmd: str
    args: dict[str, Any]


def cmd_doc(cmd_id: str, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"schema": CMD_SCHEMA, "cmd_id": cmd_id, "cmd": cmd, "args": args}


def encode_cmd(cmd_id: str, cmd: str, args: dict[str, Any]) -> bytes:
    return dumps(cmd_doc(cmd_id, cmd, args))


def decode_cmd(payload: bytes) -> Command | Rejected:
    """A command; or a rejection - with ``ref`` = the ``cmd_id`` when only ``cmd``/``args``
    are malformed (the receiver answers ``error`` for that id)."""
    obj = load(payload, CMD_SCHEMA)
    if isinstance(obj, Rejected):
        return obj
    cmd_id, cmd, args = obj.get("cmd_id"), obj.get("cmd"), obj.get("args", {})
    if not isinstance(cmd_id, str) or not cmd_id:
        return Rejected("'cmd_id' missing or not a string", CMD_SCHEMA, "cmd_id")
    if not isinstance(cmd, str) or not isinstance(args, dict):
        return Rejected("'cmd' must be a string and 'args' an object", CMD_SCHEMA,
                        "cmd" if not isinstance(cmd, str) else "args", cmd_id)
    return Command(cmd_id, cmd, args)


class CommandResult(NamedTuple):
    cmd_id: str | None
    status: CmdStatus
    detail: dict[str, Any]


def cmd_result_doc(cmd_id: str, status: CmdStatus | str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"schema": RESULT_SCHEMA, "cmd_id": cmd_id, "status": CmdStatus(status).value, "detail": detail}


def encode_cmd_result(cmd_id: str, status: CmdStatus | str, detail: dict[str, Any]) -> bytes:
    return dumps(cmd_result_doc(cmd_id, status, detail))


def decode_cmd_result(payload: bytes) -> CommandResult | Rejected:
    obj = load(payload, RESULT_SCHEMA)
    if isinstance(obj, Rejected):
        return obj
    cid, status, detail = obj.get("cmd_id"), obj.get("status"), obj.get("detail")
    if not isinstance(status, str) or status not in _STATUSES:
        return Rejected(f"status {status!r} is not ok/error/progress", RESULT_SCHEMA, "status",
                        cid if isinstance(cid, str) else None)
    return CommandResult(cid if isinstance(cid, str) else None, CmdStatus(status),
                         detail if isinstance(detail, dict) else {})


class UpdateResult(NamedTuple):
    """A ``wt.cmd-result/1`` of an ``update`` / ``ota`` command (docs/upgrades.md)."""

    cmd_id: str | None
    deployment: str
    device: str | None             # None: the gateway itself
    status: CmdStatus
    phase: str | None              # downloaded | installed | rebooted | committed | rolled_back
    error: str | None
    version: str | None
    rolled_back: bool


def decode_update_result(payload: bytes) -> UpdateResult | Rejected:
    res = decode_cmd_result(payload)
    if isinstance(res, Rejected):
        return res
    d = res.detail
    dep, dev = d.get("deployment"), d.get("device")
    if not isinstance(dep, str):
        return Rejected("detail.deployment missing: not an update result", RESULT_SCHEMA, "detail.deployment",
                        res.cmd_id)
    if dev is not None and not isinstance(dev, str):
        return Rejected("detail.device is not a string", RESULT_SCHEMA, "detail.device", res.cmd_id)
    phase, err, ver = d.get("phase"), d.get("error"), d.get("version")
    return UpdateResult(res.cmd_id, dep, dev, res.status, phase if isinstance(phase, str) else None,
                        err if isinstance(err, str) else None, ver if isinstance(ver, str) else None,
                        d.get("rolled_back") is True)
