"""Enrolment: a one-time code for a gateway, redeemed by the gateway for its identity.

1. A technician (``install.write`` in the gateway's municipality) asks for a code for gateway
   ``gw-…``: 80 random bits, shown once, stored as SHA-256, valid ``code_ttl_s`` (30 min).
2. On the gateway, ``gateway enrol --fleet URL --code CODE`` makes its keys (X25519 for the
   device keys the fleet seals to it, an EC P-256 TLS key for the broker) and redeems the code
   over verified HTTPS with its public key and a certificate signing request.
3. :meth:`EnrolmentService.redeem` checks the code (known, not expired, not used, for this
   gateway), marks it used in the same transaction that stores the identity (so it works
   once, even if two redemptions race), signs the client certificate (CN = gateway id),
   makes the broker password (kept only as a Mosquitto hash) and answers with everything the
   gateway must trust: the broker and its CA, the fleet's control key, the release keys.

A gateway enrolled again (a new SD card) replaces its identity: the device keys are sealed to
its new key from the next push on, the old password stops at the next password-file export.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.clock import Clock
from fleet.enrolment._ca import GatewayCa
from fleet.enrolment._model import CodeRecord, CodeRefused, EnrolmentRepo, EnrolmentSettings, GatewayIdentity
from fleet.enrolment._secrets import code_hash, mosquitto_hash, new_code, new_password, normalise
from fleet.errors import NotFound, ValidationError

NEW_CODE_FIX = "ask the technician's fleet for a new code (POST /api/v1/gateways/{gw}/enrolment-codes)"


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _control_public_pem(path: str) -> str:
    """The fleet's control key as a public PEM (the file may hold the public or the private key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        priv = serialization.load_pem_private_key(data, password=None)
        if not isinstance(priv, Ed25519PrivateKey):
            raise ValidationError("the control key is not ed25519", field="control_key", fix="give the ed25519 key")
        pub = priv.public_key()
    else:
        pub = serialization.load_pem_public_key(data)       # type: ignore[assignment]
        if not isinstance(pub, Ed25519PublicKey):
            raise ValidationError("the control key is not ed25519", field="control_key", fix="give the ed25519 key")
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass
class EnrolmentService:
    repo: EnrolmentRepo
    clock: Clock
    settings: EnrolmentSettings | None = None

    def _settings(self) -> EnrolmentSettings:
        if self.settings is None:
            raise ValidationError("this fleet service is not set up for enrolment", field="FLEET_ENROLMENT",
                                  fix="set FLEET_ENROLMENT to its settings file (broker, gateway CA; "
                                      "docs/fleet-service.md)")
        return self.settings

    # -- codes -------------------------------------------------------------------
    def create_code(self, gateway_id: str, *, municipality: str | None, by: str,
                    ttl_s: float | None = None) -> tuple[str, CodeRecord]:
        st = self._settings()
        ttl = st.code_ttl_s if ttl_s is None else ttl_s
        if not 60 <= ttl <= st.max_code_ttl_s:
            raise ValidationError(f"ttl_s = {ttl}: a code lives 60 s to {int(st.max_code_ttl_s)} s", field="ttl_s",
                                  fix=f"leave it out ({int(st.code_ttl_s)} s) or give a value in that range")
        code = new_code()
        now = self.clock.time()
        rec = CodeRecord(code_hash(code), gateway_id, municipality, now, by, now + ttl)
        self.repo.add_code(rec)
        return code, rec

    # -- redemption ----------------------------------------------------------------
    def check_code(self, code: str, gateway_id: str) -> CodeRecord:
        now = self.clock.time()
        rec = self.repo.code(code_hash(code)) if normalise(code) else None
        fix = NEW_CODE_FIX.format(gw=gateway_id)
        if rec is None:
            raise CodeRefused("this enrolment code is not known (mistyped, or made by another fleet)", reason="unknown",
                              fix="check the code (16 characters, as XXXX-XXXX-XXXX-XXXX) and --fleet; or " + fix)
        if rec.gateway_id != gateway_id:
            raise CodeRefused(f"this enrolment code was made for gateway {rec.gateway_id}, not {gateway_id}",
                              reason="other_gateway", fix=f"set gateway.id = \"{rec.gateway_id}\", or {fix}")
        if rec.used_at is not None:
            raise CodeRefused(f"this enrolment code was already used at {_utc(rec.used_at)} (a code works once)",
                              reason="used", fix=fix)
        if now >= rec.expires_at:
            raise CodeRefused(f"this enrolment code expired at {_utc(rec.expires_at)}", reason="expired", fix=fix)
        return rec

    def redeem(self, code: str, gateway_id: str, x25519_public_b64: str, csr_pem: str, *,
               peer: str | None) -> tuple[dict[str, Any], GatewayIdentity, bool]:
        """The gateway's enrolment bundle, its stored identity and whether it replaced an earlier one."""
        st = self._settings()
        rec = self.check_code(code, gateway_id)
        try:
            raw = base64.b64decode(x25519_public_b64, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValidationError("x25519_public is not the base64 of a 32-byte X25519 public key",
                                  field="x25519_public", fix="send the key `gateway enrol` makes")
        now = self.clock.time()
        ca = GatewayCa.load(st.gateway_ca_cert, st.gateway_ca_key)
        cert = ca.sign(csr_pem, gateway_id, now=now, days=st.cert_days)
        if not self.repo.mark_used(rec.code_hash, at=now, peer=peer):   # a racing redemption won
            raise CodeRefused("this enrolment code was already used (a code works once)", reason="used",
                              fix=NEW_CODE_FIX.format(gw=gateway_id))
        password = new_password()
        ident = GatewayIdentity(gateway_id, base64.b64encode(raw).decode(), cert.serial, cert.fingerprint,
                                cert.not_after, gateway_id, mosquitto_hash(password), now, rec.created_by)
        replaced = self.repo.put_identity(ident)
        bundle = {
            "gateway_id": gateway_id, "enrolled_at": now,
            "broker": {"host": st.broker_host, "port": st.broker_port,
                       "ca_pem": Path(st.broker_ca).read_text() if st.broker_ca else None},
            "mqtt": {"username": gateway_id, "password": password, "cert_pem": cert.pem, "cert_serial": cert.serial,
                     "cert_not_after": cert.not_after},
            "trust": {"fleet_key_pem": _control_public_pem(st.control_key) if st.control_key else None,
                      "release_keys_pem": self.repo.release_keys_pem()},
        }
        return bundle, ident, replaced

    # -- reads and revocation ------------------------------------------------------
    def identity(self, gateway_id: str) -> GatewayIdentity:
        ident = self.repo.identity(gateway_id)
        if ident is None:
            raise NotFound(f"gateway {gateway_id} is not enrolled; make a code with POST "
                           f"/api/v1/gateways/{gateway_id}/enrolment-codes and run `gateway enrol` on it")
        return ident

    def revoke(self, gateway_id: str) -> GatewayIdentity:
        self.identity(gateway_id)
        self.repo.revoke(gateway_id, at=self.clock.time())
        return self.identity(gateway_id)

    def passwd_file(self) -> str:
        """Mosquitto password-file lines of every enrolled, not revoked gateway (hashes only)."""
        return "".join(f"{i.mqtt_username}:{i.mqtt_password_hash}\n" for i in self.repo.identities()
                       if i.revoked_at is None)
