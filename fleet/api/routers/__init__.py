"""One router per area of the API, each small; :data:`ROUTERS` is mounted under ``/api/v1``."""
from __future__ import annotations

from . import (audit, auth, catalog, config, installations, items, kits, monitoring, privacy, releases, rollouts,
               stats, stock, users)

ROUTERS = [auth.router, users.router, catalog.router, items.router, stock.router, kits.router, installations.router,
           privacy.router, config.router, releases.router, rollouts.router, monitoring.router, stats.router,
           audit.router]

from . import devicekeys, enrolment  # noqa: E402 - gateway enrolment and device keys (issue 10)

ROUTERS += [enrolment.router, devicekeys.router]
