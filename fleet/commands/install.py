"""`fleet install ...`: installations from creation to handover, move and deinstallation."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import add_broker_auth, add_json, api, emit, fmt_time, table

EPILOG = """\
a typical installation:
  fleet install create --resident R-7F3K9Q --location HOME-0042 --kit K-000017 \\
        --consent consent --consent-date 2026-11-20 --routing routing.json
  fleet install checklist I-000031 SN-BTN-0001 alarm_recipient="response centre" responder="night team" ...
  fleet install commission I-000031 --mqtt mqtts://fleet@broker --broker-password-file ~/.fleet-mqtt
        (checks checklist, consent and that the gateway answers; then press the test button on every device)
  fleet install handover I-000031 --format html -o handover.html
edits take --version N (shown by `fleet install show`): if someone else saved first you get a
conflict (exit 4) and must reload.
"""


def register(sub) -> None:
    p = sub.add_parser("install", help="installations: create, checklist, commission, handover, move, deinstall",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="install_cmd", metavar="ACTION", required=True)
    c = s.add_parser("create", help="start an installation of an assembled kit at a home or institution room")
    c.add_argument("--resident", required=True, help="pseudonymous resident reference (never a name or national id)")
    c.add_argument("--location", required=True, help="home or room code, e.g. HOME-0042 or INST-SAGA/101")
    c.add_argument("--kit", required=True)
    c.add_argument("--consent", required=True, choices=["consent", "capacity_assessment"])
    c.add_argument("--consent-date", required=True, metavar="YYYY-MM-DD")
    c.add_argument("--consent-ref", help="case/document reference (required for a capacity assessment)")
    c.add_argument("--routing", metavar="FILE|JSON", help="alarm routing chain (see docs/fleet.md)")
    c.set_defaults(func=cmd_create)
    ls = add_json(s.add_parser("list", help="installations in your municipalities"))
    ls.add_argument("--municipality", "-m")
    ls.add_argument("--status", choices=["commissioning", "active", "deinstalled", "purged"])
    ls.set_defaults(func=cmd_list)
    sh = add_json(s.add_parser("show", help="one installation incl. checklist, consent and routing (read is audited)"))
    sh.add_argument("code")
    sh.set_defaults(func=cmd_show)
    q = add_json(s.add_parser("questions", help="the checklist questions every device answers"))
    q.set_defaults(func=cmd_questions)
    ck = s.add_parser("checklist", help="answer checklist questions for one device: KEY=VALUE ...")
    ck.add_argument("code")
    ck.add_argument("device", metavar="SERIAL")
    ck.add_argument("answers", nargs="+", metavar="KEY=VALUE")
    ck.add_argument("--version", type=int, help="the version you loaded (conflict if it changed)")
    ck.set_defaults(func=cmd_checklist)
    rt = s.add_parser("routing", help="replace the alarm routing chain")
    rt.add_argument("code")
    rt.add_argument("routing", metavar="FILE|JSON")
    rt.add_argument("--version", type=int)
    rt.set_defaults(func=cmd_routing)
    cs = s.add_parser("consent", help="record consent or the reference of a capacity assessment")
    cs.add_argument("code")
    cs.add_argument("kind", choices=["consent", "capacity_assessment"])
    cs.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    cs.add_argument("--ref")
    cs.add_argument("--version", type=int)
    cs.set_defaults(func=cmd_consent)
    cm = add_broker_auth(s.add_parser(
        "commission", help="check checklist/consent, find the gateway, check it answers, pair, push config, wait "
                           "(with a countdown) for a test alarm per device, finish"))
    cm.add_argument("code")
    cm.add_argument("--mqtt", metavar="URL", help="platform broker: mqtt://HOST[:1883] or mqtts://[USER@]HOST[:8883] "
                                                  "(default $FLEET_MQTT)")
    cm.add_argument("--answer-timeout", type=float, default=10.0,
                    help="seconds the gateway has to answer before anything is sent to it (default 10)")
    cm.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all test alarms (default 600)")
    cm.add_argument("--skip-discovery", action="store_true", help="do not look for the gateway with mDNS")
    cm.add_argument("--skip-config", action="store_true", help="do not push the configuration (already pushed)")
    cm.add_argument("--discover-timeout", type=float, default=5.0)
    cm.add_argument("--mdns-interface", action="append", default=[], metavar="IP",
                    help="interface address to browse on (repeatable; default all)")
    cm.set_defaults(func=cmd_commission)
    dn = s.add_parser("complete", help="mark done (refused unless every device's test alarm was seen)")
    dn.add_argument("code")
    dn.add_argument("--version", type=int)
    dn.set_defaults(func=cmd_complete)
    ho = s.add_parser("handover", help="handover report (Markdown or HTML)")
    ho.add_argument("code")
    ho.add_argument("--format", choices=["md", "html"], default="md")
    ho.add_argument("-o", "--output", help="file (default stdout)")
    ho.set_defaults(func=cmd_handover)
    mv = s.add_parser("move", help="the resident moves to another room/home; devices go along")
    mv.add_argument("code")
    mv.add_argument("--to", required=True, metavar="LOCATION")
    mv.add_argument("--version", type=int)
    mv.set_defaults(func=cmd_move)
    de = s.add_parser("deinstall", help="end the service: items -> returned, personal data scheduled for deletion")
    de.add_argument("code")
    de.add_argument("--to", required=True, metavar="LOCATION", help="van or warehouse the items go back to")
    de.add_argument("--retention-days", type=float, default=30.0)
    de.add_argument("--version", type=int)
    de.set_defaults(func=cmd_deinstall)


def _json_arg(value: str) -> dict:
    from pathlib import Path

    from ..errors import ValidationError

    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read {value}: {exc}; give a JSON file or inline JSON") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"routing is not valid JSON: {exc}") from None


def cmd_create(args: argparse.Namespace, cfg) -> int:
    routing = _json_arg(args.routing) if args.routing else None
    with api(cfg) as c:
        inst = c.installations.create(resident_ref=args.resident, location=args.location, kit=args.kit,
                                      consent_kind=args.consent, consent_date=args.consent_date,
                                      consent_ref=args.consent_ref, routing=routing)
    emit(cfg, {"code": inst["code"], "version": inst["version"]} if cfg.json else
         f"installation {inst['code']} created (version {inst['version']}); next: checklist, then commission")
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_filters

    with api(cfg) as c:
        f = check_filters(c, municipality=args.municipality)
        rows = c.installations.list(municipality=f["municipality"], status=args.status)
    if not cfg.json:
        for r in rows:
            r["updated_at"] = fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["code", "status", "municipality", "location", "kit", "gateway_id", "version", "updated_at"])
    return 0


def cmd_show(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:            # the service audits this read of personal data
        inst = c.installations.show(args.code)
    if cfg.json:
        emit(cfg, inst)
        return 0
    devices, alarms = inst.pop("devices"), inst.pop("test_alarms")
    checklist, routing = inst.pop("checklist", None), inst.pop("routing", None)
    for k in ("created_at", "updated_at", "commissioned_at", "deinstalled_at", "purge_due_at", "purged_at"):
        inst[k] = fmt_time(inst[k])
    emit(cfg, inst)
    print("\ndevices:")
    table(devices, ["role", "serial", "hw_id", "model_code", "state"])
    print("\ntest alarms seen at the platform:")
    from ..installations._placement import DETECTOR

    for a in alarms:
        a["seen_at"] = fmt_time(a["seen_at"])
        p = a.get("placement")        # a fall sensor's test fall: the detector it runs
        a["placement"] = "" if p is None else f"{p} ({DETECTOR.get(p, '?')})" + (
            f" != checklist {a['placement_expected']}" if a.get("placement_expected") not in (None, p) else "")
    table(alarms, ["device_id", "event_id", "seen_at", "latency_ms", "placement"])
    if routing is not None:
        print("\nrouting: " + json.dumps(routing, ensure_ascii=False))
    if checklist is not None:
        print("checklist: " + json.dumps(checklist, ensure_ascii=False, indent=1))
    return 0


def cmd_questions(args: argparse.Namespace, cfg) -> int:
    from ..installations import QUESTIONS

    emit(cfg, [{"key": q.key, "kind": q.kind, "question": q.text} for q in QUESTIONS],
         columns=["key", "kind", "question"])
    return 0


def cmd_checklist(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    answers = {}
    for a in args.answers:
        k, sep, v = a.partition("=")
        if not sep:
            raise ValidationError(f"{a!r}: write answers as KEY=VALUE (see `fleet install questions`)")
        answers[k.strip()] = v
    with api(cfg) as c:
        v = c.installations.set_checklist(args.code, args.device, answers, version=args.version)["version"]
    print(f"{args.code}: {len(answers)} answer(s) saved for {args.device} (version {v})")
    return 0


def cmd_routing(args: argparse.Namespace, cfg) -> int:
    routing = _json_arg(args.routing)
    with api(cfg) as c:
        v = c.installations.set_routing(args.code, routing, version=args.version)["version"]
    print(f"{args.code}: routing saved (version {v})")
    return 0


def cmd_consent(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        v = c.installations.set_consent(args.code, args.kind, args.date, args.ref, version=args.version)["version"]
    print(f"{args.code}: consent recorded (version {v})")
    return 0


def cmd_commission(args: argparse.Namespace, cfg) -> int:
    from ..errors import CommissioningError
    from ..installations import commission
    from ..installations._adapters import MqttGatewayChannel, ZeroconfGatewayFinder
    from ._common import broker_client, broker_settings

    def say(msg: str) -> None:
        if sys.stdout.isatty():
            sys.stdout.write("\r" + " " * 110 + "\r")     # over the countdown line
        print(msg, flush=True)

    # The radio side (mDNS, MQTT to the gateway) runs here, in the home's network; the records
    # (plan, readiness, test alarms seen, completion, the config push) go through the service,
    # and so does signing each command: the fleet's control key stays with the service.
    # On one machine the in-process service pushes the configuration through this --mqtt broker.
    broker = broker_settings(args, url=args.mqtt)
    with api(cfg, mqtt=broker) as c:
        plan = c.installations.commissioning(args.code)
        gateway_id, devs, problems = plan["gateway_id"], plan["devices"], plan["problems"]
        if problems:
            raise CommissioningError(f"{args.code} is not ready for test mode:\n  - " + "\n  - ".join(problems),
                                     installation=args.code, problems=problems)
        client = broker_client(args, client_id=f"fleet-commission-{args.code}", url=args.mqtt).connect()
        try:
            push = None if args.skip_config else _config_pusher(c, args.code)
            channel = MqttGatewayChannel(client, sign=_service_signer(c, args.code), config_push=push, clock=cfg.clock)
            channel.subscribe_alarms(gateway_id)

            def on_seen(alarm, latency_ms):       # the service's answer says whether a fall's placement matches
                return c.installations.test_alarm(args.code, device_id=alarm.device_id, event_id=alarm.event_id,
                                                  seen_at=alarm.received_at, latency_ms=latency_ms,
                                                  placement=alarm.placement)

            rep = commission(gateway_id=gateway_id, devices=devs,
                             finder=None if args.skip_discovery else ZeroconfGatewayFinder(tuple(args.mdns_interface)),
                             channel=channel, timeout_s=args.timeout, on_seen=on_seen, say=say,
                             discover_timeout_s=args.discover_timeout, answer_timeout_s=args.answer_timeout,
                             countdown=_Countdown())
        finally:
            client.close()
        for message in rep.placement_mismatch.values():
            print(f"fleet: error: {message}", file=sys.stderr)
        if rep.missing:
            print(f"fleet: error: no test alarm from {', '.join(rep.missing)} within {args.timeout:g} s; "
                  f"the installation is NOT done — check the devices and run the command again", file=sys.stderr)
        if rep.missing or rep.placement_mismatch:
            if rep.placement_mismatch and not rep.missing:
                print("fleet: error: the installation is NOT done — a fall sensor runs another detector than the "
                      "checklist chose; fix it as above and run the command again", file=sys.stderr)
            return 6
        v = c.installations.complete(args.code, version=None)["version"]
    print(f"{args.code}: every device's test alarm reached the platform; installation active (version {v})")
    return 0


class _Countdown:
    """The time left for the test alarms: redrawn in place on a terminal, a line every 30 s otherwise."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.tty = sys.stdout.isatty()
        self.every_s = every_s
        self._last: float | None = None

    def __call__(self, remaining_s: float, missing: list) -> None:
        from ..installations._commission import fmt_remaining

        text = (f"{fmt_remaining(remaining_s)} left; waiting for a test alarm from "
                + ", ".join(f"{d['role']} {d['serial']}" for d in missing))
        if self.tty:
            sys.stdout.write("\r" + text[:110].ljust(110))
            sys.stdout.flush()
        elif self._last is None or self._last - remaining_s >= self.every_s:
            self._last = remaining_s
            print(text, flush=True)


def _service_signer(c, code: str):
    """``sign(gateway_id, cmd, args) -> (cmd_id, payload)`` for MqttGatewayChannel: the service signs
    each command (``POST /installations/{code}/commands``) for the installation's own gateway; this
    machine only publishes the signed message, so it needs no FLEET_CONTROL_KEY_FILE."""
    from ..errors import CommissioningError

    def sign(gateway_id: str, cmd: str, cmd_args: dict) -> tuple[str, str]:
        r = c.installations.sign_command(code, cmd, cmd_args)
        if r["gateway_id"] != gateway_id:
            raise CommissioningError(f"the service signed {cmd} for gateway {r['gateway_id']}, not {gateway_id}; "
                                     f"reload the installation (fleet install show {code}) and run the command again",
                                     gateway=gateway_id)
        return r["cmd_id"], r["payload"]

    return sign


def _config_pusher(c, code: str):
    """The service versions, publishes (retained ``wt/v1/gw/{gw}/config``) and audits the gateway's
    effective configuration through its broker (on one machine: this command's --mqtt)."""
    from ..errors import CommissioningError, ValidationError
    from ..client import ServerUnavailable

    def push(gateway_id: str) -> int:
        try:
            return int(c.installations.push_config(code)["version"])
        except ValidationError as exc:
            raise CommissioningError(f"configuration for {gateway_id} is not valid, nothing pushed: {exc.message}; "
                                     "fix it with `fleet config set` and run the commissioning again",
                                     gateway=gateway_id) from None
        except ServerUnavailable as exc:
            raise CommissioningError(f"the configuration for {gateway_id} could not be pushed: {exc.message}; "
                                     "run the commissioning again (or --skip-config if it is already pushed)",
                                     gateway=gateway_id) from None

    return push


def cmd_complete(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        v = c.installations.complete(args.code, version=args.version)["version"]
    print(f"{args.code}: installation active (version {v})")
    return 0


def cmd_handover(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:          # rendered by the service, with each device's firmware version (audited read)
        text = c.installations.handover(args.code, args.format).rstrip("\n")
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(text, encoding="utf-8")
        print(f"handover report written to {args.output}")
    else:
        sys.stdout.write(text + "\n")
    return 0


def cmd_move(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        v = c.installations.move(args.code, args.to, version=args.version)["version"]
    print(f"{args.code} moved to {args.to} (version {v})")
    return 0


def cmd_deinstall(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        v = c.installations.deinstall(args.code, args.to, retention_days=args.retention_days,
                                      version=args.version)["version"]
    print(f"{args.code} deinstalled (version {v}); items returned to {args.to}; personal data will be deleted "
          f"after {args.retention_days:g} days (fleet privacy purge), check with `fleet privacy verify {args.code}`")
    return 0
