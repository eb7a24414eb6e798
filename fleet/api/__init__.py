"""The fleet service: a REST API (FastAPI on uvicorn) that is the only holder of database
credentials. ``create_app(settings)`` builds the ASGI app; ``fleet serve`` runs it.

Module map (fleet/api/README.md): ``_app`` factory, ``_settings`` frozen settings, ``_context``
per-request composition root (bearer token -> Actor, services over one transaction),
``_stores`` one Store per worker thread, ``_problems`` RFC 9457 errors, ``_limits`` body size,
``_metrics`` Prometheus, ``_pagination`` lists, ``routers/`` one small router per area,
``openapi`` the checked-in contract (docs/fleet-openapi.json).
"""
from ._app import API_VERSION, create_app
from ._settings import ApiSettings, settings_from_env

__all__ = ["API_VERSION", "ApiSettings", "create_app", "settings_from_env"]
