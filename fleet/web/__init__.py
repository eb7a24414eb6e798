"""The technician web app, served by the fleet service under ``/web`` (docs/fleet-web.md).

Made for a phone in someone's hallway: today's jobs, the installation with the checklist of the
national guidance, consent, commissioning with pairing progress and a test alarm per device
live (server-sent events), the rule that an installation is not installed until every device's
test alarm was seen at the platform, the handover report, deinstall and return. Bokmål and
English. Server-rendered HTML that works without JavaScript; a little script adds the live
updates. No build step, nothing fetched from elsewhere at run time.

It is a client of the same services as the API, with the API's authentication (the login
token, in an HttpOnly SameSite=Strict cookie) and authorisation (role × municipality); see
``_session`` for the cookie and CSRF rules and ``_web`` for how errors become pages.
"""
from ._routes import router

__all__ = ["router"]
