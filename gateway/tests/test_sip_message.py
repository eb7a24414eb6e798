"""SIP message parsing (never raises, bounded), stream framing, URIs, Via, and digest
authentication against the RFC 2617 / RFC 7616 test vectors."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapters.sip import (
    CLIENT_TRANSITIONS,
    MAX_MESSAGE_BYTES,
    Challenge,
    Headers,
    SipRejection,
    SipRejectReason,
    SipRequest,
    SipResponse,
    StreamDecoder,
    Timers,
    TxState,
    authorization,
    choose,
    digest_response,
    parse_challenge,
    parse_message,
    parse_uri,
    top_via,
)
from gateway.adapters.sip._message import split_commas, tag_of
from gateway.adapters.sip._transaction import TxEvent

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REQ = (b"MESSAGE sip:arc@centre.example:5060 SIP/2.0\r\n"
       b"Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKabc;rport\r\n"
       b"Max-Forwards: 70\r\n"
       b"From: <sip:4711@centre.example>;tag=f1\r\n"
       b"To: <sip:arc@centre.example>\r\n"
       b"Call-ID: c1@gw\r\n"
       b"CSeq: 7 MESSAGE\r\n"
       b"Content-Type: application/scaip+xml\r\n"
       b"Content-Length: 5\r\n\r\n<mrq>")


def test_parse_request():
    m = parse_message(REQ)
    assert isinstance(m, SipRequest)
    assert (m.method, m.uri, m.body, m.cseq) == ("MESSAGE", "sip:arc@centre.example:5060", b"<mrq>", (7, "MESSAGE"))
    via = top_via(m.headers)
    assert (via.transport, via.host, via.port, via.branch, via.params["rport"]) == ("UDP", "10.0.0.2", 5070,
                                                                                     "z9hG4bKabc", "")
    assert parse_message(m.to_bytes()) == m


def test_parse_response_compact_folded_and_lf_only():
    raw = (b"SIP/2.0 200 OK\n"
           b"v: SIP/2.0/TCP [2001:db8::1]:5061 ;branch=z9hG4bKx, SIP/2.0/UDP proxy\n"
           b"f: <sip:a@b>;tag=1\n"
           b"t: <sip:c@d>\n"
           b" ;tag=2\n"
           b"i: x\n"
           b"CSeq: 1 MESSAGE\n"
           b"l: 3\n\nabcEXTRA")
    m = parse_message(raw)
    assert isinstance(m, SipResponse) and m.status == 200 and m.reason == "OK"
    assert m.body == b"abc"                                   # cut to Content-Length
    assert m.headers.get("To") == "<sip:c@d> ;tag=2" and tag_of(m.headers.get("To")) == "2"
    via = top_via(m.headers)
    assert (via.transport, via.host, via.port) == ("TCP", "[2001:db8::1]", 5061)


def test_header_helpers():
    assert split_commas('Digest a="x,y", b=2, <sip:a,b>') == ['Digest a="x,y"', "b=2", "<sip:a,b>"]
    h = Headers.of([("v", "a"), ("Via", "b"), ("Content-Length", "3")])
    assert h.get_all("VIA") == ["a", "b"] and h.replace("via", "c").get_all("v") == ["c"]
    assert tag_of('"A;B" <sip:x@y;tag=no>;tag=yes') == "yes" and tag_of("<sip:x@y>") is None


@pytest.mark.parametrize("raw, reason", [
    (b"", SipRejectReason.EMPTY),
    (b"\r\n\r\n", SipRejectReason.EMPTY),
    (b"MESSAGE sip:a SIP/2.0\r\nVia: x", SipRejectReason.FRAMING),
    (REQ.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"), SipRejectReason.START_LINE),
    (REQ.replace(b"CSeq: 7 MESSAGE", b"CSeq: 7 INVITE"), SipRejectReason.CSEQ),
    (REQ.replace(b"CSeq: 7 MESSAGE", b"CSeq: x MESSAGE"), SipRejectReason.CSEQ),
    (REQ.replace(b"CSeq: 7 MESSAGE", b"CSeq: 99999999999 MESSAGE"), SipRejectReason.CSEQ),
    (REQ.replace(b"Call-ID: c1@gw\r\n", b""), SipRejectReason.MISSING_HEADER),
    (REQ.replace(b"Content-Length: 5", b"Content-Length: 50"), SipRejectReason.CONTENT_LENGTH),
    (REQ.replace(b"Content-Length: 5", b"Content-Length: -1"), SipRejectReason.CONTENT_LENGTH),
    (REQ.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), SipRejectReason.HEADER),
    (REQ.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x010"), SipRejectReason.HEADER),
    (REQ.replace(b"To: <sip", b"To: <\xff\xfe"), SipRejectReason.ENCODING),
    (b"SIP/2.0 999 Nine\r\nVia: SIP/2.0/UDP a;branch=1\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n",
     SipRejectReason.START_LINE),
    (REQ.replace(b"Max-Forwards: 70\r\n", b"X: y\r\n" * 70), SipRejectReason.TOO_MANY_HEADERS),
    (REQ.replace(b"Max-Forwards: 70", b"X: " + b"y" * 3000), SipRejectReason.OVERSIZE),
    (REQ + b"x" * MAX_MESSAGE_BYTES, SipRejectReason.OVERSIZE),
])
def test_refused_messages(raw, reason):
    out = parse_message(raw)
    assert isinstance(out, SipRejection) and out.reason is reason, out


def test_stream_decoder_frames_by_content_length_and_skips_keepalives():
    resp = SipResponse(200, "OK", Headers.of([("Via", "SIP/2.0/TCP a;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
                                               ("To", "<sip:c@d>;tag=2"), ("Call-ID", "x"),
                                               ("CSeq", "1 MESSAGE")]), b"<mrs/>").to_bytes()
    stream = b"\r\n\r\n" + REQ + resp + b"\r\n" + REQ
    dec = StreamDecoder()
    out = []
    for i in range(0, len(stream), 7):                  # arbitrary TCP segmentation
        out += dec.feed(stream[i:i + 7])
    assert [type(m).__name__ for m in out] == ["SipRequest", "SipResponse", "SipRequest"]
    assert out[1].body == b"<mrs/>" and dec.fatal is None


def test_stream_decoder_failures_are_fatal():
    dec = StreamDecoder(max_bytes=1000)
    assert isinstance(dec.feed(b"X" * 1001)[0], SipRejection) and dec.fatal.reason is SipRejectReason.OVERSIZE
    assert dec.feed(REQ) == []                          # the stream cannot be re-synchronised
    dec2 = StreamDecoder()
    (rej,) = dec2.feed(REQ.replace(b"Content-Length: 5", b"Content-Length: 5x"))
    assert rej.reason is SipRejectReason.CONTENT_LENGTH and dec2.fatal is not None


@pytest.mark.parametrize("text, expect", [
    ("sip:arc@centre.example", ("sip", "arc", "centre.example", None)),
    ("sips:arc@10.0.0.1:5061;transport=tls", ("sips", "arc", "10.0.0.1", 5061)),
    ("<sip:127.0.0.1:5070;lr>", ("sip", None, "127.0.0.1", 5070)),
    ("sip:[2001:db8::1]:5060", ("sip", None, "[2001:db8::1]", 5060)),
])
def test_uris(text, expect):
    u = parse_uri(text)
    assert (u.scheme, u.user, u.host, u.port) == expect
    assert parse_uri(str(u)) == u


@pytest.mark.parametrize("text", ["", "http://x", "sip:", "sip:a@", "sip:a@b:99999", "sip:a b@c", "tel:+47"])
def test_bad_uris(text):
    assert parse_uri(text) is None


# ---- digest -------------------------------------------------------------------------------

def test_rfc2617_md5_vector():
    ch = Challenge(realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=("auth",),
                   opaque="5ccc069c403ebaf9f0171e9517f40e41")
    assert digest_response(ch, username="Mufasa", password="Circle Of Life", method="GET", uri="/dir/index.html",
                           nc=1, cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize("algorithm, expect", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(algorithm, expect):
    ch = Challenge(realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                   algorithm=algorithm, qop=("auth",))
    assert digest_response(ch, username="Mufasa", password="Circle of Life", method="GET", uri="/dir/index.html",
                           nc=1, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ") == expect


def test_challenge_parsing_and_choice():
    md5 = parse_challenge('Digest realm="r", nonce="n1", qop="auth,auth-int", opaque="o", stale=TRUE', proxy=True)
    assert (md5.realm, md5.nonce, md5.algorithm, md5.qop, md5.opaque, md5.stale, md5.proxy) == (
        "r", "n1", "MD5", ("auth", "auth-int"), "o", True, True)
    sha = parse_challenge('Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"')
    auth_int = parse_challenge('Digest realm="r", nonce="n3", qop="auth-int"')
    weird = parse_challenge('Digest realm="r", nonce="n4", algorithm=SHA-512-256, qop="auth"')
    assert choose([md5, sha]) is sha and choose([auth_int, weird]) is None
    assert choose([parse_challenge('Digest realm="r", nonce="x"')]).qop == ()      # RFC 2069 form


@pytest.mark.parametrize("value", ["", "Basic realm=x", "Digest", "Digest realm=r", 'Digest realm="r", nonce="x',
                                   "Digest realm r", "Digest =x", "Digest " + "a=b," * 40])
def test_unreadable_challenges(value):
    assert parse_challenge(value) is None


def test_authorization_header():
    ch = Challenge(realm="centre.test", nonce="abc", algorithm="SHA-256", qop=("auth",), opaque='o"q')
    h = authorization(ch, username="4711", password="pw", method="MESSAGE", uri="sip:arc@c", nc=2, cnonce="cn")
    assert h.startswith('Digest username="4711", realm="centre.test", nonce="abc", uri="sip:arc@c", response="')
    assert h.endswith('algorithm=SHA-256, cnonce="cn", qop=auth, nc=00000002, opaque="o\\"q"')
    legacy = Challenge(realm="r", nonce="n")
    assert "qop" not in authorization(legacy, username="u", password="p", method="MESSAGE", uri="sip:x", nc=1,
                                      cnonce="c")
    with pytest.raises(ValueError):
        authorization(Challenge(realm="r", nonce="n", qop=("auth-int",)), username="u", password="p",
                      method="MESSAGE", uri="sip:x", nc=1, cnonce="c")


# ---- transaction table ----------------------------------------------------------------------

def test_client_transaction_table():
    assert not [k for k in CLIENT_TRANSITIONS if k[0] is TxState.TERMINATED]
    assert CLIENT_TRANSITIONS[(TxState.COMPLETED, TxEvent.FINAL)] == (TxState.COMPLETED, ())   # absorbed
    t = Timers(t1=0.5, t2=4.0)
    intervals, e = [], t.t1
    for _ in range(6):
        e = t.next_e(TxState.TRYING, e)
        intervals.append(e)
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert t.next_e(TxState.PROCEEDING, 0.5) == 4.0 and t.f == 32.0 and t.k(True) == 0 and t.k(False) == 5.0


# ---- fuzz ---------------------------------------------------------------------------------

_lines = st.lists(st.one_of(
    st.sampled_from(["MESSAGE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 401 Unauthorized", "Via: SIP/2.0/UDP h;branch=z9",
                     "From: <sip:a@b>;tag=1", "To: <sip:c@d>", "Call-ID: x", "CSeq: 1 MESSAGE", "Content-Length: 3",
                     "Content-Length: 99999999", "l: 0", " folded", "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"",
                     "", ":", "Via: ,,,", "CSeq: 4294967296 MESSAGE"]),
    st.text(max_size=30)), max_size=14)


@FUZZ
@given(st.binary(max_size=800))
def test_parser_never_raises_on_bytes(data):
    assert isinstance(parse_message(data), (SipRequest, SipResponse, SipRejection))
    dec = StreamDecoder(max_bytes=2000)
    for m in dec.feed(data) + dec.feed(data):
        assert isinstance(m, (SipRequest, SipResponse, SipRejection))


@FUZZ
@given(_lines, st.sampled_from(["\r\n", "\n"]), st.binary(max_size=20))
def test_parser_never_raises_on_sip_like_text(lines, eol, body):
    raw = (eol.join(lines) + eol + eol).encode("utf-8", "surrogatepass") + body
    m = parse_message(raw)
    assert isinstance(m, (SipRequest, SipResponse, SipRejection))
    if not isinstance(m, SipRejection):
        top_via(m.headers)
        tag_of(m.headers.get("To"))
        for v in m.headers.get_all("WWW-Authenticate"):
            parse_challenge(v)
    for chunk in StreamDecoder().feed(raw):
        assert isinstance(chunk, (SipRequest, SipResponse, SipRejection))


@FUZZ
@given(st.text(max_size=200))
def test_header_value_parsers_never_raise(text):
    parse_challenge(text)
    parse_challenge("Digest " + text, proxy=True)
    parse_uri(text)
    tag_of(text)
    split_commas(text)
    top_via(Headers.of([("Via", text)]))
