"""Enrolment: the settings, the records, the repository port and the refusals."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from fleet.errors import NotAuthenticated, ValidationError

REASONS = ("unknown", "expired", "used", "other_gateway")


class CodeRefused(NotAuthenticated):
    """An enrolment code that does not work (``reason``: one of :data:`REASONS`); nothing was issued."""

    code = "enrolment_code_refused"

    def __init__(self, message: str, *, reason: str, fix: str) -> None:
        super().__init__(message, reason=reason, fix=fix, field="code")
        self.reason = reason


@dataclass(frozen=True)
class EnrolmentSettings:
    """The fleet's side of enrolment (``FLEET_ENROLMENT``: a TOML file; docs/fleet-service.md)."""

    broker_host: str
    gateway_ca_cert: str                 # PEM: the CA that signs gateways' MQTT client certificates
    gateway_ca_key: str                  # its private key (mode 0600, outside the database)
    broker_port: int = 8883
    broker_ca: str = ""                  # PEM: the CA of the broker's server certificate (a gateway trust anchor)
    control_key: str = ""                # PEM: the fleet's ed25519 control key (public, or the private one)
    cert_days: int = 825
    code_ttl_s: float = 1800.0           # a code lives 30 minutes unless asked otherwise ...
    max_code_ttl_s: float = 86400.0      # ... and never more than a day
    public_url: str = ""                 # what a technician gives `gateway enrol --fleet`
    tls_pin: str = ""                    # sha256:<hex> of that server's certificate, printed next to the code

    @classmethod
    def load(cls, path: str | Path) -> "EnrolmentSettings":
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValidationError(f"cannot read the enrolment settings {path}: {exc}", field="FLEET_ENROLMENT",
                                  fix="point FLEET_ENROLMENT at a readable TOML file (docs/fleet-service.md)") from None
        flat: dict[str, Any] = {k: v for k, v in raw.items() if not isinstance(v, dict)}
        for section, body in raw.items():
            if isinstance(body, dict):
                flat.update({f"{section}_{k}": v for k, v in body.items()})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValidationError(f"unknown key {unknown[0]} in {path}", field=unknown[0],
                                  fix=f"known keys: {', '.join(sorted(names))} ([broker] host/port/ca, "
                                      "[gateway_ca] cert/key)")
        for need in ("broker_host", "gateway_ca_cert", "gateway_ca_key"):
            if not flat.get(need):
                raise ValidationError(f"{path} has no {need}", field=need,
                                      fix="set [broker] host and [gateway_ca] cert, key (docs/fleet-service.md)")
        return cls(**flat)


@dataclass(frozen=True)
class CodeRecord:
    code_hash: str
    gateway_id: str
    municipality_id: str | None
    created_at: float
    created_by: str
    expires_at: float
    used_at: float | None = None
    used_from: str | None = None


@dataclass(frozen=True)
class GatewayIdentity:
    gateway_id: str
    x25519_public: str                   # base64 of the raw 32 bytes
    cert_serial: str
    cert_fingerprint: str
    cert_not_after: float
    mqtt_username: str
    mqtt_password_hash: str
    enrolled_at: float
    code_created_by: str
    revoked_at: float | None = None

    def view(self) -> dict[str, Any]:
        """What a read shows (public keys' fingerprints, the certificate; never a secret or hash)."""
        import base64

        from contracts.device_keys import fingerprint

        return {"gateway_id": self.gateway_id, "enrolled_at": self.enrolled_at, "code_created_by": self.code_created_by,
                "x25519_fingerprint": fingerprint(base64.b64decode(self.x25519_public)),
                "cert_serial": self.cert_serial, "cert_fingerprint": self.cert_fingerprint,
                "cert_not_after": self.cert_not_after, "mqtt_username": self.mqtt_username,
                "revoked_at": self.revoked_at}


class EnrolmentRepo(Protocol):
    def add_code(self, rec: CodeRecord) -> None: ...
    def code(self, code_hash: str) -> CodeRecord | None: ...
    def mark_used(self, code_hash: str, *, at: float, peer: str | None) -> bool: ...
    def put_identity(self, ident: GatewayIdentity) -> bool: ...       # True: it replaced an earlier one
    def identity(self, gateway_id: str) -> GatewayIdentity | None: ...
    def identities(self) -> list[GatewayIdentity]: ...
    def revoke(self, gateway_id: str, *, at: float) -> bool: ...
    def release_keys_pem(self) -> list[str]: ...
