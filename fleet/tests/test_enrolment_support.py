"""Shared set-up of the enrolment and device-key tests (imported by test_enrol*.py, test_device_keys*.py):
the fleet's enrolment settings (a gateway CA, the broker's CA, a control key) and the fleet
service on a real TLS socket (uvicorn in a thread) for ``gateway enrol`` to talk to."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Enrolment:
    settings: Path            # the FLEET_ENROLMENT file
    gateway_ca: Path          # the CA the broker trusts for client certificates
    gateway_ca_key: Path
    broker_pki: Any           # testkit.pki.Pki: the broker's server certificate and its CA
    control_pub: bytes


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    c, k = directory / f"{name}.pem", directory / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return c, k


def make_enrolment(tmp: Path, *, broker_host: str = "localhost", broker_port: int = 8883,
                   public_url: str = "", tls_pin: str = "") -> Enrolment:
    from contracts.control import generate_key
    from testkit.pki import make_pki

    ca, ca_key = make_ca(tmp / "gateway-ca", "wt-gateway-ca")
    broker = make_pki(tmp / "broker-pki", prefix="broker-")
    priv, pub = generate_key()
    control = tmp / "control.key"
    control.write_bytes(priv)
    control.chmod(0o600)
    settings = tmp / "enrolment.toml"
    settings.write_text(f'public_url = "{public_url}"\ntls_pin = "{tls_pin}"\n'
                        f'[broker]\nhost = "{broker_host}"\nport = {broker_port}\nca = "{broker.ca}"\n'
                        f'[gateway_ca]\ncert = "{ca}"\nkey = "{ca_key}"\n'
                        f'[control]\nkey = "{control}"\n')
    return Enrolment(settings, ca, ca_key, broker, pub)


class TlsServer:
    """The fleet app on https://localhost:<port> (uvicorn in a thread), certificate from ``pki``."""

    def __init__(self, app, pki) -> None:  # noqa: ANN001
        import uvicorn

        from testkit.broker import free_port

        self.port = free_port()
        self.pki = pki
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    ssl_certfile=str(pki.server_cert), ssl_keyfile=str(pki.server_key),
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="fleet-tls", daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def pin(self) -> str:
        import hashlib

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_pem_x509_certificate(self.pki.server_cert.read_bytes())
        return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def __enter__(self) -> "TlsServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the fleet service did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def gateway_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `gateway` command line in its own interpreter (the fleet never imports the gateway)."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def gateway_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def gateway_request(gateway_id: str) -> tuple[Any, dict[str, str], bytes]:
    """What `gateway enrol` makes on a gateway: (X25519 private key, the redeem body without the code,
    the TLS private key as PEM)."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.x509.oid import NameOID

    xk = X25519PrivateKey.generate()
    tls = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])).sign(tls, hashes.SHA256()))
    raw = xk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return xk, {"gateway_id": gateway_id, "x25519_public": base64.b64encode(raw).decode(),
                "csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode()}, \
        tls.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def enrol_in_process(api, headers: dict[str, str], gateway_id: str, answer: dict | None = None) -> Any:  # noqa: ANN001
    """Enrol ``gateway_id`` through the API (code, then redeem); returns the gateway's X25519 private key
    (``answer``, if given, receives the fleet's answer and the TLS key under ``tls_key_pem``)."""
    r = api.post(f"/api/v1/gateways/{gateway_id}/enrolment-codes", headers=headers, json={})
    assert r.status_code == 201, r.text
    xk, body, tls_key = gateway_request(gateway_id)
    r = api.post("/api/v1/enrolment/redeem", json={**body, "code": r.json()["code"]})
    assert r.status_code == 200, r.text
    if answer is not None:
        answer.update(r.json(), tls_key_pem=tls_key)
    return xk
