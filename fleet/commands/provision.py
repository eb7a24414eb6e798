"""`fleet device provision --port /dev/ttyUSB0 DEVICE`: a new key from the fleet, written into the
sensor over USB (mpremote), activated once read back — one command (fleet/devicekeys/_provision.py).

    fleet device provision --port /dev/ttyUSB0 a4c1380a1b2c [--role button]
    fleet device provision --image bench/btn.img --image-id 020000000001 020000000001   # a host-HAL image

The key is never printed; `fleet --json device provision …` prints the result as JSON. The gateway gets it sealed to its own key with the next configuration
push (``--push`` pushes at once when the server has a broker). Provisioning again is re-keying:
the gateway then starts the device's replay windows afresh (docs/protocol.md "Re-keying").
"""
from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from ._common import emit


def register(sub) -> None:
    device = sub.choices.get("device")
    if device is None:          # fleet.commands.device registers `fleet device`; this adds its `provision`
        raise RuntimeError("fleet.commands.provision must come after fleet.commands.device in fleet.cli.GROUPS")
    actions = [a for a in device._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    p = actions[0].add_parser("provision", help="generate a device key and write it into the sensor over USB")
    p.add_argument("device_id", metavar="DEVICE", help="the device id (12 hex digits, the board's MAC)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0 (uses mpremote)")
    where.add_argument("--image", metavar="FILE", help="a host-HAL flash image instead of a board (benches, tests)")
    p.add_argument("--image-id", metavar="ID", help="the id the image's firmware boots with (with --image)")
    p.add_argument("--role", help="the role the sensor runs (default: its config.json's)")
    p.add_argument("--push", action="store_true", help="push the gateway's configuration afterwards")
    p.set_defaults(func=cmd_provision)


class _Keys:
    """The device-key endpoints of the fleet service (fleet/api/routers/devicekeys.py)."""

    def __init__(self, http: Any) -> None:
        self.http = http

    def generate(self, device_id: str) -> dict[str, Any]:
        return self.http.post(f"/devices/{quote(device_id, safe='')}/keys")

    def activate(self, device_id: str, version: int) -> dict[str, Any]:
        return self.http.post(f"/devices/{quote(device_id, safe='')}/keys/{version}/activate")

    def discard(self, device_id: str, version: int) -> dict[str, Any]:
        return self.http.post(f"/devices/{quote(device_id, safe='')}/keys/{version}/discard")


def cmd_provision(args: argparse.Namespace, cfg) -> int:
    from ..devicekeys._boards import HostImageBoard, MpremoteBoard
    from ..devicekeys._provision import provision
    from ..errors import ValidationError
    from ._common import api

    if args.image and not args.image_id:
        raise ValidationError("--image needs --image-id (the id its firmware boots with)", field="image_id")
    board = HostImageBoard(args.image, args.image_id) if args.image else MpremoteBoard(args.port)
    with api(cfg) as c:
        done = provision(board, _Keys(c.http), args.device_id, role=args.role)
        pushed = None
        if args.push and done.gateway_id:
            pushed = c.http.post(f"/gateways/{quote(done.gateway_id, safe='')}/config/push")
    row = {**done.as_dict(), "pushed": pushed}
    if getattr(cfg, "json", False):
        emit(cfg, row)
    else:
        gw = done.gateway_id or "its gateway"
        print(f"{done.device_id}: key v{done.version} ({done.key_id}) written and active, role {done.role}; "
              + (f"pushed to {gw}" if pushed else f"push {gw}'s configuration to send it (fleet config push {gw})"))
    return 0
