"""`fleet release`: ed25519 keys, sign/verify artifacts, add signed releases to the fleet."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import add_json, api, emit, fmt_time


def register(sub) -> None:
    p = sub.add_parser("release", help="signed firmware / gateway releases",
                       description="Releases are artifacts with a signed manifest (SHA-256, size, target, version). "
                                   "See docs/upgrades.md.")
    s = p.add_subparsers(dest="release_cmd", metavar="ACTION", required=True)
    x = s.add_parser("keygen", help="create an ed25519 signing key pair: PREFIX.key (secret) and PREFIX.pub")
    x.add_argument("prefix")
    x.set_defaults(func=cmd_keygen)
    x = s.add_parser("key-add", help="trust a public key for `release add`")
    x.add_argument("public_key")
    x.add_argument("--name", required=True)
    x.set_defaults(func=cmd_key_add)
    add_json(s.add_parser("keys", help="trusted release keys")).set_defaults(func=cmd_keys)
    x = s.add_parser("sign", help="sign an artifact; writes ARTIFACT.sig (signed manifest)")
    x.add_argument("artifact")
    x.add_argument("--key", required=True, help="private key (PEM) from `fleet release keygen`")
    x.add_argument("--target", required=True, help="gateway, fw-button, fw-fall, fw-bed, fw-door, fw-motion, fw-gps, "
                                                   "fw-dispenser")
    x.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
    x.add_argument("--out", help="signature file (default ARTIFACT.sig)")
    x.set_defaults(func=cmd_sign)
    x = add_json(s.add_parser("verify", help="check an artifact against its signature (trusted keys or --pubkey)"))
    x.add_argument("artifact")
    x.add_argument("--sig", help="signature file (default ARTIFACT.sig)")
    x.add_argument("--pubkey", help="verify with this public key instead of the fleet's trusted keys")
    x.set_defaults(func=cmd_verify)
    x = s.add_parser("add", help="verify and store a signed release (nothing is stored if it fails)")
    x.add_argument("artifact")
    x.add_argument("--sig", help="signature file (default ARTIFACT.sig)")
    x.set_defaults(func=cmd_add)
    x = add_json(s.add_parser("list", help="stored releases"))
    x.add_argument("--target")
    x.set_defaults(func=cmd_list)
    x = add_json(s.add_parser("show", help="one release and its manifest"))
    x.add_argument("release_id", help="e.g. fw-bed@1.3.0")
    x.set_defaults(func=cmd_show)


def _read(path: str, what: str) -> bytes:
    from ..upgrades import UpgradeError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UpgradeError(f"cannot read {what} {path}: {exc.strerror}") from None


def cmd_keygen(args: argparse.Namespace, cfg) -> int:
    from ..upgrades import UpgradeError, generate_key

    priv, pub = generate_key()
    key_path, pub_path = Path(args.prefix + ".key"), Path(args.prefix + ".pub")
    if key_path.exists():
        raise UpgradeError(f"{key_path} exists; refusing to overwrite a signing key (choose another prefix)")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv)
    pub_path.write_bytes(pub)
    print(f"wrote {key_path} (keep it offline) and {pub_path}; trust it with: fleet release key-add {pub_path} "
          "--name NAME", file=sys.stderr)
    return 0


def cmd_key_add(args: argparse.Namespace, cfg) -> int:
    pem = _read(args.public_key, "public key")
    with api(cfg) as c:
        kid = c.releases.add_key(pem.decode("utf-8", "replace"), args.name)["key_id"]
    print(kid)
    return 0


def cmd_keys(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.releases.keys()
    emit(cfg, rows, columns=["key_id", "name", "added_at", "added_by"])
    return 0


def cmd_sign(args: argparse.Namespace, cfg) -> int:
    from ..upgrades import parse_target, sign

    art = _read(args.artifact, "artifact")
    signed = sign(art, Path(args.artifact).name, parse_target(args.target), args.version, _read(args.key, "key"))
    out = Path(args.out or args.artifact + ".sig")
    out.write_text(signed.to_json() + "\n")
    print(f"signed {signed.manifest.release_id} ({signed.manifest.size} bytes, sha256 {signed.manifest.sha256[:16]}…, "
          f"key {signed.key_id}) -> {out}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace, cfg) -> int:
    from ..upgrades import SignedManifest, load_public, verify

    art = _read(args.artifact, "artifact")
    signed = SignedManifest.from_json(_read(args.sig or args.artifact + ".sig", "signature"))
    if args.pubkey:
        keys = [load_public(_read(args.pubkey, "public key"))]
    else:                          # the fleet's trusted keys (public), checked here against the artifact
        with api(cfg) as c:
            keys = [load_public(k["public_pem"].encode()) for k in c.releases.keys() if k.get("public_pem")]
    m = verify(art, signed, keys)
    emit(cfg, {"release": m.release_id, "ok": True, "sha256": m.sha256, "size": m.size, "key_id": signed.key_id})
    return 0


def cmd_add(args: argparse.Namespace, cfg) -> int:
    import json

    from ..upgrades import SignedManifest

    art = _read(args.artifact, "artifact")
    signed = SignedManifest.from_json(_read(args.sig or args.artifact + ".sig", "signature"))
    with api(cfg) as c:             # verified against the trusted keys by the service; nothing stored if it fails
        rid = c.releases.add(json.loads(signed.to_json()), art)["release_id"]
    print(rid)
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.releases.list(target=args.target)
    if not cfg.json:
        for r in rows:
            r["added_at"] = fmt_time(r["added_at"])
            r["sha256"] = r["sha256"][:16] + "…"
    emit(cfg, rows, columns=["release_id", "target", "version", "size", "sha256", "key_id", "added_at"])
    return 0


def cmd_show(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        r = c.releases.show(args.release_id)          # the signed manifest as a JSON object
    emit(cfg, r)
    return 0
