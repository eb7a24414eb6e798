"""Delivery-note CSV import: validate every row first, then insert all rows or none.

Format (header required; comma or semicolon separated; UTF-8, BOM tolerated)::

    serial,model,hw_id
    SN-BTN-000001,WT-BTN-2,a4c1380a1b2c

``hw_id`` may be empty for items without a radio id. Errors name the line number.
"""
from __future__ import annotations

import csv
import io
from typing import Callable, Iterable

from ..access import Actor
from ..errors import IntegrityViolation, ValidationError
from ..store import Store
from ._ids import normalise_hw_id, normalise_serial
from ._service import NewItem, receive_items
from ._states import ItemState

REQUIRED = ("serial", "model")
OPTIONAL = ("hw_id",)


def parse_delivery_note(text: str, models: dict[str, str]) -> list[NewItem]:
    """``models`` maps model code -> role. Raises ValidationError naming the first bad line."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ValidationError("the delivery note is empty; expected a header line: serial,model,hw_id",
                              line=1) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(f"line 1: header is missing column(s) {', '.join(missing)}; "
                              "expected serial,model[,hw_id]", line=1)
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL and c]
    if unknown:
        raise ValidationError(f"line 1: unknown column(s) {', '.join(unknown)}; expected serial,model[,hw_id]",
                              line=1)
    idx = {c: header.index(c) for c in header if c}
    items: list[NewItem] = []
    seen_serial: dict[str, int] = {}
    seen_hw: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ValidationError(f"line {line}: expected {len(header)} fields, found {len(row)}", line=line)
        try:
            serial = normalise_serial(row[idx["serial"]])
            model = row[idx["model"]].strip()
            if model not in models:
                raise ValidationError(f"unknown model {model!r}; add it with `fleet model add` or fix the line",
                                      field="model")
            hw = normalise_hw_id(row[idx["hw_id"]], role=models[model]) if "hw_id" in idx else None
        except ValidationError as exc:
            raise ValidationError(f"line {line}: {exc.message}", line=line, **exc.details) from None
        if serial in seen_serial:
            raise ValidationError(f"line {line}: serial {serial} repeats line {seen_serial[serial]}", line=line)
        seen_serial[serial] = line
        if hw:
            if hw in seen_hw:
                raise ValidationError(f"line {line}: device id {hw} repeats line {seen_hw[hw]}", line=line)
            seen_hw[hw] = line
        items.append(NewItem(serial, model, hw, line))
    if not items:
        raise ValidationError("the delivery note has a header but no items", line=1)
    return items


def _find_existing(store: Store, items: list[NewItem]) -> str:
    """After a unique violation: name the first line that clashes with an item already stored."""
    with store.transaction(write=False) as tx:
        for start in range(0, len(items), 500):
            batch = items[start:start + 500]
            marks = ", ".join("?" * len(batch))
            have = {r["serial"] for r in tx.query(f"SELECT serial FROM item WHERE serial IN ({marks})",
                                                  [i.serial for i in batch])}
            hws = [i.hw_id for i in batch if i.hw_id]
            have_hw = set()
            if hws:
                have_hw = {r["hw_id"] for r in tx.query(
                    f"SELECT hw_id FROM item WHERE hw_id IN ({', '.join('?' * len(hws))})", hws)}
            for it in batch:
                if it.serial in have:
                    return f"line {it.line}: serial {it.serial} is already registered (fleet device show {it.serial})"
                if it.hw_id and it.hw_id in have_hw:
                    return f"line {it.line}: device id {it.hw_id} already belongs to another item"
    return "an item in the file is already registered"


def import_delivery_note(store: Store, actor: Actor, text: str, location: str, *, at: float,
                         ref: str | None = None, state: ItemState = ItemState.IN_STOCK,
                         on_progress: Callable[[int], None] | None = None) -> int:
    """Atomic import: returns the number of items created; on any error nothing is stored."""
    with store.transaction(write=False) as tx:
        models = {r["code"]: r["role"] for r in tx.query("SELECT code, role FROM device_model")}
    items = parse_delivery_note(text, models)
    try:
        with store.transaction() as tx:
            return receive_items(tx, actor, items, location, at=at, state=state, ref=ref, on_progress=on_progress,
                                 validated=True)
    except IntegrityViolation:
        raise ValidationError(_find_existing(store, items) + "; nothing was imported") from None
