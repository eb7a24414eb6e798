"""The fleet's gateway CA: signs the MQTT client certificate of an enrolling gateway.

The gateway makes its TLS key on the device and sends a certificate signing request; the key
never leaves the gateway. The certificate names the gateway (CN = gateway id, whatever the
request asked for), is for client authentication only and lives ``cert_days``. The CA's key is
a file outside the database (like the key-encryption key), read when a gateway enrols. The
operator's broker trusts this CA for client certificates (``cafile``, docs/mosquitto.conf).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ValidationError


@dataclass(frozen=True)
class IssuedCert:
    pem: str
    serial: str                 # hex
    fingerprint: str            # sha256:<hex> of the DER
    not_after: float


class GatewayCa:
    def __init__(self, cert_pem: bytes, key_pem: bytes) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        self.cert = x509.load_pem_x509_certificate(cert_pem)
        self.key = serialization.load_pem_private_key(key_pem, password=None)

    @classmethod
    def load(cls, cert: str, key: str) -> "GatewayCa":
        return cls(Path(cert).read_bytes(), Path(key).read_bytes())

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, gateway_id: str, *, now: float, days: int) -> IssuedCert:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise ValidationError("csr_pem is not a PEM certificate signing request", field="csr_pem",
                                  fix="send the request `gateway enrol` makes (PEM, -----BEGIN CERTIFICATE REQUEST-----)") \
                from None
        if not csr.is_signature_valid:
            raise ValidationError("the certificate signing request is not signed by its own key", field="csr_pem",
                                  fix="make the request again on the gateway")
        pub = csr.public_key()
        if not (isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name in ("secp256r1", "secp384r1")) \
                and not isinstance(pub, ed25519.Ed25519PublicKey):
            raise ValidationError("the gateway's TLS key must be EC P-256/P-384 or Ed25519", field="csr_pem",
                                  fix="make the key with `gateway enrol` (EC P-256)")
        start = dt.datetime.fromtimestamp(now, dt.timezone.utc) - dt.timedelta(minutes=5)
        end = start + dt.timedelta(days=days)
        issuer_key = self.key
        algo = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
                .issuer_name(self.cert.subject).public_key(pub).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(issuer_key, algo))  # type: ignore[arg-type]
        der = cert.public_bytes(serialization.Encoding.DER)
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM).decode(), f"{cert.serial_number:x}",
                          "sha256:" + hashlib.sha256(der).hexdigest(), end.timestamp())
