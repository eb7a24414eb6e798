"""The `fleet` command line's client of the fleet service (docs/fleet.md, "Server or one machine").

``connect(cfg)`` gives a :class:`FleetClient` for ``--server`` / ``FLEET_SERVER``, or for the
same application run in this process over the local database; its typed calls return the
decoded JSON and raise the fleet's errors (problem details translated, exit codes kept).

Module map: ``_connect`` which service and as whom (composition root), ``_http`` requests,
paging, tokens, ``_errors`` problem details -> FleetError, ``_api`` typed calls per area,
``_asgi`` the in-process transport (no socket).
"""
from ._api import FleetClient
from ._connect import connect, normalise_server, session_matches
from ._errors import ServerError, ServerUnavailable, error_from_problem

__all__ = ["FleetClient", "ServerError", "ServerUnavailable", "connect", "error_from_problem", "normalise_server",
           "session_matches"]
