"""Delivery-note CSV import: every row validated, then all rows stored or none.

Format (header required; comma or semicolon separated; UTF-8, BOM tolerated)::

    serial,model,hw_id
    SN-BTN-000001,WT-BTN-2,a4c1380a1b2c

``hw_id`` may be empty for items without a radio id. Errors name the line number.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Callable, Iterator

from ..access import Actor
from ..clock import Clock
from ..errors import IntegrityViolation, ValidationError
from ..store import Transactions
from ._ids import normalise_hw_id, normalise_serial
from ._model import InventoryRepo, NewItem
from ._service import InventoryService
from ._states import ItemState

_SERIAL_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{2,63}\Z")
_HEX12_OK = re.compile(r"[0-9a-f]{12}\Z")
REQUIRED = ("serial", "model")
OPTIONAL = ("hw_id",)


def parse_delivery_note(text: str, models: dict[str, str]) -> list[NewItem]:
    """``models`` maps model code -> role. Raises ValidationError naming the first bad line."""
    return list(iter_delivery_note(text, models))


def iter_delivery_note(text: str, models: dict[str, str]) -> Iterator[NewItem]:
    """Streaming form of :func:`parse_delivery_note` (the error surfaces when its line is reached)."""
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
    i_serial, i_model, i_hw = idx["serial"], idx["model"], idx.get("hw_id")
    ncols = len(header)
    fast_serial = _SERIAL_OK.match
    fast_hex = _HEX12_OK.match
    count = 0
    seen_serial: dict[str, int] = {}
    seen_hw: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if len(row) != ncols:
            if not row or all(not c.strip() for c in row):
                continue
            raise ValidationError(f"line {line}: expected {ncols} fields, found {len(row)}", line=line)
        try:
            serial = row[i_serial]
            if not fast_serial(serial):
                serial = normalise_serial(serial)
            model = row[i_model]
            role = models.get(model)
            if role is None:
                model = model.strip()
                role = models.get(model)
                if role is None:
                    raise ValidationError(f"unknown model {model!r}; add it with `fleet model add` or fix the line",
                                          field="model")
            hw = None
            if i_hw is not None:
                hw = row[i_hw]
                if not (role != "gateway" and fast_hex(hw)):
                    hw = normalise_hw_id(hw, role=role)
        except ValidationError as exc:
            raise ValidationError(f"line {line}: {exc.message}", line=line, **exc.details) from None
        if serial in seen_serial:
            raise ValidationError(f"line {line}: serial {serial} repeats line {seen_serial[serial]}", line=line)
        seen_serial[serial] = line
        if hw:
            if hw in seen_hw:
                raise ValidationError(f"line {line}: device id {hw} repeats line {seen_hw[hw]}", line=line)
            seen_hw[hw] = line
        count += 1
        yield NewItem(serial, model, hw, line)
    if not count:
        raise ValidationError("the delivery note has a header but no items", line=1)


def explain_clash(repo: InventoryRepo, items: list[NewItem]) -> str:
    """After a unique violation: name the first line that clashes with an item already stored."""
    have, have_hw = repo.existing([i.serial for i in items], [i.hw_id for i in items if i.hw_id])
    for it in items:
        if it.serial in have:
            return f"line {it.line}: serial {it.serial} is already registered (fleet device show {it.serial})"
        if it.hw_id and it.hw_id in have_hw:
            return f"line {it.line}: device id {it.hw_id} already belongs to another item"
    return "an item in the file is already registered"


def receive_delivery_note(transactions: Transactions[InventoryRepo], clock: Clock, actor: Actor, text: str,
                          location: str, *, ref: str | None = None, state: ItemState = ItemState.IN_STOCK,
                          on_progress: Callable[[int], None] | None = None) -> int:
    """Atomic import: returns the number of items created; on any error nothing is stored.

    Lines are parsed and validated while they stream into the repository (COPY / executemany
    on a database) inside one transaction, so parsing overlaps the server's work; a bad line
    aborts the transaction, so either every line is stored or none. A clash with an item
    already stored is explained (which line) in a second, read-only transaction.
    """
    upper = max(text.count("\n"), 1)
    models: dict[str, str] = {}
    try:
        with transactions() as repo:
            svc = InventoryService(repo, clock)
            models = repo.model_roles()
            loc = svc.get_location(location)
            return svc.bulk_receive(actor, loc, iter_delivery_note(text, models), upper, state=state, ref=ref,
                                    on_progress=on_progress)
    except IntegrityViolation:
        items = parse_delivery_note(text, models)
        with transactions(write=False) as repo:
            clash = explain_clash(repo, items)
        raise ValidationError(clash + "; nothing was imported") from None
