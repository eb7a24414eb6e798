"""The gateway's client of the fleet's enrolment endpoint (``POST /api/v1/enrolment/redeem``).

Standard library only (``http.client`` + ``ssl``: nothing to vendor on the gateway). The fleet
is reached over HTTPS only — the request carries the one-time code and the answer the broker
password — and its certificate is checked before a byte of the request is sent, one of three
ways:

* ``pin="sha256:<hex>"``: the SHA-256 of the server's certificate (DER), printed next to the
  code by the fleet; any other certificate ends the connection (no CA needed);
* ``ca_file``: the certificate must chain to that CA and name the host;
* neither: the system's trust store, host name checked.

Errors become :class:`EnrolError` (a ``GatewayError``) with what went wrong and the fix; a
refusal by the fleet (problem details) keeps its reason and fix.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import GatewayError

REDEEM_PATH = "/api/v1/enrolment/redeem"


class EnrolError(GatewayError):
    """Enrolment failed (``reason``: bad_url, unreachable, tls, pin_mismatch, refused, bad_answer,
    local; ``fix``: what to do). Nothing is written on the gateway when this is raised."""

    reason: str
    fix: str
    status: int | None

    def __init__(self, message: str, *, reason: str, fix: str = "", status: int | None = None) -> None:
        super().__init__(message, reason=reason, fix=fix, status=status)


def _norm_pin(pin: str) -> str:
    p = pin.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(p) != 64 or any(c not in "0123456789abcdef" for c in p):
        raise EnrolError(f"--pin {pin!r} is not sha256:<64 hex digits>", reason="bad_url",
                         fix="copy the fingerprint printed next to the code (sha256:…)")
    return p


class EnrolmentClient:
    def __init__(self, fleet_url: str, *, ca_file: str | None = None, pin: str | None = None,
                 timeout_s: float = 30.0) -> None:
        u = urlsplit(fleet_url.rstrip("/"))
        if u.scheme != "https" or not u.hostname:
            raise EnrolError(f"--fleet {fleet_url!r} is not an https:// URL", reason="bad_url",
                             fix="give the fleet service's address, e.g. --fleet https://fleet.example.no "
                                 "(the code and the broker password never travel over plain HTTP)")
        self.host, self.port = u.hostname, u.port or 443
        self.base = u.path or ""
        self.url = fleet_url.rstrip("/")
        self.pin = _norm_pin(pin) if pin else None
        self.ca_file = ca_file
        self.timeout_s = timeout_s

    def _context(self) -> ssl.SSLContext:
        if self.pin:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE          # the pin below is the check
        else:
            try:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise EnrolError(f"cannot read the CA file {self.ca_file}: {exc}", reason="tls",
                                 fix="give --ca the fleet's CA certificate (PEM)") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s, context=self._context())
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise EnrolError(f"the certificate of {self.url} is not trusted: {exc.verify_message}", reason="tls",
                             fix="give --ca with the CA that signed it, or --pin with the fingerprint printed next "
                                 "to the code") from None
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise EnrolError(f"cannot reach {self.url}: {exc}", reason="unreachable",
                             fix="check --fleet, the network and the time of day of this gateway (TLS needs a "
                                 "correct clock)") from None
        if self.pin:
            der = conn.sock.getpeercert(binary_form=True) if conn.sock else None
            got = hashlib.sha256(der or b"").hexdigest()
            if got != self.pin:
                conn.close()
                raise EnrolError(f"the certificate of {self.url} is sha256:{got}, not the pinned sha256:{self.pin}",
                                 reason="pin_mismatch", fix="check --fleet and --pin against what the fleet printed "
                                                            "next to the code; do not enrol through this network")
        return conn

    def redeem(self, *, code: str, gateway_id: str, x25519_public: str, csr_pem: str) -> dict[str, Any]:
        body = json.dumps({"code": code, "gateway_id": gateway_id, "x25519_public": x25519_public,
                           "csr_pem": csr_pem}).encode()
        conn = self._connect()
        try:
            conn.request("POST", self.base + REDEEM_PATH, body=body,
                         headers={"content-type": "application/json", "accept": "application/json"})
            resp = conn.getresponse()
            raw = resp.read(1 << 20)
        except (OSError, http.client.HTTPException, socket.timeout) as exc:
            raise EnrolError(f"the enrolment request to {self.url} failed: {exc}", reason="unreachable",
                             fix="try again; the code is used only when the fleet answered") from None
        finally:
            conn.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if resp.status != 200:
            detail = doc.get("detail") if isinstance(doc, dict) else None
            errs = doc.get("errors") if isinstance(doc, dict) else None
            fix = errs[0].get("fix", "") if isinstance(errs, list) and errs and isinstance(errs[0], dict) else ""
            raise EnrolError(f"the fleet refused the enrolment ({resp.status}): {detail or raw[:200]!r}",
                             reason="refused", fix=fix or "ask for a new code", status=resp.status)
        if not isinstance(doc, dict) or doc.get("gateway_id") != gateway_id or not isinstance(doc.get("mqtt"), dict):
            raise EnrolError(f"the answer of {self.url} is not an enrolment", reason="bad_answer",
                             fix="check --fleet: it must be the fleet service")
        return doc
