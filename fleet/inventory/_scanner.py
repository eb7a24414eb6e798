"""Barcode-scanner input: scanners type the code followed by Enter, often wrapped in a
prefix/suffix (STX/ETX, an AIM symbology identifier such as ``]C1``, or a configured text).

:func:`clean_scan` is pure and never raises: it returns the serial or a rejection reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_AIM = re.compile(r"^\][A-Za-z][0-9A-Za-z]")           # ]C1 (Code 128), ]Q3 (QR), ]d2 (DataMatrix)
_CONTROL = "".join(chr(c) for c in range(32)) + "\x7f"
_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")
_GS1_SERIAL = re.compile(r"^(?:\(21\)|21)(?P<serial>.+)$")


@dataclass(frozen=True)
class Scan:
    serial: str | None
    reason: str | None = None     # why the line was rejected
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.serial is not None


def clean_scan(line: str, *, prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = (),
               gs1: bool = False) -> Scan:
    raw = line
    s = line.strip(_CONTROL + " ")
    if not s:
        return Scan(None, "empty", raw)
    s = _AIM.sub("", s, count=1)
    for p in prefixes:
        if p and s.startswith(p):
            s = s[len(p):]
            break
    for suf in suffixes:
        if suf and s.endswith(suf):
            s = s[: -len(suf)]
            break
    s = s.strip(_CONTROL + " ")
    if gs1:
        m = _GS1_SERIAL.match(s)
        if m:
            s = m.group("serial")
    if not _SERIAL.match(s):
        return Scan(None, f"not a serial number: {s[:40]!r}", raw)
    return Scan(s, None, raw)
