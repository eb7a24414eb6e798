"""The gateway configuration schema: frozen, typed dataclasses — the ONLY place defaults live.

Shared by the gateway (which loads it from TOML, environment and CLI in ``gateway.config``)
and the fleet (which validates every push against it before it leaves the fleet): one
schema, so a key the fleet accepts is a key the gateway applies.

Field metadata (``meta``) carries ranges, units, an example and a note; the validator and
docs/gateway-config.md use them. :data:`IMMUTABLE` lists the keys a fleet push may not
change (they identify the gateway and its stored data).
"""
from __future__ import annotations

import datetime as _dt
import enum
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from contracts.discovery import SERVICE_TYPE
from contracts.roles import Role

GATEWAY_ID_RE = re.compile(r"^[a-z0-9-]{3,64}$")
DEVICE_ID_RE = re.compile(r"^[0-9a-f]{12}$")
ZONE_ID_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
SERVICE_TYPE_RE = re.compile(r"^_[a-z0-9-]{1,15}\._(tcp|udp)\.local\.$")

# Keys a fleet push (wt.config/1) may not change: they identify the gateway and its stored data,
# or they are trust anchors (what the gateway believes: the fleet's control key, the release
# keys, the broker CA). A push touching one is rejected whole, the reason naming the key: a
# compromised fleet account must not be able to make the gateway trust another signer (F1).
# A key here also covers everything under it (``trust`` covers ``trust.fleet_key``).
IMMUTABLE: tuple[str, ...] = ("gateway.id", "gateway.data_dir", "gateway.identity_key", "journal.path",
                              "trust.fleet_key", "trust.release_keys", "trust.broker_ca",
                              "upgrades.trusted_keys")
IMMUTABLE_SECTIONS: tuple[str, ...] = ("trust",)     # every key under these, present or future


def immutable_key(key: str) -> str | None:
    """The :data:`IMMUTABLE` key (or section) that covers the flat ``key`` (``a.b``, ``a.b[0]``), else None."""
    for k in (*IMMUTABLE, *IMMUTABLE_SECTIONS):
        if key == k or key.startswith((k + ".", k + "[")):
            return k
    return None


def meta(*, min: float | None = None, max: float | None = None, unit: str = "",
         example: Any = None, choices: tuple[str, ...] | None = None,
         secret: bool = False, doc: str = "") -> dict[str, Any]:
    """Field metadata used by the validator and by docs (min/max, unit, example, fix)."""
    return {"min": min, "max": max, "unit": unit, "example": example, "choices": choices,
            "secret": secret, "doc": doc}


class LogLevel(str, enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class MainsSource(str, enum.Enum):
    NONE = "none"          # no mains input wired: no mains alarms
    FILE = "file"          # a file holding 1/0: sysfs GPIO value or a UPS HAT status file
    EMULATED = "emulated"  # demo/tests: set programmatically


class DeviceLink(str, enum.Enum):
    AUTO = "auto"              # serial frames / BTHome adverts: whatever the device sends
    BLE_GATT = "ble-gatt"      # the gateway connects to the device's WT frame GATT service
    BLE_HEALTH = "ble-health"  # standard GATT health profiles (blood pressure, SpO2, ...)


class FallPlacement(str, enum.Enum):
    """Where a fall sensor is worn (firmware/lib/fall_schema.py: pendant = chest, pocket = waist)."""
    PENDANT = "pendant"
    WRIST = "wrist"
    WAIST = "waist"
    POCKET = "pocket"
    CHEST = "chest"


class BleScanMode(str, enum.Enum):
    ACTIVE = "active"    # StartDiscovery: works on every BlueZ >= 5.55
    PASSIVE = "passive"  # AdvertisementMonitor1: BlueZ >= 5.56 with --experimental; nothing transmitted


class ZoneShape(str, enum.Enum):
    CIRCLE = "circle"
    POLYGON = "polygon"


@dataclass(frozen=True)
class GatewaySection:
    id: str = field(default="gw-demo", metadata=meta(example='"gw-0001"', doc="pseudonymous gateway id, [a-z0-9-]{3,64}"))
    data_dir: str = field(default="/var/lib/wt-gateway", metadata=meta(example='"/var/lib/wt-gateway"'))
    timezone: str = field(default="Europe/Oslo", metadata=meta(example='"Europe/Oslo"', doc="IANA zone for rule windows"))
    log_level: LogLevel = field(default=LogLevel.INFO, metadata=meta(example='"info"'))
    identity_key: str = field(default="", metadata=meta(
        example='"/etc/wt-gateway/trust/gateway-x25519.key"',
        doc="this gateway's X25519 private key (PEM, mode 0600), made on the gateway by `gateway enrol`: the fleet "
            "sends device keys sealed to it (contracts/device_keys.py); no push can change it"))


@dataclass(frozen=True)
class TlsSection:
    enabled: bool = field(default=True, metadata=meta(
        example="true", doc="unset: on, except to a loopback broker on a port other than 8883 without CA or "
                            "certificate (the demo's, the tests'); false with a password to another host is refused"))
    ca: str = field(default="", metadata=meta(example='"/etc/wt/ca.pem"', doc="CA bundle; empty = system store"))
    cert: str = field(default="", metadata=meta(example='"/etc/wt/gw.crt"'))
    key: str = field(default="", metadata=meta(example='"/etc/wt/gw.key"', secret=True))
    username: str = field(default="", metadata=meta(example='"gw-0001"'))
    password: str = field(default="", metadata=meta(example='"…"', secret=True))


@dataclass(frozen=True)
class FallbackSection:
    enabled: bool = field(default=False, metadata=meta(example="true"))
    host: str = field(default="", metadata=meta(example='"fallback.example.net"'))
    port: int = field(default=8883, metadata=meta(min=1, max=65535, example=8883))
    tls: TlsSection = field(default_factory=TlsSection)


@dataclass(frozen=True)
class UplinkSection:
    enabled: bool = field(default=True, metadata=meta(
        example="true", doc="false: no MQTT at all (a SCAIP-only home: [scaip] carries the alarms; no health, "
                            "config push or commands)"))
    host: str = field(default="127.0.0.1", metadata=meta(example='"broker.example.net"'))
    port: int = field(default=8883, metadata=meta(min=1, max=65535, example=8883, doc="8883: MQTT over TLS"))
    tls: TlsSection = field(default_factory=TlsSection)
    keepalive_s: int = field(default=30, metadata=meta(min=5, max=3600, unit="s", example=30))
    ack_timeout_s: float = field(default=30.0, metadata=meta(min=1, max=3600, unit="s", example=30))
    health_interval_s: float = field(default=60.0, metadata=meta(min=1, max=86400, unit="s", example=60))
    fallback: FallbackSection = field(default_factory=FallbackSection)


@dataclass(frozen=True)
class JournalSection:
    path: str = field(default="", metadata=meta(example='"/var/lib/wt-gateway/journal.sqlite"',
                                                doc="empty = <data_dir>/journal.sqlite"))
    max_telemetry_mb: float = field(default=64.0, metadata=meta(min=1, max=100000, unit="MB", example=64))
    telemetry_retention_h: float = field(default=24.0, metadata=meta(
        min=1, max=8760, unit="h", example=24,
        doc="delivered telemetry is pruned after this (≥ 1 h: a device's late retransmission is still answered DUPLICATE)"))
    alarm_retention_days: float = field(default=30.0, metadata=meta(
        min=1, max=3650, unit="day", example=30,
        doc="alarms delivered and acknowledged by the platform are pruned after this; unacknowledged ones never"))
    max_mb: float = field(default=256.0, metadata=meta(
        min=16, max=100000, unit="MB", example=256, doc="journal file (database + WAL) size budget"))


@dataclass(frozen=True)
class SerialSection:
    ports: tuple[str, ...] = field(default=(), metadata=meta(example='["/dev/ttyUSB0"]'))
    baud: int = field(default=115200, metadata=meta(min=1200, max=4000000, example=115200))
    reconnect_s: float = field(default=2.0, metadata=meta(min=0.1, max=300, unit="s", example=2))


@dataclass(frozen=True)
class BleSection:
    enabled: bool = field(default=False, metadata=meta(example="true"))
    adapter: str = field(default="hci0", metadata=meta(example='"hci0"'))
    allow_unencrypted_alarms: bool = field(default=False, metadata=meta(example="false"))
    scan_mode: BleScanMode = field(default=BleScanMode.ACTIVE, metadata=meta(
        example='"passive"', doc="passive: BTHome devices only, needs bluetoothd --experimental (docs/ble.md)"))
    pair: bool = field(default=False, metadata=meta(
        example="true", doc="bond before use: health devices whose measurements need an encrypted link"))


@dataclass(frozen=True)
class DiscoverySection:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    service_type: str = field(default=SERVICE_TYPE, metadata=meta(example=f'"{SERVICE_TYPE}"'))
    interfaces: tuple[str, ...] = field(default=(), metadata=meta(example='["127.0.0.1"]',
                                                                   doc="empty = all interfaces"))


@dataclass(frozen=True)
class StatusSection:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    host: str = field(default="127.0.0.1", metadata=meta(example='"127.0.0.1"'))
    port: int = field(default=8787, metadata=meta(min=0, max=65535, example=8787, doc="0 = pick a free port"))


@dataclass(frozen=True)
class MainsSection:
    source: MainsSource = field(default=MainsSource.NONE, metadata=meta(example='"file"'))
    path: str = field(default="", metadata=meta(example='"/sys/class/gpio/gpio17/value"'))
    on_value: str = field(default="1", metadata=meta(example='"1"', doc="file content meaning 'on mains'"))
    debounce_s: float = field(default=5.0, metadata=meta(min=0, max=3600, unit="s", example=5))


@dataclass(frozen=True)
class DeviceSection:
    """One paired device. Pseudonymous by design: no names, addresses or persons."""

    id: str
    role: Role = field(metadata=meta(example='"button"'))
    key: bytes | None = field(default=None, metadata=meta(example='"00112233445566778899aabbccddeeff"', secret=True))
    silent_after_s: float = field(default=0.0, metadata=meta(min=0, max=604800, unit="s", example=180,
                                                             doc="0 = use supervision.silent_after_s"))
    supervised: bool = field(default=True, metadata=meta(example="true"))
    link: DeviceLink = field(default=DeviceLink.AUTO, metadata=meta(
        example='"ble-gatt"', doc="ble-gatt / ble-health: the gateway keeps a GATT connection (needs [ble] enabled)"))
    placement: FallPlacement | None = field(default=None, metadata=meta(
        example='"wrist"', doc="fall sensor: where it is worn, from the installation checklist; the device's "
                               "`placement` setting, which selects its detector (docs/fall-detection.md)"))


@dataclass(frozen=True)
class BedRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    window_start: _dt.time = field(default=_dt.time(20, 30), metadata=meta(example='"20:30"'))
    window_end: _dt.time = field(default=_dt.time(6, 0), metadata=meta(example='"06:00"'))
    max_out_min: float = field(default=30.0, metadata=meta(min=1, max=720, unit="minute", example=30))


@dataclass(frozen=True)
class DoorRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    window_start: _dt.time = field(default=_dt.time(23, 0), metadata=meta(example='"23:00"'))
    window_end: _dt.time = field(default=_dt.time(6, 0), metadata=meta(example='"06:00"'))
    repeat_after_min: float = field(default=5.0, metadata=meta(min=0, max=720, unit="minute", example=5,
                                                               doc="one alarm per device per this many minutes"))


@dataclass(frozen=True)
class DoseRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    delay_min: float = field(default=30.0, metadata=meta(min=1, max=1440, unit="minute", example=30))


@dataclass(frozen=True)
class Zone:
    id: str
    shape: ZoneShape = field(default=ZoneShape.CIRCLE, metadata=meta(example='"circle"'))
    lat: float = field(default=0.0, metadata=meta(min=-90, max=90, unit="°", example=59.91))
    lon: float = field(default=0.0, metadata=meta(min=-180, max=180, unit="°", example=10.75))
    radius_m: float = field(default=0.0, metadata=meta(min=0, max=100000, unit="m", example=300))
    points: tuple[tuple[float, float], ...] = field(default=(), metadata=meta(
        unit="°", example="[[59.91, 10.75], [59.92, 10.75], [59.92, 10.76]]"))
    devices: tuple[str, ...] = field(default=(), metadata=meta(example='["a4c1380a1b2c"]',
                                                               doc="empty = every GPS device"))


@dataclass(frozen=True)
class GeofenceRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    zones: tuple[Zone, ...] = field(default=())


@dataclass(frozen=True)
class BatteryRule:
    enabled: bool = field(default=True, metadata=meta(example="true"))
    low_pct: int = field(default=20, metadata=meta(min=1, max=99, unit="%", example=20))
    rearm_pct: int = field(default=30, metadata=meta(min=2, max=100, unit="%", example=30,
                                                     doc="alarm again only after the battery rose above this"))


@dataclass(frozen=True)
class RulesSection:
    bed: BedRule = field(default_factory=BedRule)
    door: DoorRule = field(default_factory=DoorRule)
    dose: DoseRule = field(default_factory=DoseRule)
    geofence: GeofenceRule = field(default_factory=GeofenceRule)
    battery: BatteryRule = field(default_factory=BatteryRule)


@dataclass(frozen=True)
class SupervisionSection:
    silent_after_s: float = field(default=180.0, metadata=meta(min=10, max=604800, unit="s", example=180,
                                                               doc="no frame/advert for this long → device_silent"))
    tick_s: float = field(default=5.0, metadata=meta(min=0.05, max=60, unit="s", example=5))
    uplink_lost_after_s: float = field(default=60.0, metadata=meta(min=1, max=86400, unit="s", example=60))


@dataclass(frozen=True)
class TrustSection:
    """Trust anchors: local files written at enrolment (``gateway enrol``) or by a technician
    on the device. No push, command or update can change them (all in :data:`IMMUTABLE`)."""

    fleet_key: str = field(default="", metadata=meta(
        example='"/etc/wt/fleet-control.pub"',
        doc="the fleet's ed25519 control public key (PEM file): every wt.config/1 push and wt.cmd/1 command must "
            "be signed with it (contracts/control.py); empty = every push and command is refused"))
    release_keys: tuple[str, ...] = field(default=(), metadata=meta(
        example='["/etc/wt/release-ci.pub"]',
        doc="ed25519 release public keys (PEM files); ota/update refuse releases not signed by one of these "
            "(or of upgrades.trusted_keys)"))
    broker_ca: str = field(default="", metadata=meta(
        example='"/etc/wt/broker-ca.pem"',
        doc="CA file the broker's TLS certificate must chain to; when set, uplink.tls.ca and "
            "uplink.fallback.tls.ca may only be empty or this file"))


@dataclass(frozen=True)
class UpgradesSection:
    trusted_keys: tuple[str, ...] = field(default=(), metadata=meta(
        example='["/etc/wt/release-ci.pub"]',
        doc="ed25519 release keys (PEM file, or the raw key in base64), in addition to trust.release_keys; "
            "ota/update refuse releases not signed by one. A trust anchor: no push can change it"))
    fetch_local_dir: str = field(default="", metadata=meta(
        example='"/var/lib/wt-gateway/incoming"',
        doc="artifact_url may be file:// only for a file under this directory; empty = file:// refused "
            "(otherwise only https:// is fetched)"))
    fetch_ca: str = field(default="", metadata=meta(
        example='"/etc/wt/artifacts-ca.pem"', doc="CA the https artifact server must chain to; empty = system store"))
    fetch_max_mb: float = field(default=64.0, metadata=meta(
        min=0.01, max=1024, unit="MB", example=64, doc="an artifact larger than this is refused while fetching"))
    fetch_timeout_s: float = field(default=300.0, metadata=meta(
        min=1, max=3600, unit="s", example=300, doc="the whole fetch (connect, headers, body) must finish within this"))
    slots_dir: str = field(default="", metadata=meta(example='"/var/lib/wt-gateway/slots"',
                                                     doc="A/B slots of the gateway software; empty = <data_dir>/slots"))
    commit_deadline_s: float = field(default=120.0, metadata=meta(
        min=5, max=3600, unit="s", example=120,
        doc="update: the new version must reconnect and have its health acknowledged within this, else it rolls back"))
    ota_ack_timeout_s: float = field(default=3.0, metadata=meta(min=0.1, max=120, unit="s", example=3,
                                                                doc="ota: wait this long for the device's ACK of each frame"))
    ota_retries: int = field(default=5, metadata=meta(min=0, max=100, example=5, doc="ota: re-sends of one frame before failing"))
    ota_commit_timeout_s: float = field(default=600.0, metadata=meta(min=5, max=86400, unit="s", example=600,
                                                                     doc="ota: reboot + self-test must finish within this"))


class ScaipTransport(str, enum.Enum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class ScaipRole(str, enum.Enum):
    PRIMARY = "primary"      # alarms go to the centre first; the MQTT routes carry them when it does not answer
    FALLBACK = "fallback"    # alarms go to MQTT first; the centre gets them when no broker is up or on escalation


@dataclass(frozen=True)
class ScaipTlsSection:
    ca: str = field(default="", metadata=meta(example='"/etc/wt/arc-ca.pem"',
                                              doc="CA the centre's certificate must chain to; empty = system store"))
    server_name: str = field(default="", metadata=meta(example='"arc.example.no"',
                                                       doc="name the certificate must carry; empty = host of proxy/centre"))
    cert: str = field(default="", metadata=meta(example='"/etc/wt/gw.crt"', doc="client certificate, if the centre asks"))
    key: str = field(default="", metadata=meta(example='"/etc/wt/gw.key"', secret=True))


@dataclass(frozen=True)
class ScaipSection:
    """The SCAIP route to an alarm receiving centre (docs/scaip.md). Maps onto the SIP
    user agent's ``UaConfig`` and the route's ``ScaipSettings`` (gateway/daemon/_routes.py)."""

    enabled: bool = field(default=False, metadata=meta(example="true"))
    role: ScaipRole = field(default=ScaipRole.PRIMARY, metadata=meta(
        example='"primary"', doc="primary: alarms to the centre first, MQTT on escalation; fallback: the reverse"))
    centre: str = field(default="", metadata=meta(example='"sip:arc@alarm.example.no:5060"',
                                                  doc="the centre's SIP URI (Request-URI and To)"))
    transport: ScaipTransport = field(default=ScaipTransport.UDP, metadata=meta(example='"tls"'))
    proxy: str = field(default="", metadata=meta(example='"sip:proxy.example.no:5061;transport=tls"',
                                                 doc="outbound proxy; empty = straight to the centre"))
    username: str = field(default="", metadata=meta(example='"4700112233"', doc="digest account at the centre/proxy"))
    password: str = field(default="", metadata=meta(example='"…"', secret=True))
    realm: str = field(default="", metadata=meta(example='"arc.example.no"',
                                                 doc="give the credentials only to this realm; empty = any"))
    cid: str = field(default="", metadata=meta(example='"4700112233"',
                                               doc="controller id: this unit at the centre, 1-16 digits"))
    local_port: int = field(default=0, metadata=meta(min=0, max=65535, example=5060,
                                                     doc="where the centre's separate replies arrive; 0 = any"))
    tls: ScaipTlsSection = field(default_factory=ScaipTlsSection)
    heartbeat_interval_s: float = field(default=300.0, metadata=meta(min=10, max=86400, unit="s", example=300))
    heartbeat_adjustable: bool = field(default=False, metadata=meta(
        example="true", doc="hbo=1: the centre may set the interval with hbi"))
    hbi_intervals_s: tuple[float, ...] = field(default=(60.0, 300.0, 900.0, 3600.0), metadata=meta(
        min=10, max=86400, unit="s", example="[60, 300, 900, 3600]", doc="interval for hbi 1, 2, 3, 4 (assumed; check with the centre)"))
    reply_timeout_s: float = field(default=10.0, metadata=meta(min=1, max=300, unit="s", example=10,
                                                               doc="wait for a separate <mrs> after a 2xx"))
    escalate_after_s: float = field(default=30.0, metadata=meta(min=1, max=3600, unit="s", example=30,
                                                                doc="an alarm without snu 0 this long escalates"))
    send_info: bool = field(default=False, metadata=meta(example="false",
                                                         doc="also send information events (mty=IN)"))
    t1_ms: int = field(default=500, metadata=meta(min=50, max=5000, example=500, doc="SIP timer T1 (RFC 3261)"))


@dataclass(frozen=True)
class GatewayConfig:
    gateway: GatewaySection = field(default_factory=GatewaySection)
    uplink: UplinkSection = field(default_factory=UplinkSection)
    journal: JournalSection = field(default_factory=JournalSection)
    serial: SerialSection = field(default_factory=SerialSection)
    ble: BleSection = field(default_factory=BleSection)
    discovery: DiscoverySection = field(default_factory=DiscoverySection)
    status: StatusSection = field(default_factory=StatusSection)
    mains: MainsSection = field(default_factory=MainsSection)
    devices: tuple[DeviceSection, ...] = field(default=())
    rules: RulesSection = field(default_factory=RulesSection)
    supervision: SupervisionSection = field(default_factory=SupervisionSection)
    upgrades: UpgradesSection = field(default_factory=UpgradesSection)
    trust: TrustSection = field(default_factory=TrustSection)
    scaip: ScaipSection = field(default_factory=ScaipSection)

    # derived views (no defaults live here)
    @property
    def journal_path(self) -> Path:
        return Path(self.journal.path) if self.journal.path else Path(self.gateway.data_dir) / "journal.sqlite"

    @property
    def slots_path(self) -> Path:
        return Path(self.upgrades.slots_dir) if self.upgrades.slots_dir else Path(self.gateway.data_dir) / "slots"

    @property
    def release_key_specs(self) -> tuple[str, ...]:
        """Every trusted release key: trust.release_keys, then upgrades.trusted_keys."""
        return tuple(self.trust.release_keys) + tuple(self.upgrades.trusted_keys)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.gateway.timezone)

    @property
    def device_keys(self) -> dict[str, bytes]:
        return {d.id: d.key for d in self.devices if d.key is not None}

    def device(self, device_id: str) -> DeviceSection | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        from contracts.gateway_config._render import to_plain

        return to_plain(self, redact=redact)

    def to_json(self, *, redact: bool = True) -> str:
        return json.dumps(self.to_dict(redact=redact), indent=2, sort_keys=False)


