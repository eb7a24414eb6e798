"""`gateway enrol --fleet URL --code CODE`: give this gateway its identity and trust anchors.

On the gateway (as root, once, after installing the package)::

    sudo wt-gateway enrol --fleet https://fleet.example.no --code K7QF-3MZP-XW2D-9RTA \\
         --pin sha256:… [--config /etc/wt-gateway/gateway.toml] [--gateway-id gw-0001]

1. Makes the gateway's keys **here** (they never leave it): an X25519 key pair, to which the
   fleet seals the device keys it sends (contracts/device_keys.py), and an EC P-256 key for its
   TLS client certificate. Written first into a staging directory beside the trust directory
   (private keys 0600, owned by the service user): a disk that cannot take them fails before
   the one-time code is spent.
2. Redeems the code over HTTPS, the fleet's certificate checked (``--pin``, ``--ca`` or the
   system store) before the code is sent (gateway/adapters/enrolment.py).
3. Writes what the fleet answered — client certificate, broker CA, the fleet's control key, the
   release keys — into the staging directory (public files 0644), swaps it in as the trust
   directory (``<config dir>/trust``) and sets in the configuration file ``gateway.id``,
   ``gateway.identity_key``, ``[uplink]`` (broker, 8883, TLS with the certificate and the
   broker login) and ``[trust]`` (``fleet_key``, ``broker_ca``, ``release_keys``), the other
   lines and comments kept. The new configuration is validated before it replaces the old one.

Anything that fails leaves the gateway as it was: no trust directory, key or configuration
half written (the staging directory is removed; an old trust directory comes back). The trust
anchors are local files: no push, command or update can change them (contracts/gateway_config
IMMUTABLE); enrolling again (a new code) is how they change. Exit codes: 0 enrolled, 2 bad
input or a configuration that would not validate, 69 the fleet could not be reached or its
certificate did not match, 77 the fleet refused the code.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/wt-gateway/gateway.toml"
SERVICE_USER = "wt-gateway"
EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_REFUSED = 2, 69, 77


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enrol", help="enrol this gateway with the fleet: keys, broker certificate, trust anchors")
    p.add_argument("--fleet", required=True, metavar="URL", help="the fleet service, https://…")
    p.add_argument("--code", required=True, help="the one-time enrolment code the technician got (XXXX-XXXX-…)")
    p.add_argument("--pin", metavar="sha256:HEX", help="fingerprint of the fleet's certificate, printed next to the code")
    p.add_argument("--ca", metavar="FILE", help="CA certificate (PEM) of the fleet's HTTPS server (instead of --pin)")
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE",
                   help=f"the gateway's configuration file (default {DEFAULT_CONFIG}; made if missing)")
    p.add_argument("--gateway-id", metavar="ID", help="the gateway id the code was made for (default: gateway.id of "
                                                       "the configuration)")
    p.add_argument("--trust-dir", metavar="DIR", help="where keys and anchors go (default <config dir>/trust)")
    p.add_argument("--owner", metavar="USER", help=f"owner of the private keys (default: {SERVICE_USER} when run as "
                                                   "root and that user exists, else you)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_enrol)


def _fail(msg: str, fix: str, code: int) -> int:
    print(f"gateway enrol: {msg}" + (f"\n  fix: {fix}" if fix else ""), file=sys.stderr)
    return code


def _owner(arg: str | None) -> tuple[int, int] | None:
    import grp
    import pwd

    name = arg or (SERVICE_USER if os.geteuid() == 0 else None)
    if name is None:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if arg:
            raise ValueError(f"--owner {arg}: no such user") from None
        return None
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        gid = pw.pw_gid
    return pw.pw_uid, gid


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)


def _make_keys(gateway_id: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.x509.oid import NameOID

    pem, pkcs8, none = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    xk = X25519PrivateKey.generate()
    tls = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])).sign(tls, hashes.SHA256()))
    raw_pub = xk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"x25519_private_pem": xk.private_bytes(pem, pkcs8, none),
            "x25519_public_pem": xk.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
            "x25519_public_b64": base64.b64encode(raw_pub).decode(), "x25519_raw": raw_pub,
            "tls_private_pem": tls.private_bytes(pem, pkcs8, none),
            "csr_pem": csr.public_bytes(pem).decode()}


def cmd_enrol(args: argparse.Namespace) -> int:
    import tomllib

    from contracts.device_keys import fingerprint
    from gateway.adapters.enrolment import EnrolError, EnrolmentClient

    config = Path(args.config).absolute()
    try:
        text = config.read_text(encoding="utf-8") if config.exists() else ""
        current = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return _fail(f"cannot read the configuration {config}: {exc}", "fix the file (gateway config check) first",
                     EXIT_INPUT)
    gateway_id = args.gateway_id or (current.get("gateway") or {}).get("id")
    if not gateway_id or gateway_id == "gw-demo":
        return _fail("which gateway is this? the configuration has no gateway.id",
                     "give --gateway-id with the id the code was made for (gw-…)", EXIT_INPUT)
    trust = Path(args.trust_dir).absolute() if args.trust_dir else config.parent / "trust"
    try:
        owner = _owner(args.owner)
        client = EnrolmentClient(args.fleet, ca_file=args.ca, pin=args.pin)
    except ValueError as exc:
        return _fail(str(exc), "give an existing user", EXIT_INPUT)
    except EnrolError as exc:
        return _fail(exc.message, exc.fix, EXIT_INPUT)

    keys = _make_keys(gateway_id)
    stage = trust.parent / f".{trust.name}.new-{os.getpid()}"
    try:
        # 1. the private keys on disk before the code is spent
        trust.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir(mode=0o755)
        _write(stage / "gateway-x25519.key", keys["x25519_private_pem"], 0o600, owner)
        _write(stage / "gateway-x25519.pub", keys["x25519_public_pem"], 0o644)
        _write(stage / "mqtt-client.key", keys["tls_private_pem"], 0o600, owner)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        return _fail(f"cannot write the keys under {trust.parent}: {exc.strerror or exc}",
                     "run as root (sudo), or give --trust-dir and --config on a writable disk", EXIT_INPUT)
    try:
        # 2. the code, over verified HTTPS
        try:
            bundle = client.redeem(code=args.code, gateway_id=gateway_id, x25519_public=keys["x25519_public_b64"],
                                   csr_pem=keys["csr_pem"])
        except EnrolError as exc:
            return _fail(exc.message, exc.fix, EXIT_REFUSED if exc.reason == "refused" else EXIT_UNAVAILABLE)
        # 3. the answer into the staging directory, then swapped in with the configuration
        return _install(args, bundle, keys, stage, trust, config, text, gateway_id, fingerprint(keys["x25519_raw"]))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _install(args: argparse.Namespace, bundle: dict[str, Any], keys: dict[str, Any], stage: Path, trust: Path,
             config: Path, text: str, gateway_id: str, x25519_fp: str) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.config._toml_edit import set_keys

    mqtt, broker, anchors = bundle["mqtt"], bundle["broker"], bundle.get("trust") or {}
    files: dict[str, str] = {"identity_key": "gateway-x25519.key", "tls_key": "mqtt-client.key",
                             "tls_cert": "mqtt-client.pem"}
    _write(stage / "mqtt-client.pem", mqtt["cert_pem"].encode(), 0o644)
    if broker.get("ca_pem"):
        _write(stage / "broker-ca.pem", broker["ca_pem"].encode(), 0o644)
        files["broker_ca"] = "broker-ca.pem"
    if anchors.get("fleet_key_pem"):
        _write(stage / "fleet-control.pub", anchors["fleet_key_pem"].encode(), 0o644)
        files["fleet_key"] = "fleet-control.pub"
    releases = []
    for i, pem in enumerate(anchors.get("release_keys_pem") or [], 1):
        _write(stage / f"release-{i}.pub", pem.encode(), 0o644)
        releases.append(f"release-{i}.pub")
    record = {"gateway_id": gateway_id, "fleet": args.fleet, "enrolled_at": bundle.get("enrolled_at"),
              "cert_serial": mqtt.get("cert_serial"), "x25519_fingerprint": x25519_fp, "files": sorted(os.listdir(stage))}
    _write(stage / "enrolment.json", (json.dumps(record, indent=2) + "\n").encode(), 0o644)

    def keys_for(base: Path) -> dict[str, Any]:
        k: dict[str, Any] = {
            "gateway.id": gateway_id, "gateway.identity_key": str(base / files["identity_key"]),
            "uplink.host": broker["host"], "uplink.port": int(broker.get("port") or 8883),
            "uplink.tls.enabled": True, "uplink.tls.cert": str(base / files["tls_cert"]),
            "uplink.tls.key": str(base / files["tls_key"]), "uplink.tls.username": mqtt["username"],
            "uplink.tls.password": mqtt["password"],
            "trust.release_keys": [str(base / r) for r in releases]}
        if "broker_ca" in files:
            k["uplink.tls.ca"] = k["trust.broker_ca"] = str(base / files["broker_ca"])
        if "fleet_key" in files:
            k["trust.fleet_key"] = str(base / files["fleet_key"])
        return k

    # validated against the staged files first: a configuration that would not load is never written
    try:
        staged = set_keys(text, keys_for(stage))
        probe = stage / "gateway.toml.check"
        _write(probe, staged.encode(), 0o600)
        load_config(probe, env={})
        probe.unlink()
    except ConfigError as exc:
        return _fail(f"the enrolled configuration would not load: {exc}", "fix the other errors in "
                     f"{config} (gateway config check) and enrol again with a new code", EXIT_INPUT)
    final = set_keys(text, keys_for(trust))
    old = trust.parent / f".{trust.name}.old-{int(time.time())}" if trust.exists() else None
    tmp_cfg = config.parent / f".{config.name}.new-{os.getpid()}"
    try:
        mode = config.stat().st_mode & 0o777 if config.exists() else 0o600
        _write(tmp_cfg, final.encode(), mode)
        if config.exists():
            st = config.stat()
            if os.geteuid() == 0:
                os.chown(tmp_cfg, st.st_uid, st.st_gid)
        if old is not None:
            os.rename(trust, old)
        os.rename(stage, trust)
        try:
            os.replace(tmp_cfg, config)
        except OSError:
            os.rename(trust, stage)                      # put the old state back
            if old is not None:
                os.rename(old, trust)
            raise
    except OSError as exc:
        tmp_cfg.unlink(missing_ok=True)
        return _fail(f"cannot install the enrolment under {trust.parent}: {exc.strerror or exc}",
                     "free space / make the directory writable and enrol again with a new code", EXIT_INPUT)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)           # the previous identity's keys
    result = {**record, "trust_dir": str(trust), "config": str(config), "broker": f"{broker['host']}:{broker.get('port')}"}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"gateway {gateway_id} enrolled: broker {result['broker']} (TLS, client certificate "
              f"{mqtt.get('cert_serial')}), identity key {x25519_fp}\n  trust anchors in {trust}; "
              f"configuration {config} updated\n  next: sudo systemctl restart wt-gateway")
    return 0
