"""A tiny strict parser for flat XML bodies (SCAIP ``<mrq>`` / ``<mrs>``). Pure, no I/O.

Accepts exactly: an optional XML declaration (UTF-8 or ISO-8859-1), comments, one root
element (attributes ignored) holding ``<tag>text</tag>`` / ``<tag/>`` children, and one
nested level for the tags named in ``nested``. Refuses DOCTYPE / ENTITY declarations,
CDATA, processing instructions, every entity except the five predefined ones and
character references, control characters, duplicates, more than ``MAX_ELEMENTS``
elements and texts longer than ``MAX_TEXT_CHARS``. Linear time: no backtracking regex
over unbounded input, no recursion beyond one level. Errors unwind as :class:`Reject`.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

MAX_ELEMENTS = 64
MAX_TEXT_CHARS = 512


class ScaipRejectReason(str, enum.Enum):
    """Why a SCAIP body was refused (counted per reason by the route)."""

    EMPTY = "empty"
    OVERSIZE = "oversize"
    ENCODING = "encoding"
    FORBIDDEN_MARKUP = "forbidden_markup"   # DOCTYPE, ENTITY, CDATA, processing instruction
    ENTITY = "entity"                       # an entity other than the five predefined ones
    SYNTAX = "syntax"
    ROOT = "root"                           # not <mrs> / <mrq>
    TOO_MANY_ELEMENTS = "too_many_elements"
    DUPLICATE = "duplicate"
    MISSING = "missing"                     # a required element is absent
    BAD_VALUE = "bad_value"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ScaipRejection:
    reason: ScaipRejectReason
    detail: str = ""


# ---- the strict flat parser -----------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_ATTR = re.compile(r"\s+[A-Za-z_][A-Za-z0-9_.:-]{0,63}\s*=\s*(\"[^\"<&]{0,256}\"|'[^'<&]{0,256}')")
_DECL = re.compile(r"<\?xml(\s+[A-Za-z]+\s*=\s*(\"[A-Za-z0-9._-]{1,32}\"|'[A-Za-z0-9._-]{1,32}'))*\s*\?>")
_DECL_ENCODING = re.compile(r"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "utf-8", "ascii": "utf-8",
              "iso-8859-1": "latin-1", "latin-1": "latin-1", "latin1": "latin-1"}


class Reject(Exception):
    """Internal: unwinds the parser; converted to a :class:`ScaipRejection` at the edge."""

    def __init__(self, reason: ScaipRejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _xml_char_ok(cp: int) -> bool:
    return cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or 0x10000 <= cp <= 0x10FFFF


def _unescape(raw: str) -> str:
    if "&" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while True:
        j = raw.find("&", i)
        if j < 0:
            out.append(raw[i:])
            return "".join(out)
        out.append(raw[i:j])
        k = raw.find(";", j + 1, j + 12)
        if k < 0:
            raise Reject(ScaipRejectReason.ENTITY, "'&' not followed by an entity name and ';'")
        name = raw[j + 1:k]
        if name in _PREDEFINED:
            out.append(_PREDEFINED[name])
        elif re.fullmatch(r"#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}", name):
            cp = int(name[2:], 16) if name[1] == "x" else int(name[1:])
            if not _xml_char_ok(cp):
                raise Reject(ScaipRejectReason.ENTITY, f"character reference &{name}; is not an XML character")
            out.append(chr(cp))
        else:
            raise Reject(ScaipRejectReason.ENTITY, f"entity &{name[:16]}; is not one of the five predefined ones")
        i = k + 1


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.count = 0

    def skip_misc(self) -> None:
        """Whitespace and comments."""
        s = self.s
        while True:
            while self.i < len(s) and s[self.i] in " \t\r\n":
                self.i += 1
            if s.startswith("<!--", self.i):
                end = s.find("-->", self.i + 4)
                if end < 0:
                    raise Reject(ScaipRejectReason.SYNTAX, "unterminated comment")
                self.i = end + 3
                continue
            return

    def forbid_markup(self) -> None:
        s = self.s
        if s.startswith("<!", self.i):
            raise Reject(ScaipRejectReason.FORBIDDEN_MARKUP,
                          f"{s[self.i:self.i + 9]!r}: DOCTYPE, ENTITY and CDATA are not accepted")
        if s.startswith("<?", self.i):
            raise Reject(ScaipRejectReason.FORBIDDEN_MARKUP, "processing instructions are not accepted")

    def start_tag(self) -> tuple[str, bool]:
        """At '<name ...>' → (name, self_closing)."""
        s = self.s
        if not s.startswith("<", self.i) or s.startswith("</", self.i):
            raise Reject(ScaipRejectReason.SYNTAX, f"expected a start tag at offset {self.i}")
        m = _NAME.match(s, self.i + 1)
        if m is None:
            raise Reject(ScaipRejectReason.SYNTAX, f"bad element name at offset {self.i}")
        name = m.group(0)
        j = m.end()
        while True:
            a = _ATTR.match(s, j)
            if a is None:
                break
            j = a.end()
        while j < len(s) and s[j] in " \t\r\n":
            j += 1
        if s.startswith("/>", j):
            self.i = j + 2
            closing = True
        elif s.startswith(">", j):
            self.i = j + 1
            closing = False
        else:
            raise Reject(ScaipRejectReason.SYNTAX, f"malformed start tag <{name}>")
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise Reject(ScaipRejectReason.TOO_MANY_ELEMENTS, f"more than {MAX_ELEMENTS} elements")
        return name, closing

    def end_tag(self, name: str) -> None:
        s = self.s
        expect = "</" + name
        if not s.startswith(expect, self.i):
            raise Reject(ScaipRejectReason.SYNTAX, f"expected </{name}> at offset {self.i}")
        j = self.i + len(expect)
        while j < len(s) and s[j] in " \t\r\n":
            j += 1
        if not s.startswith(">", j):
            raise Reject(ScaipRejectReason.SYNTAX, f"malformed end tag </{name}>")
        self.i = j + 1

    def text(self, name: str) -> str:
        s = self.s
        j = s.find("<", self.i)
        if j < 0:
            raise Reject(ScaipRejectReason.SYNTAX, f"<{name}> is not closed")
        raw = s[self.i:j]
        if len(raw) > MAX_TEXT_CHARS:
            raise Reject(ScaipRejectReason.OVERSIZE, f"<{name}> text longer than {MAX_TEXT_CHARS} characters")
        if "]]>" in raw:
            raise Reject(ScaipRejectReason.SYNTAX, "']]>' in text")
        self.i = j
        return _unescape(raw).strip()


def _decode_text(data: bytes, limit: int) -> str:
    if not data:
        raise Reject(ScaipRejectReason.EMPTY, "empty body")
    if len(data) > limit:
        raise Reject(ScaipRejectReason.OVERSIZE, f"{len(data)} bytes > {limit}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    codec = "utf-8"
    head = data[:128]
    if head.startswith(b"<?xml"):
        m = _DECL_ENCODING.search(head.split(b"?>", 1)[0].decode("ascii", "replace"))
        if m is not None:
            codec = _ENCODINGS.get(m.group(1).lower(), "")
            if not codec:
                raise Reject(ScaipRejectReason.ENCODING, f"encoding {m.group(1)[:20]!r} is not supported")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise Reject(ScaipRejectReason.ENCODING, f"not {codec}: {exc.reason} at byte {exc.start}") from None
    if _BAD_CHARS.search(text):
        raise Reject(ScaipRejectReason.SYNTAX, "control characters are not allowed in XML")
    return text


def parse_flat(data: bytes, *, limit: int, roots: tuple[str, ...],
                nested: frozenset[str]) -> tuple[str, dict[str, Any]]:
    """→ (root, {tag: text | {tag: text}}). Raises _Reject."""
    text = _decode_text(data, limit)
    sc = _Scanner(text)
    sc.skip_misc()
    if text.startswith("<?xml", sc.i):
        m = _DECL.match(text, sc.i)
        if m is None:
            raise Reject(ScaipRejectReason.SYNTAX, "malformed XML declaration")
        sc.i = m.end()
    sc.skip_misc()
    sc.forbid_markup()
    root, empty = sc.start_tag()
    if root not in roots:
        raise Reject(ScaipRejectReason.ROOT, f"root element <{root}>, expected <{'> or <'.join(roots)}>")
    values: dict[str, Any] = {}
    if not empty:
        _children(sc, root, values, nested, depth=0)
    sc.skip_misc()
    if sc.i != len(text):
        sc.forbid_markup()
        raise Reject(ScaipRejectReason.SYNTAX, f"content after </{root}>")
    return root, values


def _children(sc: _Scanner, parent: str, into: dict[str, Any], nested: frozenset[str], depth: int) -> None:
    s = sc.s
    while True:
        sc.skip_misc()
        if sc.i >= len(s):
            raise Reject(ScaipRejectReason.SYNTAX, f"<{parent}> is not closed")
        if s.startswith("</", sc.i):
            sc.end_tag(parent)
            return
        if s[sc.i] != "<":
            raise Reject(ScaipRejectReason.SYNTAX, f"text directly inside <{parent}>")
        sc.forbid_markup()
        name, empty = sc.start_tag()
        if name in into:
            raise Reject(ScaipRejectReason.DUPLICATE, f"<{name}> appears twice in <{parent}>")
        if empty:
            into[name] = ""
            continue
        if depth == 0 and name in nested:
            sub: dict[str, Any] = {}
            _children(sc, name, sub, frozenset(), depth + 1)
            into[name] = sub
            continue
        value = sc.text(name)
        sc.end_tag(name)
        into[name] = value


def rejection_of(exc: Reject) -> ScaipRejection:
    return ScaipRejection(exc.reason, exc.detail)
