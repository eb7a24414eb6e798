"""SCAIP (SS 91100 / CLC/TS 50134-9) for the gateway's alarm-centre route — pure, no I/O.

- :mod:`._codes`: the wire codes as enums (``mty``, ``dty``, ``stc``, ``lco``, ``snu``…).
- :mod:`._mapping`: ONE table, every :class:`~gateway.domain.model.EventCode` → report
  (:data:`EVENT_MAP`), and :func:`build_request`.
- :mod:`._xml` / :mod:`._flatxml`: ``<mrq>`` encoder, ``<mrs>`` decoder that never raises
  and cannot expand entities (our own strict parser for the flat element list).
- :mod:`._reports`: the per-report reply state machine as a table (:data:`TRANSITIONS`).
- :mod:`._heartbeat`: ``mty=PI`` schedule following ``hbi`` when allowed.
- :mod:`._ports`: :class:`ScaipListener` (what the route tells the forwarder) and
  :class:`CentreRoute` (what the forwarder asks of the route).
- :mod:`._feed`: :class:`CentreFeed`, follow-ups to the centre in journal order with a
  durable cursor of its own.

The SIP side is :mod:`gateway.adapters.sip`; docs/scaip.md describes both.
"""
from gateway.domain.scaip._codes import (
    CONTENT_TYPE,
    VERSION,
    DeviceComponent,
    DeviceType,
    HeartbeatOption,
    LocationCode,
    MediaReply,
    MessageType,
    Snu,
    StatusCode,
)
from gateway.domain.scaip._gga import gga_sentence, geo_text, nmea_checksum
from gateway.domain.scaip._heartbeat import DEFAULT_HBI_INTERVALS_S, HeartbeatOutcome, HeartbeatSchedule
from gateway.domain.scaip._mapping import (
    EVENT_MAP,
    ROLE_DTY,
    ReportKind,
    Row,
    build_request,
    dty_for,
    heartbeat_request,
    mapping_table_markdown,
    ref_for,
    role_table_markdown,
)
from gateway.domain.scaip._feed import CURSOR_KEY, CentreFeed
from gateway.domain.scaip._ports import CentreRoute, ScaipListener
from gateway.domain.scaip._reports import (
    TRANSITIONS,
    Action,
    Do,
    Input,
    ReportState,
    ReportTracker,
    ReportView,
    RetryPolicy,
    input_for,
    transition_table_markdown,
)
from gateway.domain.scaip._xml import (
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    GeoLocation,
    ScaipError,
    ScaipRejection,
    ScaipRejectReason,
    ScaipReply,
    ScaipRequest,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

__all__ = [
    "CONTENT_TYPE", "CURSOR_KEY", "DEFAULT_HBI_INTERVALS_S", "EVENT_MAP", "MAX_REPLY_BYTES", "MAX_REQUEST_BYTES",
    "ROLE_DTY", "TRANSITIONS", "CentreFeed", "CentreRoute", "VERSION", "Action", "DeviceComponent", "DeviceType", "Do", "GeoLocation", "HeartbeatOption",
    "HeartbeatOutcome", "HeartbeatSchedule", "Input", "LocationCode", "MediaReply", "MessageType", "ReportKind",
    "ReportState", "ReportTracker", "ReportView", "RetryPolicy", "Row", "ScaipError", "ScaipListener",
    "ScaipRejectReason", "ScaipRejection", "ScaipReply", "ScaipRequest", "Snu", "StatusCode", "build_request",
    "decode_reply", "decode_request", "dty_for", "encode_reply", "encode_request", "geo_text", "gga_sentence",
    "heartbeat_request", "input_for", "mapping_table_markdown", "nmea_checksum", "ref_for", "role_table_markdown",
    "transition_table_markdown",
]
