"""SIP messages (RFC 3261 §7, §20): model, serializer, and a parser that never raises.

Pure code (no sockets): the UA feeds it datagrams or stream bytes. Invariant:
:func:`parse_message` and :class:`StreamDecoder` return a :class:`SipRejection` for any
input they do not accept — never an exception — and refuse anything over the size
bounds before looking inside. Header names are canonicalised (compact forms expanded),
folded header lines unfolded. A message we act on must carry Via, From, To, Call-ID and
a valid CSeq; a response's status is 100-699.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

MAX_MESSAGE_BYTES = 16384
MAX_HEADERS = 64
MAX_HEADER_CHARS = 2048
MAX_BODY_BYTES = 8192

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
           "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires"}
_CANONICAL = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type", "Max-Forwards",
    "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization", "Route", "Record-Route",
    "User-Agent", "Server", "Allow", "Supported", "Require", "Expires", "Date", "Warning", "Accept",
    "Authentication-Info", "Retry-After", "Subject", "Content-Encoding", "Event", "Allow-Events")}
_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]"
_METHOD = re.compile(_TOKEN + r"{1,32}")
_HEADER_NAME = re.compile(_TOKEN + r"{1,64}")
_REQUEST_LINE = re.compile(r"(" + _TOKEN + r"{1,32}) ([!-~]{1,1024}) SIP/2\.0")
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6]\d\d)(?: ([^\x00-\x08\x0a-\x1f\x7f]{0,256}))?")
_CSEQ = re.compile(r"(\d{1,10})\s+(" + _TOKEN + r"{1,32})")


class SipRejectReason(str, enum.Enum):
    EMPTY = "empty"
    OVERSIZE = "oversize"
    ENCODING = "encoding"
    START_LINE = "start_line"
    HEADER = "header"
    TOO_MANY_HEADERS = "too_many_headers"
    MISSING_HEADER = "missing_header"
    CONTENT_LENGTH = "content_length"
    CSEQ = "cseq"
    FRAMING = "framing"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SipRejection:
    reason: SipRejectReason
    detail: str = ""


def canonical_name(name: str) -> str:
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANONICAL.get(low, name)


@dataclass(frozen=True)
class Headers:
    """Ordered (name, value) pairs; names canonical. Lookups are case-insensitive."""

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> "Headers":
        return cls(tuple((canonical_name(n), v) for n, v in pairs))

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical_name(name).lower()
        for n, v in self.items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [v for n, v in self.items if n.lower() == key]

    def replace(self, name: str, value: str | None) -> "Headers":
        """Drop every ``name`` header and, unless ``value`` is None, append one."""
        key = canonical_name(name).lower()
        kept = tuple((n, v) for n, v in self.items if n.lower() != key)
        return Headers(kept + (((canonical_name(name), value),) if value is not None else ()))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    lines += [f"{n}: {v}" for n, v in headers if n != "Content-Length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass(frozen=True)
class SipRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)

    @property
    def cseq(self) -> tuple[int, str] | None:
        return parse_cseq(self.headers.get("CSeq"))


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return _serialize(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)

    @property
    def cseq(self) -> tuple[int, str] | None:
        return parse_cseq(self.headers.get("CSeq"))


SipMessage = SipRequest | SipResponse


# ---- header values ----------------------------------------------------------------------

def parse_cseq(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    m = _CSEQ.fullmatch(value.strip())
    if m is None or int(m.group(1)) > 2**31 - 1:
        return None
    return int(m.group(1)), m.group(2).upper()


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    out, cur, quoted, angle, esc = [], [], False, False, False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if quoted and ch == "\\":
            esc = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host


_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]{2,8})\s+(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._-]{1,253})"
                  r"(?:\s*:\s*(\d{1,5}))?\s*((?:;[^;]*)*)")


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        out[k.strip().lower()] = v.strip().strip('"')
    return out


def top_via(headers: Headers) -> Via | None:
    first = headers.get("Via")
    if first is None:
        return None
    parts = split_commas(first)
    if not parts:
        return None
    m = _VIA.fullmatch(parts[0].strip())
    if m is None:
        return None
    port = int(m.group(3)) if m.group(3) else None
    if port is not None and not 0 < port < 65536:
        return None
    return Via(m.group(1).upper(), m.group(2), port, _params(m.group(4) or ""))


def tag_of(value: str | None) -> str | None:
    """The ``tag`` parameter of a From/To value (after the name-addr), or None."""
    if value is None:
        return None
    tail = value.rsplit(">", 1)[1] if ">" in value else value
    return _params(tail.partition(";")[2]).get("tag") or None


def header_param(value: str, name: str) -> str | None:
    return _params(value.partition(";")[2]).get(name.lower())


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    def default_port(self, transport: str) -> int:
        if self.port:
            return self.port
        return 5061 if self.scheme == "sips" or transport == "tls" else 5060

    @property
    def bare_host(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


_URI = re.compile(r"(sips?):(?:([^@;?<>\s]{1,128})@)?(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._-]{1,253})"
                  r"(?::(\d{1,5}))?((?:;[^;?<>\s]*){0,16})(?:\?[^<>\s]*)?")


def parse_uri(text: str | None) -> SipUri | None:
    """``sip:user@host:port;params`` (also inside ``<...>``). Never raises; None on garbage."""
    if not text:
        return None
    text = text.strip()
    if "<" in text:
        inner = text[text.find("<") + 1:]
        text = inner[:inner.find(">")] if ">" in inner else inner
    m = _URI.fullmatch(text)
    if m is None:
        return None
    port = int(m.group(4)) if m.group(4) else None
    if port is not None and not 0 < port < 65536:
        return None
    return SipUri(m.group(1).lower(), m.group(2), m.group(3), port, _params(m.group(5) or ""))


# ---- parsing ---------------------------------------------------------------------------

def _head_lines(head: bytes) -> list[str] | SipRejection:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SipRejection(SipRejectReason.ENCODING, f"header not UTF-8 at byte {exc.start}")
    lines = text.split("\n")
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]] | SipRejection:
    lines = _head_lines(head)
    if isinstance(lines, SipRejection):
        return lines
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return SipRejection(SipRejectReason.EMPTY, "no start line")
    start, raw = lines[0], lines[1:]
    headers: list[tuple[str, str]] = []
    for ln in raw:
        if not ln:
            continue
        if ln[0] in " \t":                      # folded continuation (RFC 3261 §7.3.1)
            if not headers:
                return SipRejection(SipRejectReason.HEADER, "continuation line before any header")
            n, v = headers[-1]
            v = f"{v} {ln.strip()}"
            if len(v) > MAX_HEADER_CHARS:
                return SipRejection(SipRejectReason.OVERSIZE, f"header {n} longer than {MAX_HEADER_CHARS}")
            headers[-1] = (n, v)
            continue
        name, sep, value = ln.partition(":")
        name = name.strip()
        if not sep or _HEADER_NAME.fullmatch(name) is None:
            return SipRejection(SipRejectReason.HEADER, f"malformed header line {ln[:40]!r}")
        if len(value) > MAX_HEADER_CHARS:
            return SipRejection(SipRejectReason.OVERSIZE, f"header {name} longer than {MAX_HEADER_CHARS}")
        if any(ord(c) < 32 and c != "\t" for c in value):
            return SipRejection(SipRejectReason.HEADER, f"control character in header {name}")
        headers.append((canonical_name(name), value.strip()))
        if len(headers) > MAX_HEADERS:
            return SipRejection(SipRejectReason.TOO_MANY_HEADERS, f"more than {MAX_HEADERS} headers")
    return start, headers


def content_length(headers: Headers) -> int | None | SipRejection:
    value = headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 7:
        return SipRejection(SipRejectReason.CONTENT_LENGTH, f"Content-Length {value[:16]!r}")
    return int(value)


def _build(start: str, headers: Headers, body: bytes) -> SipMessage | SipRejection:
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if headers.get(required) is None:
            return SipRejection(SipRejectReason.MISSING_HEADER, f"{required} missing")
    cseq = parse_cseq(headers.get("CSeq"))
    if cseq is None:
        return SipRejection(SipRejectReason.CSEQ, f"CSeq {(headers.get('CSeq') or '')[:32]!r}")
    if len(body) > MAX_BODY_BYTES:
        return SipRejection(SipRejectReason.OVERSIZE, f"body {len(body)} bytes > {MAX_BODY_BYTES}")
    if start.startswith("SIP/"):
        m = _STATUS_LINE.fullmatch(start)
        if m is None:
            return SipRejection(SipRejectReason.START_LINE, f"status line {start[:60]!r}")
        return SipResponse(int(m.group(1)), (m.group(2) or "").strip(), headers, body)
    m = _REQUEST_LINE.fullmatch(start)
    if m is None:
        return SipRejection(SipRejectReason.START_LINE, f"request line {start[:60]!r}")
    method = m.group(1).upper()
    if cseq[1] != method:
        return SipRejection(SipRejectReason.CSEQ, f"CSeq method {cseq[1]} is not {method}")
    return SipRequest(method, m.group(2), headers, body)


def parse_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> SipMessage | SipRejection:
    """One datagram → a request or response. Never raises.

    The body is what follows the blank line, cut to Content-Length when that is smaller;
    a Content-Length beyond the datagram is refused (RFC 3261 §18.3)."""
    try:
        return _parse_datagram(data, max_bytes)
    except (ValueError, IndexError, RecursionError, MemoryError) as exc:   # defence in depth
        return SipRejection(SipRejectReason.HEADER, f"unparseable: {type(exc).__name__}")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    i = data.find(b"\r\n\r\n")
    j = data.find(b"\n\n")
    if i < 0 and j < 0:
        return None
    if i >= 0 and (j < 0 or i < j):
        return data[:i], data[i + 4:]
    return data[:j], data[j + 2:]


def _parse_datagram(data: bytes, max_bytes: int) -> SipMessage | SipRejection:
    if not data.strip(b"\r\n \t"):
        return SipRejection(SipRejectReason.EMPTY, "empty datagram")
    if len(data) > max_bytes:
        return SipRejection(SipRejectReason.OVERSIZE, f"{len(data)} bytes > {max_bytes}")
    split = _split_head(data)
    if split is None:
        return SipRejection(SipRejectReason.FRAMING, "no blank line after the headers")
    head, body = split
    parsed = _parse_head(head)
    if isinstance(parsed, SipRejection):
        return parsed
    start, pairs = parsed
    headers = Headers(tuple(pairs))
    cl = content_length(headers)
    if isinstance(cl, SipRejection):
        return cl
    if cl is not None:
        if cl > len(body):
            return SipRejection(SipRejectReason.CONTENT_LENGTH, f"Content-Length {cl} > {len(body)} bytes received")
        body = body[:cl]
    return _build(start, headers, body)


class StreamDecoder:
    """Frames SIP messages on a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3).

    ``feed`` returns the messages (or rejections) completed by the new bytes. A framing
    error is ``fatal``: the stream cannot be re-synchronised and the connection must be
    closed. CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self.fatal: SipRejection | None = None

    def feed(self, data: bytes) -> list[SipMessage | SipRejection]:
        if self.fatal is not None:
            return []
        self._buf += data
        out: list[SipMessage | SipRejection] = []
        try:
            return self._drain(out)
        except (ValueError, IndexError, RecursionError, MemoryError) as exc:   # defence in depth
            return self._fail(out, SipRejection(SipRejectReason.FRAMING, f"unparseable: {type(exc).__name__}"))

    def _drain(self, out: list[SipMessage | SipRejection]) -> list[SipMessage | SipRejection]:
        while True:
            while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
                del self._buf[:2 if self._buf[:2] == b"\r\n" else 1]
            if not self._buf:
                return out
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.max_bytes:
                    return self._fail(out, SipRejection(SipRejectReason.OVERSIZE, "header block without end"))
                return out
            head = bytes(self._buf[:end])
            parsed = _parse_head(head)
            if isinstance(parsed, SipRejection):
                return self._fail(out, parsed)
            start, pairs = parsed
            headers = Headers(tuple(pairs))
            cl = content_length(headers)
            if isinstance(cl, SipRejection):
                return self._fail(out, cl)
            cl = cl or 0
            total = end + 4 + cl
            if total > self.max_bytes:
                return self._fail(out, SipRejection(SipRejectReason.OVERSIZE, f"message of {total} bytes"))
            if len(self._buf) < total:
                return out
            body = bytes(self._buf[end + 4:total])
            del self._buf[:total]
            out.append(_build(start, headers, body))

    def _fail(self, out: list[SipMessage | SipRejection], rej: SipRejection) -> list[SipMessage | SipRejection]:
        self.fatal = rej
        self._buf.clear()
        out.append(rej)
        return out
