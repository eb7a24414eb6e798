"""SCAIP XML: encoder/decoder round trips, hostile XML refused without expansion, bounded
sizes, and the decoders never raise on any input (hypothesis)."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain.scaip import (
    MAX_REPLY_BYTES,
    GeoLocation,
    MediaReply,
    ScaipError,
    ScaipRejection,
    ScaipRejectReason,
    ScaipReply,
    ScaipRequest,
    Snu,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
R = ScaipRejectReason


def _reason(data: bytes) -> ScaipRejectReason:
    out = decode_reply(data)
    assert isinstance(out, ScaipRejection), out
    return out.reason


# ---- replies as deployed centres send them ----------------------------------------------

def test_minimal_reply():
    assert decode_reply(b"<mrs><ref>abc123</ref><snu>0</snu></mrs>") == ScaipReply(ref="abc123", snu=Snu.OK)


def test_full_reply_with_declaration_whitespace_comment_and_namespace():
    body = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<!-- centre 7 -->\r\n'
            b'<mrs xmlns="urn:scaip">\r\n  <ref> 0f3c </ref>\r\n  <snu>4</snu>\r\n  <ste>V\xc3\xa4nta &amp; se</ste>\r\n'
            b'  <cve>01.00</cve><mre>0</mre><cre>61</cre><hbi>3</hbi>\r\n</mrs>\r\n')
    r = decode_reply(body)
    assert r == ScaipReply(ref="0f3c", snu=Snu.HOLD, ste="Vänta & se", cve="01.00", mre=MediaReply.NO_CALL,
                           cre="61", hbi=3)


def test_latin1_reply():
    r = decode_reply('<?xml version="1.0" encoding="ISO-8859-1"?><mrs><ref>1</ref><snu>6</snu>'
                     '<ste>Upptagen på larmcentralen</ste></mrs>'.encode("latin-1"))
    assert isinstance(r, ScaipReply) and r.ste == "Upptagen på larmcentralen" and r.snu is Snu.BUSY


def test_empty_elements_and_unknown_optional_values_are_noted_not_fatal():
    r = decode_reply(b"<mrs><ref>9</ref><snu>0</snu><ste/><hbi>9</hbi><mre>7</mre><foo>x</foo></mrs>")
    assert isinstance(r, ScaipReply)
    assert r.hbi is None and r.mre is None and r.ste == ""
    assert r.ignored == ("<hbi> '9' out of range", "<mre> '7' unknown", "unknown <foo>")


def test_character_references():
    r = decode_reply(b"<mrs><ref>9</ref><snu>0</snu><ste>&#65;&#x42;&lt;&gt;&quot;&apos;</ste></mrs>")
    assert r.ste == "AB<>\"'"


# ---- refused replies ----------------------------------------------------------------------

@pytest.mark.parametrize("body, reason", [
    (b"", R.EMPTY),
    (b"<mrs><snu>0</snu></mrs>", R.MISSING),
    (b"<mrs><ref>1</ref></mrs>", R.MISSING),
    (b"<mrs><ref>1</ref><snu>8</snu></mrs>", R.BAD_VALUE),
    (b"<mrs><ref>1</ref><snu>-1</snu></mrs>", R.BAD_VALUE),
    (b"<mrs><ref>12345678901234567</ref><snu>0</snu></mrs>", R.BAD_VALUE),
    (b"<mrs><ref>a-b</ref><snu>0</snu></mrs>", R.BAD_VALUE),
    (b"<mrq><ref>1</ref><snu>0</snu></mrq>", R.ROOT),
    (b"<mrs><ref>1</ref><ref>2</ref><snu>0</snu></mrs>", R.DUPLICATE),
    (b"<mrs><ref>1</ref><snu>0</snu>", R.SYNTAX),
    (b"<mrs><ref>1</ref><snu>0</snu></mrs><mrs/>", R.SYNTAX),
    (b"<mrs><ref>1</ref><snu>0</snu></mrx>", R.SYNTAX),
    (b"<mrs>text<ref>1</ref><snu>0</snu></mrs>", R.SYNTAX),
    (b"<mrs><ref><x>1</x></ref><snu>0</snu></mrs>", R.SYNTAX),
    (b"<mrs><ref>1</ref><snu>0</snu><!-- never closed </mrs>", R.SYNTAX),
    (b"<mrs><ref>1\x01</ref><snu>0</snu></mrs>", R.SYNTAX),
    (b"<mrs><ref>\xff</ref><snu>0</snu></mrs>", R.ENCODING),
    (b'<?xml version="1.0" encoding="UTF-16"?><mrs/>', R.ENCODING),
    (b"<mrs><ref>1</ref><snu>0</snu><ste>&nbsp;</ste></mrs>", R.ENTITY),
    (b"<mrs><ref>1</ref><snu>0</snu><ste>&#0;</ste></mrs>", R.ENTITY),
    (b"<mrs><ref>1</ref><snu>0</snu><ste>&#xD800;</ste></mrs>", R.ENTITY),
    (b"<mrs><ref>1</ref><snu>0</snu><ste>a & b</ste></mrs>", R.ENTITY),
    (b"<mrs><ref>1</ref><snu>0</snu><ste><![CDATA[x]]></ste></mrs>", R.SYNTAX),
    (b"<mrs><![CDATA[x]]><ref>1</ref><snu>0</snu></mrs>", R.FORBIDDEN_MARKUP),
    (b"<?xml-stylesheet href='x'?><mrs/>", R.SYNTAX),
    (b"<?php evil() ?><mrs/>", R.FORBIDDEN_MARKUP),
    (b"<mrs><?pi x?><ref>1</ref><snu>0</snu></mrs>", R.FORBIDDEN_MARKUP),
    (b"<s:mrs><ref>1</ref><snu>0</snu></s:mrs>", R.SYNTAX),
])
def test_refused_replies(body, reason):
    assert _reason(body) is reason


def test_billion_laughs_is_refused_before_any_expansion():
    lol = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                      for i in range(1, 10))
           + b']><mrs><ref>1</ref><snu>0</snu><ste>&lol9;</ste></mrs>')
    t0 = time.perf_counter()
    assert _reason(lol) is R.FORBIDDEN_MARKUP
    assert time.perf_counter() - t0 < 0.05


def test_external_entity_is_refused():
    xxe = (b'<?xml version="1.0"?><!DOCTYPE mrs [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           b"<mrs><ref>1</ref><snu>0</snu><ste>&xxe;</ste></mrs>")
    assert _reason(xxe) is R.FORBIDDEN_MARKUP
    # an entity reference without a DOCTYPE is refused as an unknown entity
    assert _reason(b"<mrs><ref>1</ref><snu>0</snu><ste>&xxe;</ste></mrs>") is R.ENTITY


def test_sizes_are_bounded():
    big = b"<mrs><ref>1</ref><snu>0</snu><ste>" + b"a" * MAX_REPLY_BYTES + b"</ste></mrs>"
    assert _reason(big) is R.OVERSIZE
    many = b"<mrs><ref>1</ref><snu>0</snu>" + b"".join(b"<x%d/>" % i for i in range(100)) + b"</mrs>"
    assert _reason(many) is R.TOO_MANY_ELEMENTS
    long_text = b"<mrs><ref>1</ref><snu>0</snu><ste>" + b"a" * 600 + b"</ste></mrs>"
    assert _reason(long_text) is R.OVERSIZE


def test_deep_nesting_is_refused_in_constant_time():
    deep = b"<mrs>" + b"<a>" * 1000 + b"</a>" * 1000 + b"</mrs>"
    t0 = time.perf_counter()
    assert _reason(deep[:MAX_REPLY_BYTES]) in (R.SYNTAX, R.TOO_MANY_ELEMENTS)
    assert time.perf_counter() - t0 < 0.05


def test_pathological_inputs_stay_fast():
    for body in (b"<mrs " + b" a='x'" * 600 + b">", b"<" * MAX_REPLY_BYTES, b"&" * MAX_REPLY_BYTES,
                 b"<mrs><ste>" + b"&amp;" * 800 + b"</ste></mrs>", b"<?xml" + b" a='b'" * 600 + b"?>"):
        t0 = time.perf_counter()
        assert isinstance(decode_reply(body[:MAX_REPLY_BYTES]), ScaipRejection)
        assert time.perf_counter() - t0 < 0.05, body[:40]


# ---- requests ---------------------------------------------------------------------------

def test_request_encoding_order_and_escaping():
    req = ScaipRequest(ref="1A", cid="4711", dty="0003", stc="0010", stt="a<b & c>d", dco="002",
                       lge=GeoLocation(geo="59.1,10.2"))
    body = encode_request(req).decode()
    assert body == ('<?xml version="1.0" encoding="UTF-8"?><mrq><ref>1A</ref><ver>01.00</ver><sco>0</sco>'
                    '<mty>ME</mty><cid>4711</cid><dty>0003</dty><dco>002</dco><stc>0010</stc>'
                    '<stt>a&lt;b &amp; c&gt;d</stt><lge><geo>59.1,10.2</geo></lge></mrq>')
    assert decode_request(body.encode()) == req


@pytest.mark.parametrize("field, value", [("ref", ""), ("ref", "x" * 17), ("ref", "a b"), ("cid", "12a"),
                                          ("cid", "1" * 17), ("dty", "12345"), ("stt", "x" * 33),
                                          ("mty", "XX"), ("stt", "bell\x07")])
def test_encoder_refuses_what_the_wire_cannot_carry(field, value):
    kwargs = {"ref": "1", "cid": "1", "dty": "0003", field: value}
    with pytest.raises(ScaipError) as exc:
        encode_request(ScaipRequest(**kwargs))
    assert exc.value.field == field


def test_encoder_requires_ref_cid_dty():
    with pytest.raises(ScaipError):
        encode_request(ScaipRequest(ref="1", cid=None, dty="0003"))  # type: ignore[arg-type]


def test_reply_encoder_round_trip():
    reply = ScaipReply(ref="ff01", snu=Snu.TAG_MISSING, ste="cid saknas", mre=MediaReply.DUPLEX, hbi=0)
    assert decode_reply(encode_reply(reply)) == reply


def test_request_decoder_refuses_unknown_and_invalid_elements():
    assert isinstance(decode_request(b"<mrq><ref>1</ref><cid>1</cid><dty>3</dty><zz>1</zz></mrq>"), ScaipRejection)
    assert isinstance(decode_request(b"<mrq><ref>1</ref><cid>1</cid><dty>3</dty><lge>x</lge></mrq>"),
                      ScaipRejection)
    assert isinstance(decode_request(b"<mrq><ref>1</ref><cid>1</cid><dty>3</dty>"
                                     b"<lge><geo>1,2</geo><lge/></lge></mrq>"), ScaipRejection)


# ---- fuzz -------------------------------------------------------------------------------

_TAGS = ["mrs", "mrq", "ref", "snu", "ste", "hbi", "mre", "lge", "geo", "cid", "dty", "x"]
_fragment = st.one_of(
    st.sampled_from(["<", ">", "</", "/>", "&", ";", "&amp;", "&#x41;", "&#99999999;", "<!--", "-->", "<!DOCTYPE",
                     "<![CDATA[", "]]>", "<?xml version='1.0'?>", "<?", "?>", "=", "'", '"', " ", "\n", "0", "7",
                     "ab12"]),
    st.sampled_from(_TAGS).map(lambda t: f"<{t}>"),
    st.sampled_from(_TAGS).map(lambda t: f"</{t}>"),
    st.text(max_size=8),
)


@FUZZ
@given(st.binary(max_size=600))
def test_decoders_never_raise_on_bytes(data):
    for decode in (decode_reply, decode_request):
        out = decode(data)
        assert isinstance(out, (ScaipReply, ScaipRequest, ScaipRejection))


@FUZZ
@given(st.lists(_fragment, max_size=60))
def test_decoders_never_raise_on_xmlish_text(parts):
    data = "".join(parts).encode("utf-8", "surrogatepass")
    for decode in (decode_reply, decode_request):
        out = decode(data)
        assert isinstance(out, (ScaipReply, ScaipRequest, ScaipRejection))


_ref = st.from_regex(r"[A-Za-z0-9]{1,16}", fullmatch=True)
_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_categories=("Cs",)), max_size=32)


@FUZZ
@given(_ref, st.sampled_from(list(Snu)), st.one_of(st.none(), _text.map(str.strip)),
       st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), st.sampled_from(list(MediaReply))))
def test_reply_round_trip(ref, snu, ste, hbi, mre):
    reply = ScaipReply(ref=ref, snu=snu, ste=ste, hbi=hbi, mre=mre)
    assert decode_reply(encode_reply(reply)) == reply


@FUZZ
@given(_ref, st.from_regex(r"\d{1,16}", fullmatch=True), st.from_regex(r"\d{1,4}", fullmatch=True),
       _text.map(str.strip), st.one_of(st.none(), st.from_regex(r"\d{1,4}", fullmatch=True)))
def test_request_round_trip(ref, cid, dty, stt, stc):
    req = ScaipRequest(ref=ref, cid=cid, dty=dty, stt=stt or None, stc=stc)
    assert decode_request(encode_request(req)) == req
