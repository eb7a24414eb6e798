"""`fleet control-key show|generate`: the fleet's control key, which signs every config push
and command (docs/mqtt.md "Signed control messages"; fleet/control).

    fleet control-key generate /etc/fleet/control.key      # private (0600) + control.pub
    fleet control-key show [--json]                        # of FLEET_CONTROL_KEY_FILE / --control-key

The private key stays in a file outside the database, read by the fleet service and the
workers that send commands (``FLEET_CONTROL_KEY_FILE``). ``show`` prints only the public
half: what every gateway trusts as ``[trust] fleet_key`` (written at enrolment).
"""
from __future__ import annotations

import argparse
import os

from ._common import emit


def register(sub) -> None:
    p = sub.add_parser("control-key", help="the fleet's control key (signs config pushes and commands)")
    s = p.add_subparsers(dest="action", required=True)
    show = s.add_parser("show", help="the control key's public half and id (for the gateways' [trust] fleet_key)")
    show.add_argument("--control-key", metavar="FILE", help="the private key file (default: $FLEET_CONTROL_KEY_FILE)")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON")
    show.set_defaults(func=cmd_show)
    gen = s.add_parser("generate", help="create a new control key file (never overwrites one)")
    gen.add_argument("path", metavar="FILE", help="where the private key goes (0600); the public half beside it")
    gen.set_defaults(func=cmd_generate)


def cmd_show(args: argparse.Namespace, cfg) -> int:
    from ..control import ENV_KEY_FILE, ControlSigner

    path = args.control_key or os.environ.get(ENV_KEY_FILE, "")
    signer = ControlSigner.from_file(path) if path else ControlSigner.from_env()
    emit(cfg, {"key_id": signer.key_id, "public_pem": signer.public_pem.decode()})
    return 0


def cmd_generate(args: argparse.Namespace, cfg) -> int:
    from ..control import generate_key_files
    from ..errors import ValidationError

    try:
        priv, pub = generate_key_files(args.path)
    except FileExistsError:
        raise ValidationError(f"{args.path} exists; a control key is never overwritten (every gateway trusts it)",
                              field="path", fix="choose another path, or keep using the existing key") from None
    emit(cfg, {"private_key": str(priv), "public_key": str(pub)})
    return 0
