"""Commissioning: check the installation is ready (checklist answered, consent recorded),
find the gateway, check it answers (``ping`` -> ``cmd/result``), pair the kit's devices,
push config, switch the gateway to test mode, and wait — with a countdown — until a test
alarm from every device has been seen at the platform.

Pure orchestration over ports (typing.Protocol); the adapters are in ``_adapters.py``.
The installation is only marked done by :func:`fleet.installations.complete`, which
refuses while any device's test alarm is missing.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Protocol

from ..errors import CommissioningError, ValidationError
from ._checklist import missing_answers
from ._placement import MISMATCH, reported_placement


@dataclass(frozen=True)
class GatewayEndpoint:
    gateway_id: str
    host: str
    port: int
    version: str = ""


@dataclass(frozen=True)
class AlarmSeen:
    """A ``wt.alarm/1`` message as received at the platform side."""

    gateway_id: str
    device_id: str
    event_id: str
    test: bool
    occurred_at: float | None        # from the payload (gateway clock)
    received_at: float               # platform clock when the message arrived
    placement: int | None = None     # a fall_detected alarm's data.placement: the detector the device runs


class GatewayFinder(Protocol):
    def find(self, gateway_id: str, timeout_s: float) -> GatewayEndpoint | None: ...


class GatewayChannel(Protocol):
    """Talks to one gateway over MQTT: commands, config push, and its alarm stream."""

    def send_command(self, gateway_id: str, cmd: str, args: dict[str, Any]) -> str: ...

    def command_result(self, gateway_id: str, cmd_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The gateway's ``wt.cmd-result/1`` for ``cmd_id`` (``{"status", "detail"}``), None on timeout."""

    def push_config(self, gateway_id: str, devices: list[dict[str, Any]]) -> int | None: ...

    def alarms(self, gateway_id: str, timeout_s: float) -> Iterator[AlarmSeen]:
        """Yield alarms from ``wt/v1/gw/{gw}/alarm`` until ``timeout_s`` passes without one."""


def parse_rfc3339(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def decode_alarm(gateway_id: str, payload: bytes, received_at: float) -> AlarmSeen | None:
    """``wt.alarm/1`` -> AlarmSeen; None for anything else (never raises)."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or str(doc.get("schema", "")).split("/")[0] != "wt.alarm" \
            or str(doc.get("schema", "")).split("/")[-1] != "1":
        return None
    dev, eid = doc.get("device"), doc.get("event_id")
    if not isinstance(dev, str) or not isinstance(eid, str):
        return None
    placement = reported_placement(doc.get("data")) if doc.get("type") == "fall_detected" else None
    return AlarmSeen(gateway_id, dev.lower(), eid, doc.get("test") is True, parse_rfc3339(doc.get("occurred_at")),
                     received_at, placement)


def readiness_problems(inst: dict[str, Any]) -> list[str]:
    """What must be done before test mode: each problem with the command that fixes it.

    ``inst`` is :meth:`InstallationService.show` output (with the personal fields: checklist
    and consent). Commissioning refuses to start while any remain, instead of discovering
    them only after every test alarm was pressed.
    """
    code = inst["code"]
    out: list[str] = []
    if inst["status"] != "commissioning":
        out.append(f"installation {code} is {inst['status']}, not commissioning")
    if not inst.get("gateway_id"):
        out.append(f"installation {code} has no gateway (the kit needs one)")
    if "checklist" in inst:
        sensors = {d["serial"]: d["role"] for d in inst["devices"] if d["role"] != "gateway"}
        for serial, keys in missing_answers(inst.get("checklist") or {}, sensors).items():
            out.append(f"checklist for {serial} unanswered: {', '.join(keys)} "
                       f"(fleet install checklist {code} {serial} KEY=VALUE ...; see fleet install questions)")
    if "consent" in inst and not inst.get("consent"):
        out.append(f"no consent recorded (fleet install consent {code} consent --date YYYY-MM-DD)")
    return out


def fmt_remaining(seconds: float) -> str:
    s = max(0, int(seconds + 0.999))
    return f"{s // 60}:{s % 60:02d}"


@dataclass
class CommissioningReport:
    gateway: GatewayEndpoint | None = None
    paired: list[str] = field(default_factory=list)
    config_version: int | None = None
    gateway_version: str | None = None
    seen: dict[str, AlarmSeen] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    # device id -> the service's message: its latest test fall reports another placement than the checklist
    placement_mismatch: dict[str, str] = field(default_factory=dict)
    ignored_non_test: int = 0


def commission(*, gateway_id: str, devices: list[dict[str, Any]], finder: GatewayFinder | None,
               channel: GatewayChannel, timeout_s: float, on_seen: Callable[[AlarmSeen, float | None], None],
               say: Callable[[str], None] = lambda s: None, discover_timeout_s: float = 5.0,
               clock: Callable[[], float] = time.monotonic, answer_timeout_s: float = 10.0,
               countdown: Callable[[float, list[dict[str, Any]]], None] | None = None) -> CommissioningReport:
    """Run the steps; ``on_seen(alarm, latency_ms)`` records a test alarm and may return the
    service's answer (``POST …/test-alarms``). It is called once per device — again for a fall
    sensor whose answer's ``placement.status`` is ``mismatch`` (it runs another detector than
    the checklist chose): that device is still awaited, and a later test fall may confirm it.

    ``devices``: dicts with ``serial``, ``hw_id``, ``role`` (the sensors, not the gateway).
    ``countdown(seconds_left, devices_still_missing)`` is called about once a second while
    the test alarms are awaited. A gateway that does not answer ``ping`` within
    ``answer_timeout_s`` stops commissioning before anything is sent to it.
    """
    rep = CommissioningReport()
    if finder is not None:
        say(f"looking for gateway {gateway_id} on the local network (mDNS) ...")
        rep.gateway = finder.find(gateway_id, discover_timeout_s)
        if rep.gateway is None:
            raise CommissioningError(
                f"gateway {gateway_id} was not found on the local network within {discover_timeout_s:.0f} s; check "
                "that it is powered and on the same network, or use --skip-discovery if it is only reachable "
                "over MQTT", gateway=gateway_id)
        say(f"found {gateway_id} at {rep.gateway.host}:{rep.gateway.port} (version {rep.gateway.version or '?'})")
    say(f"asking {gateway_id} to answer over MQTT ...")
    answer = channel.command_result(gateway_id, channel.send_command(gateway_id, "ping", {}), answer_timeout_s)
    if answer is None:
        raise CommissioningError(
            f"gateway {gateway_id} did not answer within {answer_timeout_s:.0f} s; check that it is powered, online "
            "(its LED / `fleet device show`) and connected to this broker, then run the command again",
            gateway=gateway_id)
    if answer.get("status") != "ok":
        raise CommissioningError(f"gateway {gateway_id} answered the ping with {answer.get('status')}: "
                                 f"{answer.get('detail')}", gateway=gateway_id)
    rep.gateway_version = str((answer.get("detail") or {}).get("version") or "") or None
    say(f"gateway {gateway_id} answers (version {rep.gateway_version or '?'})")
    for d in devices:
        channel.send_command(gateway_id, "pair", {"device": d["hw_id"], "role": d["role"], "serial": d["serial"]})
        rep.paired.append(d["hw_id"])
        say(f"pair {d['role']} {d['serial']} ({d['hw_id']})")
    rep.config_version = channel.push_config(gateway_id, devices)
    if rep.config_version is not None:
        say(f"configuration version {rep.config_version} pushed")
    wanted = {d["hw_id"]: d for d in devices}
    channel.send_command(gateway_id, "test_mode", {"devices": sorted(wanted), "enabled": True})
    say("test mode on; trigger a test alarm on each device now: " +
        ", ".join(f"{d['role']} {d['serial']}" for d in devices))
    deadline = clock() + timeout_s
    refused: set[str] = set()        # event ids of test falls with the wrong placement (a redelivery is not news)
    while set(wanted) - set(rep.seen):
        remaining = deadline - clock()
        if remaining <= 0:
            break
        if countdown is not None:
            countdown(remaining, [d for h, d in wanted.items() if h not in rep.seen])
        got_any = False
        for alarm in channel.alarms(gateway_id, min(remaining, 1.0)):
            got_any = True
            if alarm.device_id not in wanted or alarm.device_id in rep.seen or alarm.event_id in refused:
                continue
            if not alarm.test:
                rep.ignored_non_test += 1
                say(f"ignored a REAL alarm from {alarm.device_id} (test must be true during commissioning)")
                continue
            latency = None if alarm.occurred_at is None else max(0.0, (alarm.received_at - alarm.occurred_at) * 1000)
            answer = on_seen(alarm, latency)
            d = wanted[alarm.device_id]
            text = f"test alarm from {d['role']} {d['serial']} seen" + (f" ({latency:.0f} ms)" if latency is not None else "")
            check = answer.get("placement") if isinstance(answer, dict) else None
            if isinstance(check, dict) and check.get("status") == MISMATCH:
                refused.add(alarm.event_id)
                rep.placement_mismatch[alarm.device_id] = str(check.get("message"))
                say(f"{text}, but its PLACEMENT IS WRONG: {check.get('message')} (waiting for another test fall)")
                continue
            rep.placement_mismatch.pop(alarm.device_id, None)
            rep.seen[alarm.device_id] = alarm
            say(text + (placement_note(check) if isinstance(check, dict) else ""))
            if not set(wanted) - set(rep.seen) or clock() >= deadline:
                break
        if not got_any and clock() >= deadline:
            break
    channel.send_command(gateway_id, "test_mode", {"devices": sorted(wanted), "enabled": False})
    rep.missing = sorted(set(wanted) - set(rep.seen) - set(rep.placement_mismatch))
    return rep


def placement_note(check: dict[str, Any]) -> str:
    """How a seen test fall's placement check reads after "test alarm from … seen"."""
    if check.get("status") == "confirmed":
        return f"; placement {check.get('checklist')} confirmed (runs the {check.get('detector')} detector)"
    if check.get("status") == "not_reported":
        return "; placement not reported (older firmware, or not a fall)"
    if check.get("status") == "not_answered":
        return f"; runs the {check.get('detector')} detector (the checklist has no placement yet)"
    return ""


def new_cmd_id() -> str:
    return uuid.uuid4().hex[:16]


# -- the commands the service signs for commissioning --------------------------------------
COMMANDS = ("ping", "pair", "test_mode")
MAX_TEST_MODE_S = 3600.0          # the gateway's bound (gateway/domain/remote.py, docs/mqtt.md "Test mode")
_ARGS = {"ping": (), "pair": ("device", "role", "serial"), "test_mode": ("devices", "enabled", "duration_s")}
_FORMS = {"ping": "{}", "pair": '{"device": HW_ID, "role"?: ROLE, "serial"?: SERIAL}',
          "test_mode": '{"devices": [HW_ID, ...], "enabled": true|false, "duration_s"?: 1..3600}'}


def check_command(code: str, cmd: Any, args: Any, devices: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a command the commissioning tool asks the service to sign for installation
    ``code`` (``devices``: its sensors, with ``hw_id``, ``role``, ``serial``). Only ``ping``,
    ``pair`` with one of these devices and ``test_mode`` on/off for them; anything else is a
    :class:`ValidationError` naming what is allowed. Returns the audit detail (cmd and device(s))."""
    if cmd not in COMMANDS:
        raise ValidationError(f"command {str(cmd)[:32]!r} is not signed for commissioning; allowed: "
                              f"{', '.join(COMMANDS)} (other commands — ota, update — go through rollouts)",
                              field="cmd", allowed=list(COMMANDS))
    if not isinstance(args, dict):
        raise ValidationError(f"args of {cmd} must be an object: {_FORMS[cmd]}", field="args")
    extra = sorted(set(args) - set(_ARGS[cmd]))
    if extra:
        allowed = ", ".join(_ARGS[cmd]) or "none"
        raise ValidationError(f"{cmd} takes no argument {', '.join(extra)} (allowed: {allowed}): {_FORMS[cmd]}",
                              field="args", allowed=list(_ARGS[cmd]))
    by_hw = {d["hw_id"]: d for d in devices if d.get("hw_id")}

    def device(hw: Any, field: str) -> dict[str, Any]:
        if not isinstance(hw, str) or hw not in by_hw:
            raise ValidationError(f"{field} {str(hw)[:32]!r} is not a device of installation {code}; its devices: "
                                  f"{', '.join(sorted(by_hw)) or 'none'}", field=field)
        return by_hw[hw]

    if cmd == "ping":
        return {"cmd": cmd}
    if cmd == "pair":
        d = device(args.get("device"), "args.device")
        for k in ("role", "serial"):
            if k in args and args[k] != d[k]:
                raise ValidationError(f"args.{k} {str(args[k])[:32]!r} is not that of device {d['hw_id']} "
                                      f"({d[k]}) in installation {code}", field=f"args.{k}")
        return {"cmd": cmd, "device": d["hw_id"]}
    devs = args.get("devices")
    if not isinstance(devs, list) or not devs:
        raise ValidationError(f"test_mode needs args.devices, a non-empty list of the installation's devices: "
                              f"{_FORMS[cmd]}", field="args.devices")
    listed = [device(hw, "args.devices")["hw_id"] for hw in devs]
    if len(set(listed)) != len(listed):
        raise ValidationError("args.devices lists a device twice", field="args.devices")
    if not isinstance(args.get("enabled"), bool):
        raise ValidationError(f"test_mode needs args.enabled, true or false: {_FORMS[cmd]}", field="args.enabled")
    if "duration_s" in args:
        dur = args["duration_s"]
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not math.isfinite(dur) \
                or not 0 < dur <= MAX_TEST_MODE_S:
            raise ValidationError(f"args.duration_s must be a number of seconds in (0, {MAX_TEST_MODE_S:.0f}]",
                                  field="args.duration_s")
    return {"cmd": cmd, "devices": listed, "enabled": args["enabled"]}
