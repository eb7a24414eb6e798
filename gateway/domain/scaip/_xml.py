"""SCAIP XML bodies: ``<mrq>`` request encoder and a tiny strict decoder for ``<mrs>`` replies.

Invariant: ``decode_reply`` / ``decode_request`` never raise, whatever the bytes; they
return a :class:`ScaipRejection` naming what was wrong. The parser is our own
(:mod:`._flatxml`), not ``xml.etree``: a SCAIP body is a flat list of
``<tag>text</tag>`` elements (one nested level, ``<lge>``, in requests), so a parser
that accepts exactly that needs no entity machinery at all. It refuses DOCTYPE / ENTITY declarations, CDATA, processing
instructions and every entity except the five predefined ones and character references;
"billion laughs" and external entities therefore cannot even be expressed. Input size,
element count and text length are bounded before any work is done.

Encoders are for our own, trusted values: they raise :class:`ScaipError` (field, value)
on a value the wire cannot carry (the mapping truncates free texts before that).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

from gateway.domain.scaip._codes import MediaReply, Snu
from gateway.domain.scaip._flatxml import (
    Reject,
    ScaipRejection,
    ScaipRejectReason,
    parse_flat,
    rejection_of,
)

MAX_REPLY_BYTES = 4096
MAX_REQUEST_BYTES = 8192


class ScaipError(ValueError):
    """An encoder was given a value SCAIP cannot carry. ``field`` is the tag, ``value`` the value."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


# ---- values ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GeoLocation:
    """``<lge>``: WGS84 ``"lat,lon"`` (``geo``), ISO time (``tim``), NMEA GGA sentence (``gga``)."""

    geo: str | None = None
    tim: str | None = None
    gga: str | None = None


@dataclass(frozen=True)
class ScaipRequest:
    """``<mrq>``: one report from the unit. Field names are the SCAIP tags; on the wire the
    elements follow :data:`REQUEST_ORDER` (the order of the standard's element list)."""

    ref: str
    cid: str
    dty: str
    ver: str | None = "01.00"
    sco: str | None = "0"
    cha: str | None = None
    mty: str | None = "ME"
    hbo: str | None = None
    did: str | None = None
    dco: str | None = None
    dte: str | None = None
    crd: str | None = None
    stc: str | None = None
    stt: str | None = None
    pri: str | None = None
    lco: str | None = None
    lva: str | None = None
    lte: str | None = None
    lge: GeoLocation | None = None
    ico: str | None = None
    ite: str | None = None
    ame: str | None = None


@dataclass(frozen=True)
class ScaipReply:
    """``<mrs>``: the centre's answer to the request whose ``ref`` it carries.

    ``ignored`` lists optional elements that were present but unusable (unknown tag, a
    value out of range): the reply still counts, the note goes to the log."""

    ref: str
    snu: Snu
    ste: str | None = None
    cve: str | None = None
    mre: MediaReply | None = None
    cre: str | None = None
    tnu: str | None = None
    hbi: int | None = None
    ignored: tuple[str, ...] = ()


# ---- field rules ----------------------------------------------------------------------

_TEXT_CHARS = r"[^\x00-\x08\x0b\x0c\x0e-\x1f]"


def _text(n: int) -> re.Pattern[str]:
    return re.compile(_TEXT_CHARS + "{0,%d}" % n)


_REF = re.compile(r"[A-Za-z0-9]{1,16}")

REQUEST_RULES: dict[str, re.Pattern[str]] = {
    "ref": _REF,
    "ver": re.compile(r"\d\d\.\d\d"),
    "sco": re.compile(r"\d"),
    "cha": re.compile(r"\d"),
    "mty": re.compile(r"ME|RE|IN|PI"),
    "hbo": re.compile(r"\d"),
    "cid": re.compile(r"\d{1,16}"),
    "dty": re.compile(r"\d{1,4}"),
    "did": _text(8),
    "dco": re.compile(r"\d{1,3}"),
    "dte": _text(32),
    "crd": _text(256),
    "stc": re.compile(r"\d{1,4}"),
    "stt": _text(32),
    "pri": re.compile(r"\d"),
    "lco": re.compile(r"\d{1,3}"),
    "lva": _text(2),
    "lte": _text(32),
    "ico": re.compile(r"\d{1,3}"),
    "ite": _text(128),
    "ame": re.compile(r"[01]"),
}
GEO_RULES: dict[str, re.Pattern[str]] = {
    "geo": re.compile(r"-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?"),
    "tim": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"),
    "gga": re.compile(r"\$[A-Z]{2}GGA,[ -~]{0,76}"),
}
_GEO_MAX = {"geo": 23, "tim": 32, "gga": 81}
REQUIRED_REQUEST = ("ref", "cid", "dty")
REQUEST_ORDER = ("ref", "ver", "sco", "cha", "mty", "hbo", "cid", "dty", "did", "dco", "dte", "crd", "stc", "stt",
                 "pri", "lco", "lva", "lte", "lge", "ico", "ite", "ame")

REPLY_RULES: dict[str, re.Pattern[str]] = {
    "ref": _REF,
    "snu": re.compile(r"\d{1,2}"),
    "ste": _text(128),
    "cve": re.compile(r"[0-9.]{1,8}"),
    "mre": re.compile(r"\d"),
    "cre": re.compile(r"\d{1,2}"),
    "tnu": re.compile(r"[0-9+*#]{1,32}"),
    "hbi": re.compile(r"[0-4]"),
}


def _value_text(v: object) -> str:
    return v.value if isinstance(v, enum.Enum) else str(v)


# ---- encoders -------------------------------------------------------------------------

def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _check(tag: str, value: str, rule: re.Pattern[str], max_len: int | None = None) -> None:
    if rule.fullmatch(value) is None or (max_len is not None and len(value) > max_len):
        raise ScaipError(f"SCAIP <{tag}> cannot carry {value!r}", field=tag, value=value)


def encode_request(req: ScaipRequest) -> bytes:
    """``<mrq>`` as UTF-8 bytes (compact, no whitespace). Raises :class:`ScaipError`."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><mrq>']
    for name in REQUEST_ORDER:
        v: Any = getattr(req, name)
        if v is None:
            if name in REQUIRED_REQUEST:
                raise ScaipError(f"SCAIP <{name}> is required", field=name, value=None)
            continue
        if name == "lge":
            inner = []
            for g in fields(GeoLocation):
                gv = getattr(v, g.name)
                if gv is None:
                    continue
                _check(f"lge/{g.name}", gv, GEO_RULES[g.name], _GEO_MAX[g.name])
                inner.append(f"<{g.name}>{_escape(gv)}</{g.name}>")
            if inner:
                parts.append("<lge>" + "".join(inner) + "</lge>")
            continue
        text = _value_text(v)
        _check(name, text, REQUEST_RULES[name])
        parts.append(f"<{name}>{_escape(text)}</{name}>")
    parts.append("</mrq>")
    return "".join(parts).encode("utf-8")


def encode_reply(reply: ScaipReply) -> bytes:
    """``<mrs>`` as UTF-8 bytes (what a centre sends; used by the test peers)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><mrs>']
    for name in ("ref", "snu", "ste", "cve", "mre", "cre", "tnu", "hbi"):
        v = getattr(reply, name)
        if v is None:
            continue
        text = str(int(v)) if isinstance(v, int) else _value_text(v)
        _check(name, text, REPLY_RULES[name])
        parts.append(f"<{name}>{_escape(text)}</{name}>")
    parts.append("</mrs>")
    return "".join(parts).encode("utf-8")


# ---- decoders -------------------------------------------------------------------------

def decode_reply(data: bytes) -> ScaipReply | ScaipRejection:
    """``<mrs>`` → :class:`ScaipReply`. Never raises.

    ``ref`` and ``snu`` must be present and valid (else the reply is refused: we could not
    tell what it answers or what it says). Optional elements with an unusable value, and
    unknown elements, are dropped and listed in ``ignored``."""
    try:
        return _decode_reply(data)
    except Reject as exc:
        return rejection_of(exc)
    except (RecursionError, MemoryError, ValueError, TypeError, IndexError) as exc:  # defence in depth
        return ScaipRejection(ScaipRejectReason.SYNTAX, f"unparseable: {type(exc).__name__}")


def _decode_reply(data: bytes) -> ScaipReply:
    _, values = parse_flat(data, limit=MAX_REPLY_BYTES, roots=("mrs",), nested=frozenset())
    for req in ("ref", "snu"):
        if req not in values:
            raise Reject(ScaipRejectReason.MISSING, f"<{req}> is required in <mrs>")
    ref, snu_text = values["ref"], values["snu"]
    if REPLY_RULES["ref"].fullmatch(ref) is None:
        raise Reject(ScaipRejectReason.BAD_VALUE, f"<ref> {ref[:32]!r} is not 1-16 letters/digits")
    if REPLY_RULES["snu"].fullmatch(snu_text) is None or int(snu_text) not in Snu._value2member_map_:
        raise Reject(ScaipRejectReason.BAD_VALUE, f"<snu> {snu_text[:8]!r} is not a status number 0-7")
    out: dict[str, Any] = {}
    ignored: list[str] = []
    for tag, value in values.items():
        if tag in ("ref", "snu"):
            continue
        rule = REPLY_RULES.get(tag)
        if rule is None or not isinstance(value, str):
            ignored.append(f"unknown <{tag}>")
            continue
        if rule.fullmatch(value) is None:
            ignored.append(f"<{tag}> {value[:16]!r} out of range")
            continue
        if tag == "mre":
            if int(value) not in MediaReply._value2member_map_:
                ignored.append(f"<mre> {value!r} unknown")
                continue
            out[tag] = MediaReply(int(value))
        elif tag == "hbi":
            out[tag] = int(value)
        else:
            out[tag] = value
    return ScaipReply(ref=ref, snu=Snu(int(snu_text)), ignored=tuple(ignored[:16]), **out)


def decode_request(data: bytes) -> ScaipRequest | ScaipRejection:
    """``<mrq>`` → :class:`ScaipRequest` (what a centre reads; used by the test peers and to
    check our own encoder). Never raises. Unknown elements are refused."""
    try:
        return _decode_request(data)
    except Reject as exc:
        return rejection_of(exc)
    except (RecursionError, MemoryError, ValueError, TypeError, IndexError) as exc:  # defence in depth
        return ScaipRejection(ScaipRejectReason.SYNTAX, f"unparseable: {type(exc).__name__}")


def _decode_request(data: bytes) -> ScaipRequest:
    _, values = parse_flat(data, limit=MAX_REQUEST_BYTES, roots=("mrq",), nested=frozenset({"lge"}))
    for req in REQUIRED_REQUEST:
        if req not in values:
            raise Reject(ScaipRejectReason.MISSING, f"<{req}> is required in <mrq>")
    kwargs: dict[str, Any] = {"ver": None, "sco": None, "mty": None}
    for tag, value in values.items():
        if tag == "lge":
            if not isinstance(value, Mapping):
                raise Reject(ScaipRejectReason.BAD_VALUE, "<lge> must hold <geo>/<tim>/<gga>")
            geo: dict[str, str] = {}
            for g, gv in value.items():
                rule = GEO_RULES.get(g)
                if rule is None or rule.fullmatch(gv) is None or len(gv) > _GEO_MAX[g]:
                    raise Reject(ScaipRejectReason.BAD_VALUE, f"<lge><{g[:16]}> {gv[:24]!r} is not valid")
                geo[g] = gv
            kwargs["lge"] = GeoLocation(**geo)
            continue
        rule = REQUEST_RULES.get(tag)
        if rule is None:
            raise Reject(ScaipRejectReason.BAD_VALUE, f"unknown element <{tag}> in <mrq>")
        if not isinstance(value, str) or rule.fullmatch(value) is None:
            raise Reject(ScaipRejectReason.BAD_VALUE, f"<{tag}> {str(value)[:24]!r} is not valid")
        kwargs[tag] = value
    return ScaipRequest(**kwargs)
