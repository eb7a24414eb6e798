"""wt.config/1 and wt.config-applied/1 as the fleet's config records (pure; decoding never raises).

The wire form is the shared contract (:mod:`contracts.payloads`, :mod:`contracts.topics`);
this module maps it to and from :class:`ConfigVersion` / :class:`AppliedReport`.
"""
from __future__ import annotations

from contracts import payloads as _p
from contracts.payloads import APPLIED_SCHEMA, CONFIG_SCHEMA, Rejected
from contracts.topics import Kind, Topics, parse_gateway
from fleet.config._model import AppliedReport, AppliedStatus, ConfigVersion


def config_topic(gateway_id: str) -> str:
    return Topics(gateway_id).config


def applied_topic(gateway_id: str) -> str:
    return Topics(gateway_id).config_applied


def encode_config(v: ConfigVersion) -> bytes:
    """Retained desired configuration; ``hash`` is an additive field (docs/fleet-config.md)."""
    return _p.encode_config(version=v.version, config=v.config, hash=v.hash)


def decode_applied(topic: str, payload: bytes, *, now: float) -> AppliedReport | Rejected:
    gw = parse_gateway(topic, Kind.CONFIG_APPLIED)
    if gw is None:
        return Rejected(f"topic {topic!r} is not {Topics('<gw>').config_applied}", APPLIED_SCHEMA, "topic")
    rep = _p.decode_applied(payload)
    if isinstance(rep, Rejected):
        return rep
    return AppliedReport(gw, rep.version, AppliedStatus(rep.status.value), rep.error, now, rep.hash)


__all__ = ["APPLIED_SCHEMA", "CONFIG_SCHEMA", "Rejected", "applied_topic", "config_topic", "decode_applied",
           "encode_config"]
