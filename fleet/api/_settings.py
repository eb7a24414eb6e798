"""The fleet service's settings: one frozen object, the only place its defaults live.

Override order (command line > environment > default) lives in :func:`settings_from_env`
and ``fleet serve`` only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..access import LoginPolicy

SESSION_TTL_S = 30 * 60          # a login token lives 30 minutes (a web app refreshes by logging in again)
MAX_AUTH_CACHE_S = 60.0
AUTH_CACHE_S = 5.0               # a worker re-checks a token it verified after at most 5 s (fleet/api/_authcache.py)


@dataclass(frozen=True)
class ApiSettings:
    db_url: str                                   # the only database credentials: the server holds them
    session_ttl_s: float = SESSION_TTL_S
    auth_cache_s: float = AUTH_CACHE_S            # FLEET_AUTH_CACHE_S: revocation reaches other workers within it; 0 = off
    max_body_bytes: int = 1 << 20                 # 1 MiB for every request body ...
    max_upload_bytes: int = 64 << 20              # ... except release uploads (POST /api/v1/releases)
    db_threads: int = 8                           # worker threads = database connections per worker process
    kek_file: str | None = None                   # FLEET_KEK_FILE: key-encryption keys for config secrets
    enrolment_file: str | None = None             # FLEET_ENROLMENT: gateway enrolment settings (fleet/enrolment)
    mqtt_url: str | None = None                   # FLEET_MQTT: broker for config pushes (host:port)
    mqtt: Any = None                              # fleet.mqtt.BrokerSettings for config pushes (wins over mqtt_url;
                                                  # the embedded app of the CLI passes its --broker options)
    trusted_proxies: tuple[str, ...] = ()         # X-Forwarded-For is believed only from these peers
    metrics_token: str | None = None              # FLEET_METRICS_TOKEN: if set, /metrics needs it as bearer
    login_policy: LoginPolicy = field(default_factory=LoginPolicy)

    def with_(self, **changes: Any) -> "ApiSettings":
        return replace(self, **changes)


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> ApiSettings:
    """Settings from ``FLEET_*`` variables; keyword ``overrides`` (the command line) win when not None."""
    env = os.environ if env is None else env
    from ..store import default_url

    base: dict[str, Any] = {
        "db_url": env.get("FLEET_DB") or default_url(),
        "kek_file": env.get("FLEET_KEK_FILE") or None,
        "enrolment_file": env.get("FLEET_ENROLMENT") or None,
        "mqtt_url": env.get("FLEET_MQTT") or None,
        "metrics_token": env.get("FLEET_METRICS_TOKEN") or None,
        "trusted_proxies": tuple(p.strip() for p in env.get("FLEET_TRUSTED_PROXIES", "").split(",") if p.strip()),
    }
    if env.get("FLEET_DB_THREADS"):
        base["db_threads"] = int(env["FLEET_DB_THREADS"])
    if env.get("FLEET_SESSION_TTL_S"):
        base["session_ttl_s"] = float(env["FLEET_SESSION_TTL_S"])
    if env.get("FLEET_AUTH_CACHE_S"):
        base["auth_cache_s"] = float(env["FLEET_AUTH_CACHE_S"])
    base.update({k: v for k, v in overrides.items() if v is not None})
    if not 0 <= base.get("auth_cache_s", AUTH_CACHE_S) <= MAX_AUTH_CACHE_S:
        from ..errors import ValidationError

        raise ValidationError(f"FLEET_AUTH_CACHE_S must be 0 (off) to {MAX_AUTH_CACHE_S:g} seconds: it bounds how long "
                              "a revoked token keeps working in the other workers", field="FLEET_AUTH_CACHE_S")
    return ApiSettings(**base)
