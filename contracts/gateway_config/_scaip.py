"""Cross-field checks of ``[scaip]`` and of which routes carry alarms (called by ``_validate``).

Types and ranges are checked by the generic validator from the schema's metadata; this
module adds what one field cannot say on its own: a SIP URI that parses, a controller id
of 1-16 digits, TLS settings only with ``transport = "tls"``, files that exist, and that
an installation has at least one route for its alarms (MQTT, SCAIP, or both).
The password is never echoed in an issue.
"""
from __future__ import annotations

import re
from pathlib import Path

from contracts.gateway_config._errors import NO_VALUE, ConfigIssue
from contracts.gateway_config._schema import GatewayConfig, ScaipRole, ScaipTransport

#: ``sip:`` / ``sips:`` URI: optional user, host (name, IPv4 or [IPv6]), optional port and params.
SIP_URI_RE = re.compile(r"^sips?:(?:[^@\s;?<>]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?(?:;[^\s<>]*)?$")
CID_RE = re.compile(r"^[0-9]{1,16}$")
HBI_DIGITS = 4          # hbi 1..4 (0 leaves the interval unchanged)


def route_issues(cfg: GatewayConfig) -> list[ConfigIssue]:
    """Every problem of ``[scaip]`` and of the uplink/SCAIP combination."""
    out: list[ConfigIssue] = []
    up, s = cfg.uplink, cfg.scaip
    if not up.enabled and not s.enabled:
        out.append(ConfigIssue("uplink.enabled", False, "no route for alarms: MQTT is off and [scaip] is not enabled",
                               "set enabled = true in [uplink], or configure [scaip] with enabled = true"))
    if not up.enabled and up.fallback.enabled:
        out.append(ConfigIssue("uplink.fallback.enabled", True, "a fallback broker needs the MQTT uplink",
                               "set uplink.enabled = true, or fallback.enabled = false"))
    if not s.enabled:
        return out
    if not up.enabled and s.role is ScaipRole.FALLBACK:
        out.append(ConfigIssue("scaip.role", s.role.value, "MQTT is off, so the centre is the only route for alarms",
                               'set role = "primary"'))
    if not s.centre:
        out.append(ConfigIssue("scaip.centre", "", "required when [scaip] is enabled",
                               'set e.g. centre = "sip:arc@alarm.example.no:5060"'))
    elif not SIP_URI_RE.fullmatch(s.centre):
        out.append(ConfigIssue("scaip.centre", s.centre, "is not a SIP URI",
                               'set e.g. centre = "sip:arc@alarm.example.no:5060" (host and port, no DNS SRV)'))
    elif s.centre.startswith("sips:") and s.transport is not ScaipTransport.TLS:
        out.append(ConfigIssue("scaip.transport", s.transport.value, "a sips: centre needs TLS",
                               'set transport = "tls"'))
    if s.proxy and not SIP_URI_RE.fullmatch(s.proxy):
        out.append(ConfigIssue("scaip.proxy", s.proxy, "is not a SIP URI",
                               'set e.g. proxy = "sip:proxy.example.no:5060", or leave it empty'))
    if not CID_RE.fullmatch(s.cid):
        out.append(ConfigIssue("scaip.cid", s.cid, "must be 1-16 digits (this unit's controller id at the centre)",
                               'set e.g. cid = "4700112233"'))
    if s.password and not s.username:
        out.append(ConfigIssue("scaip.username", "", "a password is set but no username",
                               "set username to the account the centre gave this unit"))
    tls = s.tls
    if s.transport is not ScaipTransport.TLS and (tls.ca or tls.cert or tls.key or tls.server_name):
        out.append(ConfigIssue("scaip.transport", s.transport.value, "[scaip.tls] is set but the transport is not tls",
                               'set transport = "tls", or remove [scaip.tls]'))
    if bool(tls.cert) != bool(tls.key):
        out.append(ConfigIssue("scaip.tls.cert", tls.cert or "", "cert and key must be given together",
                               "set both cert and key, or neither"))
    for attr in ("ca", "cert", "key"):
        path = getattr(tls, attr)
        if path and not Path(path).is_file():
            out.append(ConfigIssue(f"scaip.tls.{attr}", NO_VALUE if attr == "key" else path, "file not found",
                                   "give the path of an existing PEM file"))
    if len(s.hbi_intervals_s) != HBI_DIGITS:
        out.append(ConfigIssue("scaip.hbi_intervals_s", list(s.hbi_intervals_s),
                               f"must list {HBI_DIGITS} intervals, one for each hbi 1-4",
                               "set e.g. hbi_intervals_s = [60, 300, 900, 3600]"))
    return out
