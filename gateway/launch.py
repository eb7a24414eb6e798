"""The stable launcher of the gateway service: picks the A/B slot to start, then execs it.

Installed as ``/usr/lib/wt-gateway/launch.py`` by the Debian package and never replaced
by a gateway update, so it uses the standard library only and must run standalone::

    python3 launch.py --slots /var/lib/wt-gateway/slots --config /etc/wt-gateway/gateway.toml \\
                      [--vendor /usr/lib/wt-gateway/vendor] [--factory DIR] [-- --set KEY=VALUE ...]

It execs ``python3 -P -m gateway run --config FILE`` with ``PYTHONPATH=<slots>/<slot>/app:<vendor>``
(the slot's real directory, not the ``current`` link, so a later switch never changes the
code of a running process), so the service's main PID is the daemon (sd_notify works).

The state of the slots is ``<slots>/state.json`` (this module is the one implementation of
its format; the daemon's ``gateway.adapters.upgrade.SlotStore`` uses these functions)::

    {"format": 1, "active": "a", "version": "0.1.0",          the committed (known good) slot
     "previous": {"slot": "b", "version": "0.0.9"} | null,     the one before it
     "pending": {"slot": "b", "version": "0.2.0", "cmd_id": ..., "deployment": ...,
                 "switched_at": t, "deadline_s": 120, "attempts": 0, "running_at": t | null} | null,
     "installing": {...} | null, "last_rollback": {...} | null,
     "results": {cmd_id: [status, detail]}, "unreported": [cmd_id, ...]}

Decision on every start (:func:`choose`):

* ``pending`` and its one start attempt already used (the process in it died or was killed
  before it committed) → roll back to ``active`` and record why: ``crash_at_start`` (it never
  got running), ``commit_deadline`` (it ran longer than its deadline without committing),
  ``killed_before_commit`` (it was running, then stopped: kill -9, crash, power cut);
  a deleted pending slot is ``slot_missing``. The result for the update's ``cmd_id`` is
  stored for the daemon to publish.
* ``pending`` not tried yet → count the attempt, start it (the daemon commits or rolls back).
* otherwise start ``active``; if it is missing or incomplete, the previous known good slot,
  then any valid slot, then a copy of the factory release (``--factory``).
* a corrupt or missing ``state.json`` → its backup ``state.json.bak``, else rebuilt from
  what is on disk (the slot ``current`` points to if valid, else any valid slot).

Every decision is printed on stderr (the journal under systemd). state.json and the
``current`` link are replaced atomically (write, fsync, rename, fsync the directory).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

STATE_FORMAT = 1
SLOTS = ("a", "b")
EXIT_RESTART = 75          # the daemon exits with this to be restarted into another slot (EX_TEMPFAIL)
MAX_START_ATTEMPTS = 1     # starts a pending slot gets before it is rolled back
DEFAULT_DEADLINE_S = 120.0
MAX_RESULTS = 64
REASONS = ("crash_at_start", "killed_before_commit", "commit_deadline", "slot_missing", "health_failed")
REQUIRED = ("app/gateway/__init__.py", "app/gateway/__main__.py", "app/contracts/__init__.py")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"wt-gateway launch: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- files

def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename over ``path``, fsync the directory: old or new content after a power cut."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _valid_state(doc: Any) -> str | None:
    """None if ``doc`` is a usable state, else what is wrong with it."""
    if not isinstance(doc, dict):
        return "is not a JSON object"
    if doc.get("format") != STATE_FORMAT:
        return f"has format {doc.get('format')!r}, expected {STATE_FORMAT}"
    if doc.get("active") not in SLOTS:
        return f"names active slot {doc.get('active')!r}, not a or b"
    if not isinstance(doc.get("version"), str):
        return "has no version"
    p = doc.get("pending")
    if p is not None and (not isinstance(p, dict) or p.get("slot") not in SLOTS or p.get("slot") == doc["active"]):
        return f"has an unusable pending entry {p!r}"
    if not isinstance(doc.get("results", {}), dict) or not isinstance(doc.get("unreported", []), list):
        return "has unusable results"
    return None


def _read_one(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror})"
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"{path.name} is corrupt ({exc})"
    problem = _valid_state(doc)
    if problem:
        return None, f"{path.name} {problem}"
    doc.setdefault("previous", None)
    doc.setdefault("pending", None)
    doc.setdefault("installing", None)
    doc.setdefault("last_rollback", None)
    doc.setdefault("results", {})
    doc.setdefault("unreported", [])
    return doc, None


def read_state(slots: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The state (from state.json, else its backup) and the problems met on the way."""
    problems: list[str] = []
    doc, problem = _read_one(slots / "state.json")
    if doc is not None:
        return doc, problems
    problems.append(problem or "state.json unusable")
    doc, problem = _read_one(slots / "state.json.bak")
    if doc is not None:
        problems.append("using the backup state.json.bak")
        return doc, problems
    if problem and "missing" not in problem:
        problems.append(problem)
    return None, problems


def write_state(slots: Path, state: dict[str, Any]) -> None:
    """state.json.bak := the current state.json (if usable), then state.json := ``state``; both atomic."""
    state["format"] = STATE_FORMAT
    old, _ = _read_one(slots / "state.json")
    if old is not None:
        write_atomic(slots / "state.json.bak", json.dumps(old, sort_keys=True).encode())
    write_atomic(slots / "state.json", json.dumps(state, sort_keys=True, indent=1).encode())


def point_current(slots: Path, slot: str) -> None:
    """``current`` -> ``slot``, atomically (a symlink renamed over the old one)."""
    link = slots / "current"
    try:
        if os.readlink(link) == slot:
            return
    except FileNotFoundError:
        pass
    except OSError:                              # a real directory or file where the link belongs
        link.rename(slots / f"current.broken-{int(time.time())}")
    tmp = slots / "current.tmp"
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(slot, tmp)
    os.replace(tmp, link)
    fsync_dir(slots)


def current_target(slots: Path) -> str | None:
    try:
        t = os.readlink(slots / "current")
    except OSError:
        return None
    return t if t in SLOTS else None


def slot_problem(slots: Path, slot: str) -> str | None:
    """None if ``<slots>/<slot>`` holds a complete release, else what is missing."""
    d = slots / slot
    if not d.is_dir():
        return f"slot directory {d} does not exist"
    missing = [r for r in REQUIRED if not (d / r).is_file()]
    if missing:
        return f"slot {slot} is incomplete (no {', '.join(missing)})"
    return None


def slot_version(slots: Path, slot: str) -> str:
    """The version of the release in ``slot`` (release.json, else VERSION), or "unknown"."""
    try:
        v = json.loads((slots / slot / "release.json").read_text()).get("version")
        if isinstance(v, str) and v:
            return v
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return (slots / slot / "VERSION").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def remember_result(state: dict[str, Any], cmd_id: str | None, status: str, detail: dict[str, Any], *,
                    unreported: bool = True) -> None:
    """Keep the final result of a command (bounded); ``unreported``: the daemon must publish it."""
    if not cmd_id:
        return
    results = state.setdefault("results", {})
    results.pop(cmd_id, None)
    results[cmd_id] = [status, detail]
    while len(results) > MAX_RESULTS:
        results.pop(next(iter(results)))
    pend = state.setdefault("unreported", [])
    if unreported and cmd_id not in pend:
        pend.append(cmd_id)


# ---------------------------------------------------------------- rollback (launcher and daemon)

def rollback_text(reason: str, pending: dict[str, Any], to_slot: str, to_version: str, detail: str = "") -> str:
    v, s = pending.get("version", "?"), pending.get("slot", "?")
    back = f"rolled back to gateway {to_version} (slot {to_slot})"
    if reason == "crash_at_start":
        what = f"gateway {v} (slot {s}) exited before it was running (crash at start, or killed while starting)"
    elif reason == "killed_before_commit":
        what = (f"gateway {v} (slot {s}) was running but stopped before it committed "
                "(killed, crashed or power lost)")
    elif reason == "commit_deadline":
        what = (f"gateway {v} (slot {s}) did not reconnect and publish health within "
                f"{float(pending.get('deadline_s') or DEFAULT_DEADLINE_S):g} s")
    elif reason == "slot_missing":
        what = f"slot {s} with gateway {v} is missing or incomplete"
    else:
        what = f"gateway {v} (slot {s}) failed its health check"
    return f"{reason}: {what}{f' ({detail})' if detail else ''}; {back}"


def rollback_pending(slots: Path, state: dict[str, Any], reason: str, detail: str = "", *,
                     now: float | None = None) -> str:
    """Abandon the pending slot: ``current`` back to ``active``, the result for the update's
    command stored (error, rolled back, with the reason). Returns the message."""
    pending = state.get("pending") or {}
    now = time.time() if now is None else now
    text = rollback_text(reason, pending, state["active"], state["version"], detail)
    phase = "reboot" if reason in ("crash_at_start", "slot_missing") else "commit"
    result = {"deployment": pending.get("deployment"), "device": None, "version": pending.get("version"),
              "phase": phase, "error": text, "rolled_back": True, "reason": reason, "slot": pending.get("slot"),
              "running": state["version"]}
    remember_result(state, pending.get("cmd_id"), "error", result)
    state["last_rollback"] = {"slot": pending.get("slot"), "version": pending.get("version"), "reason": reason,
                              "error": text, "at": now, "cmd_id": pending.get("cmd_id")}
    state["pending"] = None
    write_state(slots, state)
    point_current(slots, state["active"])
    return text


# ---------------------------------------------------------------- choosing the slot

class Choice:
    """What the launcher starts: ``slot`` with ``version``; ``trial`` when it is an uncommitted update."""

    def __init__(self, slot: str, version: str, trial: bool, notes: list[str]) -> None:
        self.slot = slot
        self.version = version
        self.trial = trial
        self.notes = notes

    def as_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "version": self.version, "trial": self.trial, "notes": self.notes}


class NoSlot(RuntimeError):
    """No slot holds a usable release and there is no factory copy to seed one from."""


def seed_from_factory(slots: Path, factory: Path, slot: str) -> str:
    """Copy the factory release (``<factory>/app``, ``VERSION``) into ``slot``; returns its version."""
    tmp = slots / f".{slot}.seed"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    shutil.copytree(factory / "app", tmp / "app", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        version = (factory / "VERSION").read_text().strip() or "unknown"
    except OSError:
        version = "unknown"
    (tmp / "VERSION").write_text(version + "\n")
    (tmp / "release.json").write_text(json.dumps({"target": "gateway", "version": version, "source": "factory"}))
    os.sync()
    old = slots / slot
    if old.exists() or old.is_symlink():
        aside = slots / f".{slot}.broken-{int(time.time())}"
        old.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    tmp.rename(old)
    fsync_dir(slots)
    return version


def _fallback(slots: Path, prefer: list[str], factory: Path | None, notes: list[str]) -> tuple[str, str]:
    """The first valid slot of ``prefer`` (then any), else a fresh factory copy."""
    for s in [*prefer, *SLOTS]:
        if s in SLOTS and slot_problem(slots, s) is None:
            return s, slot_version(slots, s)
    if factory is not None and (factory / "app" / "gateway" / "__init__.py").is_file():
        target = prefer[0] if prefer and prefer[0] in SLOTS else "a"
        version = seed_from_factory(slots, factory, target)
        notes.append(f"no slot holds a usable release: installed the factory release {version} into slot {target}")
        return target, version
    raise NoSlot(f"no gateway software in {slots}: neither slot a nor b holds app/gateway and there is no factory "
                 "copy; reinstall the package (apt-get install --reinstall wt-gateway)")


def choose(slots: Path, *, factory: Path | None = None, now: float | None = None) -> Choice:
    """Decide which slot to start and record it in state.json (see the module docstring)."""
    now = time.time() if now is None else now
    slots.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    state, problems = read_state(slots)
    if state is None:
        cur = current_target(slots)
        prefer = [cur] if cur else []
        slot, version = _fallback(slots, prefer, factory, notes)
        if problems == ["state.json is missing"] and not (slots / "state.json.bak").exists():
            notes.append(f"first start: slot state created for gateway {version} in slot {slot}")
        else:
            notes.append(f"slot state unusable ({'; '.join(problems) or 'no state'}): rebuilt from the slots on "
                         f"disk, gateway {version} in slot {slot}" + (" (where current pointed)" if slot == cur else ""))
        state = {"format": STATE_FORMAT, "active": slot, "version": version, "previous": None, "pending": None,
                 "installing": None, "last_rollback": None, "results": {}, "unreported": []}
        write_state(slots, state)
    elif problems:
        notes.append("; ".join(problems))

    pending = state.get("pending")
    if pending:
        slot = pending["slot"]
        missing = slot_problem(slots, slot)
        reason = None
        if missing:
            reason, detail = "slot_missing", missing
        elif int(pending.get("attempts") or 0) >= MAX_START_ATTEMPTS:
            running_at = pending.get("running_at")
            deadline = float(pending.get("deadline_s") or DEFAULT_DEADLINE_S)
            if not running_at:
                reason, detail = "crash_at_start", ""
            elif now - float(running_at) > deadline:
                reason, detail = "commit_deadline", f"it ran {now - float(running_at):.0f} s without committing"
            else:
                reason, detail = "killed_before_commit", ""
        if reason is None:
            pending["attempts"] = int(pending.get("attempts") or 0) + 1
            pending["started_at"] = now
            pending["running_at"] = None
            write_state(slots, state)
            point_current(slots, slot)
            notes.append(f"starting gateway {pending.get('version')} from slot {slot}: trial start "
                         f"{pending['attempts']} of {MAX_START_ATTEMPTS} after an update from {state['version']}; it "
                         f"must reconnect and commit within {float(pending.get('deadline_s') or DEFAULT_DEADLINE_S):g} s "
                         f"or slot {state['active']} comes back")
            return Choice(slot, str(pending.get("version")), True, notes)
        notes.append(rollback_pending(slots, state, reason, detail, now=now))   # active checked below

    active = state["active"]
    problem = slot_problem(slots, active)
    if problem:
        prev = state.get("previous") or {}
        prefer = [str(prev["slot"])] if prev.get("slot") in SLOTS else []
        slot, version = _fallback(slots, prefer, factory, notes)
        known = " (the previous known good)" if prefer and slot == prefer[0] else ""
        notes.append(f"{problem}: starting gateway {version} from slot {slot}{known} instead of "
                     f"{state['version']} from slot {active}")
        state.update(active=slot, version=version, previous=None)
        write_state(slots, state)
    point_current(slots, state["active"])
    notes.append(f"starting gateway {state['version']} from slot {state['active']}")
    return Choice(state["active"], state["version"], False, notes)


def switch_to_previous(slots: Path) -> str:
    """By hand: make the previous known good slot the active one (``--switch-to-previous``)."""
    state, problems = read_state(slots)
    if state is None:
        raise NoSlot(f"cannot switch: {'; '.join(problems)}")
    prev = state.get("previous") or {}
    slot = prev.get("slot")
    if slot not in SLOTS or slot_problem(slots, slot):
        raise NoSlot("there is no previous release to switch to "
                     f"({slot_problem(slots, slot) if slot in SLOTS else 'none recorded'})")
    old = {"slot": state["active"], "version": state["version"]}
    state.update(active=slot, version=prev.get("version") or slot_version(slots, slot), previous=old, pending=None)
    write_state(slots, state)
    point_current(slots, slot)
    return f"switched to gateway {state['version']} in slot {slot} (was {old['version']} in slot {old['slot']}); " \
           "restart the service to run it"


# ---------------------------------------------------------------- exec

def gateway_argv(python: str, config: str | None, extra: list[str]) -> list[str]:
    argv = [python, "-P", "-m", "gateway", "run"]
    if config:
        argv += ["--config", config]
    return argv + extra


def gateway_env(slots: Path, slot: str, vendor: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str((slots / slot / "app").resolve())] + ([vendor] if vendor else []))
    env["WT_GW__UPGRADES__SLOTS_DIR"] = str(slots.resolve())
    env["WT_GATEWAY_SLOT"] = slot
    return env


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        i = args_in.index("--")
        args_in, extra = args_in[:i], args_in[i + 1:]
    p = argparse.ArgumentParser(prog="launch.py", description="Start the gateway from its current A/B slot "
                                "(rolls back an update that never committed).")
    p.add_argument("--slots", required=True, help="slots directory, e.g. /var/lib/wt-gateway/slots")
    p.add_argument("--config", help="gateway TOML passed to `gateway run --config`")
    p.add_argument("--vendor", help="third-party libraries directory, appended to PYTHONPATH")
    p.add_argument("--factory", help="factory release (app/, VERSION) to seed a slot from when none is usable "
                                     "(default: factory/ beside this file, if present)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the gateway (default: this one)")
    p.add_argument("--status", action="store_true", help="print the slot state and exit (changes nothing)")
    p.add_argument("--json", action="store_true", help="with --status: JSON output")
    p.add_argument("--switch-to-previous", action="store_true",
                   help="make the previous release active (roll back by hand), then exit")
    args = p.parse_args(args_in)
    slots = Path(args.slots)
    factory = Path(args.factory) if args.factory else Path(__file__).resolve().parent / "factory"
    if args.status:
        state, problems = read_state(slots)
        doc = {"slots": str(slots), "current": current_target(slots), "state": state, "problems": problems,
               "slot_versions": {s: slot_version(slots, s) if slot_problem(slots, s) is None else None
                                 for s in SLOTS}}
        if args.json:
            print(json.dumps(doc, indent=2, sort_keys=True))
        else:
            print(_status_text(doc))
        return 0 if state is not None else 1
    try:
        if args.switch_to_previous:
            print(switch_to_previous(slots))
            return 0
        choice = choose(slots, factory=factory if factory.is_dir() else None)
    except NoSlot as exc:
        _stderr(str(exc))
        return 2
    except OSError as exc:
        _stderr(f"cannot prepare the slots in {slots}: {exc}; check the disk and the permissions")
        return 2
    for n in choice.notes:
        _stderr(n)
    if args.config and not Path(args.config).is_file():
        _stderr(f"warning: config file {args.config} does not exist; the gateway will refuse to start")
    python = args.python
    os.execve(python, gateway_argv(python, args.config, extra), gateway_env(slots, choice.slot, args.vendor))
    return 0   # not reached


def _local_time(t: float) -> str:
    """Operators read Europe/Oslo time (falls back to the system zone without tzdata)."""
    import datetime
    try:
        from zoneinfo import ZoneInfo
        tz: Any = ZoneInfo("Europe/Oslo")
    except (ImportError, KeyError):  # no tzdata on this system (ZoneInfoNotFoundError is a KeyError)
        tz = None
    return datetime.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _status_text(doc: dict[str, Any]) -> str:
    st = doc["state"]
    lines = [f"slots       {doc['slots']} (current -> {doc['current'] or 'nothing'})"]
    if st is None:
        lines.append("state       unusable: " + "; ".join(doc["problems"]))
        return "\n".join(lines)
    lines.append(f"active      {st['active']}  gateway {st['version']}")
    prev = st.get("previous")
    lines.append(f"previous    {prev['slot']}  gateway {prev['version']}" if prev else "previous    none")
    pend = st.get("pending")
    lines.append(f"pending     {pend['slot']}  gateway {pend.get('version')} (attempts {pend.get('attempts', 0)})"
                 if pend else "pending     none")
    rb = st.get("last_rollback")
    if rb:
        at = _local_time(rb.get("at") or 0)
        lines.append(f"rollback    {at}: {rb.get('error')}")
    for s, v in doc["slot_versions"].items():
        lines.append(f"slot {s}      {v or 'empty or incomplete'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
