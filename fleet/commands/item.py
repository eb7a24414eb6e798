"""`fleet item ...` and `fleet scan ...`: receive, import, move, change state; scanner input."""
from __future__ import annotations

import argparse
import sys

from ._common import Progress, add_json, api, emit, fmt_time


def register(sub) -> None:
    p = sub.add_parser("item", help="serial-numbered items: list, receive, import a delivery note, move, set state")
    s = p.add_subparsers(dest="item_cmd", metavar="ACTION", required=True)
    ls = add_json(s.add_parser("list", help="list items (filters combine)"))
    ls.add_argument("--location")
    ls.add_argument("--model")
    ls.add_argument("--state")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(func=cmd_list)
    rc = s.add_parser("receive", help="register one new item")
    rc.add_argument("serial")
    rc.add_argument("--model", required=True)
    rc.add_argument("--hw-id", help="device id (12 hex / BLE MAC) or gateway id")
    rc.add_argument("--to", required=True, metavar="LOCATION")
    rc.add_argument("--state", default="in_stock", choices=["received", "in_stock"])
    rc.add_argument("--ref", help="delivery note / order reference")
    rc.set_defaults(func=cmd_receive)
    im = s.add_parser("import", help="import a delivery-note CSV (serial,model[,hw_id]); all rows or none",
                      epilog="example: fleet item import dn-2026-118.csv --to WH-OSL --ref DN-2026-118")
    im.add_argument("file", help="CSV file, or - for stdin")
    im.add_argument("--to", required=True, metavar="LOCATION")
    im.add_argument("--ref", help="delivery note reference (default: the file name)")
    im.add_argument("--state", default="in_stock", choices=["received", "in_stock"])
    im.set_defaults(func=cmd_import)
    mv = s.add_parser("move", help="move items to another location (state unchanged)")
    mv.add_argument("serials", nargs="+")
    mv.add_argument("--to", required=True, metavar="LOCATION")
    mv.add_argument("--reason", default="moved")
    mv.set_defaults(func=cmd_move)
    st = s.add_parser("set-state", help="change state along the transition table (see docs/fleet.md)")
    st.add_argument("serials", nargs="+")
    st.add_argument("--state", required=True)
    st.add_argument("--reason", required=True)
    st.add_argument("--to", metavar="LOCATION", help="also move it (e.g. to the repair vendor)")
    st.add_argument("--ref")
    st.set_defaults(func=cmd_set_state)
    add_json(s.add_parser("states", help="the state transition table")).set_defaults(func=cmd_states)

    sc = sub.add_parser("scan", help="read serials from a barcode scanner (one per line) and act on each",
                        epilog="examples:\n  fleet scan move --to VAN-03\n"
                               "  fleet scan state --state cleaning --reason 'back from home'\n"
                               "  fleet scan receive --model WT-BTN-2 --to WH-OSL --ref DN-118\n"
                               "Ctrl-D (end of input) finishes; each scan beeps, errors beep twice.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sc.add_argument("action", choices=["show", "move", "state", "receive"])
    sc.add_argument("--to", metavar="LOCATION")
    sc.add_argument("--state", help="target state for action 'state'")
    sc.add_argument("--reason", default="scanned")
    sc.add_argument("--model", help="model for action 'receive'")
    sc.add_argument("--ref")
    sc.add_argument("--prefix", action="append", default=[], help="scanner prefix to strip (repeatable)")
    sc.add_argument("--suffix", action="append", default=[], help="scanner suffix to strip (repeatable)")
    sc.add_argument("--gs1", action="store_true", help="accept GS1 (21)SERIAL codes")
    sc.add_argument("--no-beep", action="store_true")
    sc.set_defaults(func=cmd_scan)


def cmd_list(args: argparse.Namespace, cfg) -> int:
    from ._filters import check_filters

    with api(cfg) as c:
        f = check_filters(c, location=args.location, model=args.model, state=args.state)
        rows = c.items.list(location=f["location"], model=f["model"], state=f["state"], limit=args.limit)
    if not cfg.json:
        for r in rows:
            r["updated_at"] = fmt_time(r["updated_at"])
    emit(cfg, rows, columns=["serial", "hw_id", "model", "state", "location", "updated_at"])
    return 0


def cmd_receive(args: argparse.Namespace, cfg) -> int:
    from ..errors import IntegrityViolation, ValidationError

    with api(cfg) as c:
        try:
            c.items.receive(args.serial, args.model, args.to, hw_id=args.hw_id, state=args.state, ref=args.ref)
        except IntegrityViolation:
            raise ValidationError(_already_registered(c, args.serial, args.hw_id)) from None
    print(f"received {args.serial} at {args.to} ({args.state})")
    return 0


def _already_registered(c, serial: str, hw_id: str | None) -> str:
    """Which existing item the new one clashes with, in words (read after the refusal)."""
    from ..errors import FleetError

    for key, what in ((serial, "serial number"), (hw_id, "device id")):
        if not key:
            continue
        try:
            it = c.items.show(key)
        except FleetError:                 # not there, or not in the caller's municipalities
            continue
        if what == "serial number" and it["serial"].casefold() != key.strip().casefold():
            continue
        place = it.get("location")
        return (f"{what} {key} is already registered: {it['serial']}, {it['model']}, {it['state']}"
                + (f" at {place}" if place else "") + f"; nothing was received (see: fleet device show "
                f"{it['serial']})")
    return f"{serial} clashes with an item already registered; nothing was received"


def cmd_import(args: argparse.Namespace, cfg) -> int:
    from pathlib import Path

    from ..errors import ValidationError

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {args.file}: {exc}; give a UTF-8 CSV file") from None
    ref = args.ref or (Path(args.file).name if args.file != "-" else None)
    total = max(text.count("\n") - 1, 1)
    bar = Progress(total, f"importing {ref or 'stdin'}", enabled=cfg.progress and total >= 1000)

    def progress(done: int, _total: int) -> None:       # the service reports rows written so far
        if done > bar.done:
            bar.advance(done - bar.done)

    try:
        with api(cfg) as c:
            n = c.items.import_delivery(text, args.to, ref=ref, state=args.state, on_progress=progress)["imported"]
    finally:
        bar.close()
    emit(cfg, {"imported": n, "location": args.to, "ref": ref} if cfg.json else f"imported {n} items into {args.to}")
    return 0


def cmd_move(args: argparse.Namespace, cfg) -> int:
    with api(cfg) as c:
        _each(args.serials, lambda serial: c.items.move(serial, args.to, reason=args.reason), f"moved to {args.to}")
    print(f"moved {len(args.serials)} item(s) to {args.to}")
    return 0


def cmd_set_state(args: argparse.Namespace, cfg) -> int:
    from ..inventory import parse_state

    target = parse_state(args.state)
    with api(cfg) as c:
        _each(args.serials, lambda serial: c.items.transition(serial, target.value, reason=args.reason, to=args.to,
                                                              ref=args.ref), f"now {target.value}")
    print(f"{len(args.serials)} item(s) now {target.value}")
    return 0


def _each(serials: list[str], act, done: str) -> None:
    """One request per item; on the first refusal, say which items were already changed."""
    from ..errors import FleetError

    for i, serial in enumerate(serials):
        try:
            act(serial)
        except FleetError as exc:
            if i:
                exc.message = (f"{serial}: {exc.message} (already {done}: {', '.join(serials[:i])}; not changed: "
                               f"{', '.join(serials[i:])})")
            raise


def cmd_states(args: argparse.Namespace, cfg) -> int:
    from ..inventory import TRANSITIONS, transition_table_markdown

    if cfg.json:          # the domain's own table (no service call needed; the API serves the same at /item-states)
        emit(cfg, {s.value: sorted(t.value for t in targets) for s, targets in TRANSITIONS.items()})
    else:
        print(transition_table_markdown())
    return 0


def cmd_scan(args: argparse.Namespace, cfg) -> int:
    """One transaction per scan, so every good scan is kept even if a later one fails."""
    from ..errors import FleetError, IntegrityViolation, ValidationError
    from ..inventory import clean_scan, parse_state

    if args.action in ("move", "receive") and not args.to:
        raise ValidationError(f"scan {args.action} needs --to LOCATION")
    if args.action == "state" and not args.state:
        raise ValidationError("scan state needs --state STATE")
    if args.action == "receive" and not args.model:
        raise ValidationError("scan receive needs --model MODEL")
    target = parse_state(args.state) if args.state else None
    bell_ok, bell_err = ("", "") if args.no_beep else ("\a", "\a\a")
    ok = bad = 0
    out = sys.stdout
    with api(cfg) as c:
        if sys.stdin.isatty():
            print(f"scanning ({args.action}); Ctrl-D to finish", file=sys.stderr)
        for line in sys.stdin:
            scan = clean_scan(line, prefixes=tuple(args.prefix), suffixes=tuple(args.suffix), gs1=args.gs1)
            if not scan.ok:
                if scan.reason == "empty":
                    continue
                bad += 1
                sys.stderr.write(f"{bell_err}ERR  {scan.reason}\n")
                sys.stderr.flush()
                continue
            serial = scan.serial
            assert serial is not None  # scan.ok
            try:
                if args.action == "show":
                    it = c.items.show(serial)
                    msg = f"{it['serial']}  {it['model']}  {it['state']}"
                elif args.action == "move":
                    it = c.items.move(serial, args.to, reason=args.reason)
                    msg = f"{it['serial']} -> {args.to}"
                elif args.action == "state":
                    assert target is not None
                    it = c.items.transition(serial, target.value, reason=args.reason, to=args.to, ref=args.ref)
                    msg = f"{it['serial']} -> {it['state']}"
                else:
                    c.items.receive(serial, args.model, args.to, ref=args.ref, state="in_stock")
                    msg = f"{serial} received at {args.to}"
                ok += 1
                out.write(f"{bell_ok}OK   {msg}\n")
            except FleetError as exc:
                bad += 1
                text = _already_registered(c, serial, None) if isinstance(exc, IntegrityViolation) else exc.message
                sys.stderr.write(f"{bell_err}ERR  {serial}: {text}\n")
                sys.stderr.flush()
            out.flush()
    print(f"{ok} ok, {bad} error(s)", file=sys.stderr)
    return 0 if bad == 0 else 1
