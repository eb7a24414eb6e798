"""Where the shared protocol vectors live: ``docs/protocol-vectors.json``.

One file of radio-protocol test vectors (frames and payloads, docs/protocol.md) that
every implementation decodes and re-encodes: the gateway's codec on CPython
(gateway/tests/test_codec_vectors.py) and the firmware's ``wire.py`` on MicroPython
(firmware/tests/test_wire_vectors.py). ``gateway.codec.vectors`` generates it.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_VECTORS = REPO_ROOT / "docs" / "protocol-vectors.json"
PROTOCOL_VECTORS_DOC = "docs/protocol-vectors.json"      # repository-relative, for messages and docs

__all__ = ["PROTOCOL_VECTORS", "PROTOCOL_VECTORS_DOC", "REPO_ROOT"]
