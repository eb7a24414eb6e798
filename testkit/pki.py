"""Generate a throw-away CA, a server certificate for 127.0.0.1/localhost and a client
certificate (mutual TLS) into a directory, with `cryptography`. ECDSA P-256, 1 day validity."""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject: str, key, issuer: x509.Name, issuer_key, *, ca: bool, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, prefix: str = "") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    p = lambda n: directory / f"{prefix}{n}"  # noqa: E731
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(f"{prefix}wt test CA", ca_key, _name(f"{prefix}wt test CA"), ca_key, ca=True)
    srv_key, cli_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    srv = _cert("localhost", srv_key, ca.subject, ca_key, ca=False, server=True)
    cli = _cert("gw-0001", cli_key, ca.subject, ca_key, ca=False)
    pki = Pki(p("ca.pem"), p("server.pem"), p("server.key"), p("client.pem"), p("client.key"))
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    pki.client_cert.write_bytes(cli.public_bytes(serialization.Encoding.PEM))
    _write_key(srv_key, pki.server_key)
    _write_key(cli_key, pki.client_key)
    return pki
