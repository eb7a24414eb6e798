"""`fleet rollout`: staged rollouts (canary + waves, thresholds, pause/resume/abort/rollback)."""
from __future__ import annotations

import argparse
import sys
import time

from ..clock import FunctionClock
from ._common import add_broker, add_json, api, connect_broker, emit, fmt_time, local_only, session

INLINE_MAX = 256 * 1024


def register(sub) -> None:
    p = sub.add_parser("rollout", help="staged rollouts of a release to gateways or sensors",
                       description="See docs/upgrades.md: waves, thresholds, the unit state machine, cmd messages.")
    s = p.add_subparsers(dest="rollout_cmd", metavar="ACTION", required=True)
    x = s.add_parser("create", help="plan a rollout of RELEASE (units split into canary + waves)")
    x.add_argument("release_id")
    x.add_argument("--id", dest="rollout_id", help="rollout id (default ro-<release>-<time>)")
    x.add_argument("--gateways", help="comma-separated gateway ids")
    x.add_argument("--municipality")
    x.add_argument("--group", help="config group")
    x.add_argument("--waves", default="0.01,0.1,0.5,1.0", help="cumulative fractions; the first is the canary")
    x.add_argument("--error-threshold", type=float, default=0.02, help="halt when failures in a wave exceed this")
    x.add_argument("--success-threshold", type=float, default=0.95, help="a wave must reach this to continue")
    x.add_argument("--max-in-flight", type=int, default=200)
    x.add_argument("--timeout-s", type=float, default=1800.0, help="a unit without result after this has failed")
    x.add_argument("--previous", help="release a rollback reinstalls (e.g. gateway@0.1.0)")
    x.add_argument("--seed", type=int, default=0)
    x.set_defaults(func=cmd_create)
    x = add_json(add_broker(s.add_parser("run", help="drive the rollout over MQTT until completed/halted/aborted")))
    x.add_argument("rollout_id")
    x.add_argument("--artifact-url", help="where gateways fetch the artifact (default: sent inline if small)")
    x.add_argument("--stop-when-paused", action="store_true")
    x.set_defaults(func=cmd_run)
    for name, hlp in (("pause", "stop sending new commands"), ("resume", "continue a paused or halted rollout"),
                      ("abort", "cancel every unit not yet sent"),
                      ("rollback", "reinstall --previous on units that succeeded")):
        x = s.add_parser(name, help=hlp)
        x.add_argument("rollout_id")
        if name == "resume":
            x.add_argument("--retry-failed", action="store_true",
                           help="queue the failed units again (sent with a new command id) before resuming")
        x.set_defaults(func=cmd_control, event=name)
    x = add_json(s.add_parser("status", help="progress per wave"))
    x.add_argument("rollout_id")
    x.set_defaults(func=cmd_status)
    add_json(s.add_parser("list", help="rollouts")).set_defaults(func=cmd_list)
    x = add_json(s.add_parser("units", help="units of a rollout"))
    x.add_argument("rollout_id")
    x.add_argument("--state", help="e.g. failed")
    x.set_defaults(func=cmd_units)


def _plan(args):
    from ..upgrades import RolloutError, RolloutPlan

    try:
        waves = tuple(float(w) for w in args.waves.split(","))
    except ValueError:
        raise RolloutError(f"--waves {args.waves!r} is not a list of fractions; write e.g. 0.01,0.1,1.0") from None
    return RolloutPlan(waves=waves, error_threshold=args.error_threshold, success_threshold=args.success_threshold,
                       max_in_flight=args.max_in_flight, unit_timeout_s=args.timeout_s)


def cmd_create(args: argparse.Namespace, cfg) -> int:
    plan = _plan(args)               # checked here first: the same messages as before
    with api(cfg) as c:
        made = c.rollouts.create(release_id=args.release_id, rollout_id=args.rollout_id,
                                 gateways=[g for g in (args.gateways or "").split(",") if g],
                                 municipality=args.municipality, group=args.group, waves=list(plan.waves),
                                 error_threshold=plan.error_threshold, success_threshold=plan.success_threshold,
                                 max_in_flight=plan.max_in_flight, timeout_s=plan.unit_timeout_s,
                                 previous=args.previous, seed=args.seed)
        rid = made["rollout_id"]
        p = c.rollouts.show(rid)
    print(rid)
    print(f"{p['total']} units in {p['waves']} waves "
          f"({', '.join(str(w['size']) for w in p['waves_detail'])}); "
          f"{p['by_state'].get('current', 0)} already current; start with: fleet rollout run {rid}", file=sys.stderr)
    return 0


# Units that reached an outcome by being updated (or found current). Cancelled units never
# ran: an aborted rollout shows how far it got, not a full bar.
_OUTCOMES = ("succeeded", "failed", "current", "reverted")


def _bar(p: dict) -> str:
    by = p.get("by_state") or {}
    done = sum(int(by.get(s, 0)) for s in _OUTCOMES)
    cancelled = int(by.get("cancelled", 0))
    frac = done / max(p["total"], 1)
    tail = f", {cancelled} cancelled" if cancelled else ""
    return (f"\r{p['rollout']} [{'#' * int(frac * 30):<30}] {done}/{p['total']} done{tail}, "
            f"wave {p['wave']}/{p['waves']} {p['state']}   ")


def cmd_run(args: argparse.Namespace, cfg) -> int:
    from ..access import Permission
    from ..upgrades import MqttTransport, RolloutEvent, RolloutState, run_rollout
    from ..upgrades._sql import ReleaseRepo, RolloutRepo

    local_only(cfg, "fleet rollout run (a worker that drives the rollout over MQTT)")
    clock = FunctionClock(cfg.clock)
    with session(cfg) as s:
        with s.store.transaction() as tx:
            s.actor.require(Permission.UPGRADE_WRITE)
            repo = RolloutRepo(tx)
            row = repo.row(args.rollout_id)
            eng = repo.load(args.rollout_id, clock)
            rel = ReleaseRepo(tx)
            signed = rel.signed(row["release_id"])
            artifact = rel.artifact(row["release_id"])
            prev = rel.signed(row["previous_id"]) if row["previous_id"] else None
            prev_art = rel.artifact(row["previous_id"]) if row["previous_id"] else None
            if eng.state is RolloutState.DRAFT:
                eng.control(RolloutEvent.START)
            pending = repo.take_control(args.rollout_id)
            if pending is not None:
                eng.control(pending)
            repo.save(eng, at=cfg.clock(), runner=True)
            s.audit(tx, "rollout.run", "rollout", args.rollout_id)
        inline = artifact if not args.artifact_url and len(artifact) <= INLINE_MAX else None
        url = args.artifact_url or f"fleet://release/{row['release_id']}"
        client = connect_broker(args, client_id=f"fleet-rollout-{args.rollout_id}")
        last = {"t": 0.0}

        def control():
            now = time.monotonic()
            if now - last["t"] < 0.5:
                return None
            last["t"] = now
            with s.store.transaction() as tx2:
                r = RolloutRepo(tx2)
                ev = r.take_control(args.rollout_id)
                if ev is not None:
                    eng.control(ev)
                r.save(eng, at=cfg.clock(), runner=True)
            return None

        def progress(p: dict) -> None:
            if cfg.progress:
                sys.stderr.write(_bar(p))
                sys.stderr.flush()

        try:
            from ..control import ControlSigner, StoreSeq    # signed commands; the per-gateway seq in the store

            run_rollout(eng, MqttTransport(client), release=signed, artifact_url=url, inline_artifact=inline,
                        signer=ControlSigner.from_env(StoreSeq(s.store)),
                        revert_release=prev, revert_url=f"fleet://release/{row['previous_id']}",
                        control=control, on_progress=progress, stop_when_paused=args.stop_when_paused)
        finally:
            client.close()
            with s.store.transaction() as tx:
                RolloutRepo(tx).save(eng, at=cfg.clock(), runner=False, detach=True)
            if cfg.progress:
                sys.stderr.write("\n")
    p = eng.progress()
    emit(cfg, p)
    if eng.state is RolloutState.HALTED:
        print(f"fleet: rollout halted: {eng.halt_reason}; {p['touched']} of {p['total']} units were touched. "
              f"Inspect: fleet rollout units {args.rollout_id} --state failed; then resume, abort or rollback.",
              file=sys.stderr)
        return 1
    return 0


def cmd_control(args: argparse.Namespace, cfg) -> int:
    from ..upgrades import RolloutEvent

    ev = RolloutEvent(args.event)
    retry = bool(getattr(args, "retry_failed", False))
    # the service applies it at once, or hands it to a running `fleet rollout run` (within a second)
    with api(cfg) as c:
        got = c.rollouts.control(args.rollout_id, ev.value, retry_failed=retry)
    if got["runner_attached"]:
        msg = f"{ev.value} requested; the running `fleet rollout run` applies it within a second"
    else:
        msg = f"rollout {args.rollout_id} is now {got['state']}"
        if retry:
            msg += f"; {got.get('retried', 0)} failed unit(s) queued again"
        if ev in (RolloutEvent.RESUME, RolloutEvent.ROLLBACK):
            msg += f"; send the commands with: fleet rollout run {args.rollout_id}"
    print(msg, file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        p = c.rollouts.show(args.rollout_id)       # progress with release and waves_detail (numbered from 1)
    if cfg.json:
        emit(cfg, p)
        return 0
    print(_bar(p).strip("\r"))
    if p["halt_reason"]:
        print(f"halted: {p['halt_reason']}")
    cols = sorted({k for w in p["waves_detail"] for k in w} - {"wave", "size"})
    emit(cfg, p["waves_detail"], columns=["wave", "size", *cols])
    return 0


def cmd_list(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        rows = c.rollouts.list()
    for r in rows:
        r["wave"] = int(r["wave"]) + 1             # waves are numbered from 1 everywhere (status, units, list)
    if not cfg.json:
        for r in rows:
            r["created_at"], r["updated_at"] = fmt_time(r["created_at"]), fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["rollout_id", "release_id", "state", "wave", "created_at", "halt_reason"])
    return 0


def cmd_units(args: argparse.Namespace, cfg) -> int:
    from ..upgrades import UnitState
    from ._filters import check_choice

    state = check_choice(args.state, [u.value for u in UnitState], "--state", "unit state") if args.state else None
    with api(cfg) as c:                            # an unknown rollout is "not found", not an empty table
        rows = c.rollouts.units(args.rollout_id, state=state)
    for r in rows:
        r["wave"] = int(r["wave"]) + 1             # the numbering of `fleet rollout status`
    if not cfg.json:
        for r in rows:
            r["updated_at"] = fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["unit_key", "wave", "state", "attempts", "updated_at", "error"])
    return 0
