"""The fleet's control key on the benches: what signs every command and push the benches send
(as the fleet does, docs/mqtt.md "Signed control messages"), and the public half the bench's
gateway trusts as ``[trust] fleet_key``.

One key per test session (hil_tests/conftest.py puts it in ``FLEET_CONTROL_KEY_FILE``, so a
``fleet`` CLI subprocess — commissioning — signs with it too).
"""
from __future__ import annotations

import os
from pathlib import Path


def key_file() -> str:
    path = os.environ.get("FLEET_CONTROL_KEY_FILE", "")
    if not path:
        raise RuntimeError("FLEET_CONTROL_KEY_FILE is not set: the hil_tests conftest makes the session's key")
    return path


def trust(workdir: Path) -> dict[str, str]:
    """The gateway's ``[trust]`` section: the session key's public half written into ``workdir``."""
    from contracts.control import load_private_file, public_pem

    pub = Path(workdir) / "fleet-control.pub"
    pub.parent.mkdir(parents=True, exist_ok=True)
    pub.write_bytes(public_pem(load_private_file(key_file()).public_key()))
    return {"fleet_key": str(pub)}


def signer():
    """The fleet's signer over the session key (fleet.control.ControlSigner)."""
    from fleet.control import ControlSigner

    return ControlSigner.from_file(key_file())
