"""Schema ids and pure encode/decode of every MQTT payload of docs/mqtt.md.

One rejection type (:class:`Rejected`) for all decoders; decoders never raise on garbage and
refuse non-finite numbers (:func:`load_json`: NaN, Infinity, 1e999), naming the field.

=====================  =========================  ==========================================
schema                 topic (contracts.topics)   here
=====================  =========================  ==========================================
``wt.alarm/1``         ``…/alarm``                :func:`event_doc`, :func:`decode_published`,
``wt.event/1``         ``…/event``                :func:`decode_alarm`
``wt.ack/1``           ``…/ack``                  :func:`encode_ack`, :func:`decode_ack`
``wt.state/1``         ``…/state``                :func:`encode_state`, :func:`decode_state`
``wt.health/1``        ``…/health``               :func:`decode_health`
``wt.config/1``        ``…/config``               :func:`encode_config`, :func:`decode_config`
``wt.config-applied/1`` ``…/config/applied``      :func:`encode_applied`, :func:`decode_applied`
``wt.cmd/1``           ``…/cmd``                  :func:`encode_cmd`, :func:`decode_cmd`
``wt.cmd-result/1``    ``…/cmd/result``           :func:`encode_cmd_result`, :func:`decode_cmd_result`,
                                                  :func:`decode_update_result`
=====================  =========================  ==========================================
"""
from contracts.payloads._ack import ACK_SCHEMA, Ack, AckStatus, decode_ack, encode_ack
from contracts.payloads._alarm import (ALARM_SCHEMA, CLASSES, EVENT_SCHEMA, Alarm, Published, Route, decode_alarm,
                                       decode_published, event_doc)
from contracts.payloads._cmd import (CMD_SCHEMA, RESULT_SCHEMA, CmdStatus, Command, CommandResult, UpdateResult,
                                     cmd_doc, cmd_result_doc, decode_cmd, decode_cmd_result, decode_update_result,
                                     encode_cmd, encode_cmd_result)
from contracts.payloads._common import (NOT_FINITE, Rejected, as_int, as_str, dumps, dumps_event, load_json,
                                        parse_time, rfc3339)
from contracts.payloads._config import (APPLIED_SCHEMA, CONFIG_SCHEMA, AppliedStatus, ConfigApplied, ConfigDoc,
                                        applied_doc, decode_applied, decode_config, encode_applied, encode_config)
from contracts.payloads._status import (HEALTH_SCHEMA, STATE_SCHEMA, DeviceHealth, Health, State, decode_health,
                                        decode_state, encode_state)

parse_rfc3339 = parse_time

__all__ = [
    "ACK_SCHEMA", "ALARM_SCHEMA", "APPLIED_SCHEMA", "CLASSES", "CMD_SCHEMA", "CONFIG_SCHEMA", "EVENT_SCHEMA",
    "HEALTH_SCHEMA", "NOT_FINITE", "RESULT_SCHEMA", "STATE_SCHEMA",
    "Ack", "AckStatus", "Alarm", "AppliedStatus", "CmdStatus", "Command", "CommandResult", "ConfigApplied",
    "ConfigDoc", "DeviceHealth", "Health", "Published", "Rejected", "Route", "State", "UpdateResult",
    "applied_doc", "as_int", "as_str", "cmd_doc", "cmd_result_doc", "decode_ack", "decode_alarm", "decode_applied",
    "decode_cmd", "decode_cmd_result", "decode_config", "decode_health", "decode_published", "decode_state",
    "decode_update_result", "dumps", "dumps_event", "encode_ack", "encode_applied", "encode_cmd", "encode_cmd_result",
    "encode_config", "encode_state", "event_doc", "load_json", "parse_rfc3339", "parse_time", "rfc3339",
]
