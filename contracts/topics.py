"""The MQTT topic tree of docs/mqtt.md: every topic string is built and parsed here.

Tree: ``wt/v1/gw/{gateway}/{kind}`` for gateways and ``wt/v1/dev/{device}/{kind}`` for
GPS trackers that publish directly over their cellular modem. Builders return strings;
``parse`` turns a topic back into ``(kind, gateway_id, device_id)`` and returns None for
anything that is not a concrete topic of this tree (it never raises, whatever it is given).

Invariant: no other module spells ``wt/v1/...`` (tests excepted; the MicroPython firmware
cannot import this package and is cross-checked by ``contracts/tests/test_topics.py``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

PREFIX = "wt/v1"
GATEWAY_SCOPE = "gw"
DEVICE_SCOPE = "dev"
SHARE_GROUP = "fleet"          # fleet ingest workers' shared-subscription group
ANY = "+"                      # single-level wildcard: any gateway / any device
_SHARE = "$share/"


class Kind(str, enum.Enum):
    """The leaf of a topic (``alarm``, ``config/applied`` ...)."""

    ALARM = "alarm"                    # gw/dev -> platform, wt.alarm/1
    EVENT = "event"                    # gw/dev -> platform, wt.event/1
    ACK = "ack"                        # platform -> gw/dev, wt.ack/1
    STATE = "state"                    # gw/dev -> all, retained, wt.state/1
    HEALTH = "health"                  # gw -> fleet, wt.health/1
    CONFIG = "config"                  # fleet -> gw, retained, wt.config/1
    CONFIG_APPLIED = "config/applied"  # gw -> fleet, retained, wt.config-applied/1
    CMD = "cmd"                        # fleet -> gw, wt.cmd/1
    CMD_RESULT = "cmd/result"          # gw -> fleet, wt.cmd-result/1


GATEWAY_KINDS: tuple[Kind, ...] = tuple(Kind)
DEVICE_KINDS: tuple[Kind, ...] = (Kind.ALARM, Kind.EVENT, Kind.ACK, Kind.STATE)
# What a fleet ingest worker subscribes to (shared), in this order.
FLEET_INGEST_KINDS: tuple[Kind, ...] = (Kind.HEALTH, Kind.STATE, Kind.CONFIG_APPLIED, Kind.CMD_RESULT,
                                        Kind.ALARM, Kind.EVENT, Kind.ACK)
_BY_LEAF: dict[str, Kind] = {k.value: k for k in Kind}


def _kind(kind: Kind | str) -> str:
    return Kind(kind).value


# --- builders ---------------------------------------------------------------------------

def gateway_topic(gateway_id: str, kind: Kind | str) -> str:
    """``wt/v1/gw/{gateway_id}/{kind}``; ``gateway_id`` may be ``+`` for a filter."""
    return f"{PREFIX}/{GATEWAY_SCOPE}/{gateway_id}/{_kind(kind)}"


def device_topic(device_id: str, kind: Kind | str) -> str:
    """``wt/v1/dev/{device_id}/{kind}`` (a tracker's own topics; ``+`` for a filter)."""
    k = Kind(kind)
    if k not in DEVICE_KINDS:
        raise ValueError(f"{k.value!r} is not a device topic (one of {[d.value for d in DEVICE_KINDS]})")
    return f"{PREFIX}/{DEVICE_SCOPE}/{device_id}/{k.value}"


def all_gateways(kind: Kind | str) -> str:
    """Filter for one kind from every gateway: ``wt/v1/gw/+/{kind}``."""
    return gateway_topic(ANY, kind)


def all_devices(kind: Kind | str) -> str:
    """Filter for one kind from every tracker: ``wt/v1/dev/+/{kind}``."""
    return device_topic(ANY, kind)


def gateway_subtree(gateway_id: str = ANY) -> str:
    """Everything of one gateway (``wt/v1/gw/{gw}/#``), e.g. a broker ACL or a debug tap."""
    return f"{PREFIX}/{GATEWAY_SCOPE}/{gateway_id}/#"


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    """MQTT 5 shared subscription ``$share/{group}/{filter}`` (the broker splits the load)."""
    return f"{_SHARE}{group}/{topic_filter}"


def strip_share(topic_filter: str) -> str:
    """The filter without a ``$share/<group>/`` prefix (unchanged if it has none)."""
    if topic_filter.startswith(_SHARE):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else ""
    return topic_filter


def fleet_ingest_filters(group: str | None = None) -> tuple[str, ...]:
    """The fleet ingest worker's filters: ``wt/v1/gw/+/{kind}`` per FLEET_INGEST_KINDS,
    shared in ``group`` when one is given."""
    plain = tuple(all_gateways(k) for k in FLEET_INGEST_KINDS)
    return plain if group is None else tuple(shared(f, group) for f in plain)


def platform_filters(*, events: bool = False, devices: bool = True, state: bool = False) -> tuple[str, ...]:
    """What a response platform subscribes to (docs/mqtt.md "Subscribers"): alarms from all
    gateways (and trackers), optionally telemetry events and gateway state."""
    kinds = (Kind.ALARM, Kind.EVENT) if events else (Kind.ALARM,)
    out = [all_gateways(k) for k in kinds]
    if devices:
        out += [all_devices(k) for k in kinds]
    if state:
        out.append(all_gateways(Kind.STATE))
    return tuple(out)


@dataclass(frozen=True)
class Topics:
    """All topics of one gateway (docs/mqtt.md topic tree)."""

    gateway_id: str

    def of(self, kind: Kind | str) -> str:
        return gateway_topic(self.gateway_id, kind)

    @property
    def alarm(self) -> str:
        return self.of(Kind.ALARM)

    @property
    def event(self) -> str:
        return self.of(Kind.EVENT)

    @property
    def ack(self) -> str:
        return self.of(Kind.ACK)

    @property
    def state(self) -> str:
        return self.of(Kind.STATE)

    @property
    def health(self) -> str:
        return self.of(Kind.HEALTH)

    @property
    def config(self) -> str:
        return self.of(Kind.CONFIG)

    @property
    def config_applied(self) -> str:
        return self.of(Kind.CONFIG_APPLIED)

    @property
    def cmd(self) -> str:
        return self.of(Kind.CMD)

    @property
    def cmd_result(self) -> str:
        return self.of(Kind.CMD_RESULT)


@dataclass(frozen=True)
class DeviceTopics:
    """The topics of one GPS tracker publishing directly (``wt/v1/dev/{dev}/...``)."""

    device_id: str

    def of(self, kind: Kind | str) -> str:
        return device_topic(self.device_id, kind)

    @property
    def alarm(self) -> str:
        return self.of(Kind.ALARM)

    @property
    def event(self) -> str:
        return self.of(Kind.EVENT)

    @property
    def ack(self) -> str:
        return self.of(Kind.ACK)

    @property
    def state(self) -> str:
        return self.of(Kind.STATE)


# --- parsers ----------------------------------------------------------------------------

class Parsed(NamedTuple):
    """A parsed topic: exactly one of ``gateway_id`` / ``device_id`` is set."""

    kind: Kind
    gateway_id: str | None
    device_id: str | None


def _valid_id(s: str) -> bool:
    return bool(s) and "+" not in s and "#" not in s and "\x00" not in s


def parse(topic: object) -> Parsed | None:
    """``wt/v1/gw/gw-1/config/applied`` -> ``Parsed(Kind.CONFIG_APPLIED, "gw-1", None)``.

    None for anything else: another tree, an unknown leaf, a wildcard filter, a shared
    subscription, a non-string. Never raises.
    """
    if not isinstance(topic, str):
        return None
    parts = topic.split("/", 4)
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or not _valid_id(parts[3]):
        return None
    kind = _BY_LEAF.get(parts[4])
    if kind is None:
        return None
    if parts[2] == GATEWAY_SCOPE:
        return Parsed(kind, parts[3], None)
    if parts[2] == DEVICE_SCOPE and kind in DEVICE_KINDS:
        return Parsed(kind, None, parts[3])
    return None


def parse_gateway(topic: object, kind: Kind | str | None = None) -> str | None:
    """The gateway id of a gateway topic (of ``kind`` if given), else None. Never raises."""
    p = parse(topic)
    if p is None or p.gateway_id is None:
        return None
    if kind is not None:
        try:
            if p.kind is not Kind(kind):
                return None
        except ValueError:
            return None
    return p.gateway_id


def source_id(parsed: Parsed) -> str:
    """The publishing gateway's id, or the tracker's device id for ``dev`` topics."""
    return parsed.gateway_id if parsed.gateway_id is not None else parsed.device_id  # type: ignore[return-value]


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest; a ``$share/<group>/`` prefix
    is ignored), for receivers that route messages by filter."""
    flt = strip_share(topic_filter).split("/")
    levels = topic.split("/")
    for i, f in enumerate(flt):
        if f == "#":
            return True
        if i >= len(levels) or (f != "+" and f != levels[i]):
            return False
    return len(levels) == len(flt)
