#!/usr/bin/env python3
"""Build a gateway release artifact (docs/upgrades.md "Gateway release artifact").

    python scripts/build-release.py --version 0.2.0 [--out dist/] [--key ci.key] [--json]

Writes ``gateway-<version>.tar.gz`` (root: ``app/gateway/…``, ``app/contracts/…``,
``VERSION``; ``app/gateway/_version.py`` says the version, so the daemon running from a
slot reports it). Reproducible: the same sources and version give the same bytes (sorted
entries, mtime 0, owner root). With ``--key`` it also writes ``<artifact>.sig``, the signed
``wt.release/1`` manifest for target ``gateway`` (as ``fleet release sign`` would).
Progress on stderr, the result on stdout (``--json``: one JSON object).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.release import ReleaseRejected, parse_version, sign  # noqa: E402
from gateway.adapters.upgrade import UpgradeError, inspect, pack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="build-release.py", description="Build the gateway release artifact "
                                "(.tar.gz of app/gateway, app/contracts, VERSION).")
    p.add_argument("--version", required=True, help="release version MAJOR.MINOR.PATCH, e.g. 0.2.0")
    p.add_argument("--out", default="dist", help="output directory (default: dist/)")
    p.add_argument("--source", default=str(ROOT), help="repository root to build from (default: this checkout)")
    p.add_argument("--key", help="ed25519 private key (PEM, fleet release keygen): also write <artifact>.sig")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    try:
        parse_version(args.version)
    except ReleaseRejected as exc:
        print(f"build-release: {exc}; give e.g. --version 0.2.0", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    print(f"build-release: packing gateway {args.version} from {args.source} ...", file=sys.stderr)
    try:
        blob = pack(Path(args.source), args.version)
        bundle = inspect(blob, args.version)          # the gateway's own check: what it accepts, we ship
    except UpgradeError as exc:
        print(f"build-release: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gateway-{args.version}.tar.gz"
    path.write_bytes(blob)
    result = {"artifact": str(path), "version": args.version, "size": len(blob),
              "sha256": hashlib.sha256(blob).hexdigest(), "files": sum(1 for m in bundle.members if not m.is_dir),
              "unpacked_bytes": bundle.unpacked_bytes, "signature": None}
    if args.key:
        try:
            signed = sign(blob, path.name, "gateway", args.version, Path(args.key).read_bytes())
        except OSError as exc:
            print(f"build-release: cannot read the key {args.key}: {exc.strerror}", file=sys.stderr)
            return 2
        except ReleaseRejected as exc:
            print(f"build-release: {exc}; create one with: fleet release keygen NAME", file=sys.stderr)
            return 2
        sig = path.with_name(path.name + ".sig")
        sig.write_text(signed.to_json() + "\n")
        result["signature"] = str(sig)
    print(f"build-release: done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{path}  {result['size']} bytes  sha256 {result['sha256']}  ({result['files']} files, "
              f"{result['unpacked_bytes']} bytes unpacked)" + (f"\n{result['signature']}" if args.key else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
