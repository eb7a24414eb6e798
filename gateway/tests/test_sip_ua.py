"""The SIP user agent against scripted peers on loopback, where exact bytes and timing
matter: timers E/F, absorbed retransmissions, server transactions, digest edge cases,
TCP framing and connection loss, hostile input. (Real peers: test_sip_sipp.py and
test_sip_kamailio.py.)"""
from __future__ import annotations

import asyncio
import time

import pytest

from gateway.adapters.sip import (
    SipAccount,
    SipAuthError,
    SipRequest,
    SipResponse,
    SipStatusError,
    SipTimeout,
    SipTransportError,
    SipUserAgent,
    StreamDecoder,
    Timers,
    Transport,
    UaConfig,
    parse_message,
    top_via,
)
from gateway.adapters.sip._digest import digest_response, parse_challenge
from gateway.tests.sipp.scripted import UdpPeer, answer, request_to

pytestmark = pytest.mark.timeout(60)

BODY = b"<mrq><ref>r1</ref><cid>1</cid><dty>0003</dty></mrq>"


def _ua(port: int, *, on_request=None, **kw) -> SipUserAgent:
    kw.setdefault("timers", Timers(t1=0.02, t2=0.08, t4=0.1))
    return SipUserAgent(UaConfig(target=f"sip:arc@127.0.0.1:{port}", local_user="4711", local_host="127.0.0.1", **kw),
                        on_request=on_request)


def run(coro):
    return asyncio.run(coro)


# ---- client transaction -------------------------------------------------------------------

@pytest.mark.slow
def test_timer_e_retransmits_then_timer_f_times_out():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start())
        await ua.async_start()
        t0 = time.monotonic()
        with pytest.raises(SipTimeout) as exc:
            await ua.async_send_message(BODY)
        took = time.monotonic() - t0
        copies = []
        while not peer.queue.empty():
            copies.append(peer.queue.get_nowait())
        await ua.async_close()
        peer.close()
        return exc.value, took, copies, ua

    err, took, copies, ua = run(go())
    assert "timer F (1.28 s)" in str(err) and 1.2 <= took < 3.0
    raw = {c[0].to_bytes() for c in copies}
    assert len(raw) == 1                                      # identical retransmissions
    gaps = [b[2] - a[2] for a, b in zip(copies, copies[1:])]
    assert gaps[0] >= 0.015 and max(gaps) < 0.3 and min(gaps[3:]) >= 0.06   # T1 doubling, capped at T2
    assert len(copies) == 1 + ua.stats["retransmissions"] and len(copies) >= 12


def test_provisional_then_final_and_retransmitted_final_is_absorbed():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start())
        await ua.async_start()
        task = asyncio.create_task(ua.async_send_message(BODY))
        req, addr, _ = await peer.recv()
        peer.send(answer(req, 100, "Trying"), addr)
        await asyncio.sleep(0.25)                             # proceeding: retransmits every T2
        final = answer(req, 200, body=b"<mrs><ref>r1</ref><snu>0</snu></mrs>")
        peer.send(final, addr)
        peer.send(final, addr)
        resp = await task
        await asyncio.sleep(0.05)
        await ua.async_close()
        peer.close()
        return ua, resp

    ua, resp = run(go())
    assert resp.status == 200 and resp.body.endswith(b"</mrs>")
    assert 1 <= ua.stats["retransmissions"] <= 5
    assert ua.stats["stray_responses"] == 0                  # the repeated 200 was absorbed (timer K)


def test_error_status_is_raised_and_stray_responses_are_counted():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start())
        await ua.async_start()
        task = asyncio.create_task(ua.async_send_message(BODY))
        req, addr, _ = await peer.recv()
        stray = answer(req, 200).replace(top_via(req.headers).branch.encode(), b"z9hG4bKnotours")
        peer.send(stray, addr)
        peer.send(b"\x00garbage\r\n\r\n", addr)
        peer.send(answer(req, 503, "Service Unavailable"), addr)
        with pytest.raises(SipStatusError) as exc:
            await task
        await ua.async_close()
        peer.close()
        return ua, exc.value

    ua, err = run(go())
    assert err.status == 503 and "503 Service Unavailable" in str(err)
    assert ua.stats["stray_responses"] == 1 and sum(ua.rejects.values()) == 1


def test_request_carries_the_route_and_identity():
    async def go():
        peer = UdpPeer()
        port = await peer.start()
        ua = SipUserAgent(UaConfig(target="sip:arc@centre.test", local_user="4711", local_host="127.0.0.1",
                                   outbound_proxy=f"sip:127.0.0.1:{port}", timers=Timers(t1=0.02)))
        await ua.async_start()
        task = asyncio.create_task(ua.async_send_message(BODY, call_id="call-1@gw"))
        req, addr, _ = await peer.recv()
        peer.send(answer(req, 202, "Accepted"), addr)
        resp = await task
        await ua.async_close()
        peer.close()
        return req, resp, ua

    req, resp, ua = run(go())
    assert resp.status == 202
    assert req.uri == "sip:arc@centre.test" and req.headers.get("Route").startswith("<sip:127.0.0.1:")
    assert req.headers.get("Route").endswith(";lr>")
    assert req.headers.get("Call-ID") == "call-1@gw" and req.cseq == (1, "MESSAGE")
    assert req.headers.get("From").startswith("<sip:4711@centre.test>;tag=")
    assert req.headers.get("Content-Type") == "application/scaip+xml" and req.body == BODY
    via = top_via(req.headers)
    assert via.branch.startswith("z9hG4bK") and via.host == "127.0.0.1" and via.port == ua.local_address[1]


# ---- digest -------------------------------------------------------------------------------

def _challenge(req: SipRequest, *, stale: bool = False, qop: str = "auth", status: int = 401) -> bytes:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    value = f'Digest realm="centre.test", nonce="n{time.monotonic_ns()}", qop="{qop}", algorithm=MD5'
    if stale:
        value += ", stale=true"
    return answer(req, status, "Unauthorized", extra=[(name, value)])


def _check_auth(req: SipRequest, challenge_raw: bytes, password: str = "pw") -> bool:
    ch_resp = parse_message(challenge_raw)
    name = "WWW-Authenticate" if ch_resp.status == 401 else "Proxy-Authenticate"
    ch = parse_challenge(ch_resp.headers.get(name))
    hdr = req.headers.get("Authorization" if ch_resp.status == 401 else "Proxy-Authorization") or ""
    params = dict(p.strip().split("=", 1) for p in hdr[len("Digest "):].split(", "))
    expect = digest_response(ch, username="4711", password=password, method="MESSAGE", uri=req.uri,
                             nc=int(params["nc"], 16), cnonce=params["cnonce"].strip('"'))
    return params["response"].strip('"') == expect


def test_stale_nonce_is_answered_again_and_credentials_verify():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start(), account=SipAccount("4711", "pw"))
        await ua.async_start()
        task = asyncio.create_task(ua.async_send_message(BODY))
        req1, addr, _ = await peer.recv()
        c1 = _challenge(req1, status=407)
        peer.send(c1, addr)
        req2, _, _ = await peer.recv()
        ok2 = _check_auth(req2, c1)
        c2 = _challenge(req2, stale=True, status=407)
        peer.send(c2, addr)
        req3, _, _ = await peer.recv()
        ok3 = _check_auth(req3, c2)
        peer.send(answer(req3, 200), addr)
        resp = await task
        await ua.async_close()
        peer.close()
        return ok2, ok3, resp, [r.cseq for r in (req1, req2, req3)], {r.headers.get("Call-ID") for r in (req1, req2, req3)}

    ok2, ok3, resp, cseqs, call_ids = run(go())
    assert ok2 and ok3 and resp.status == 200
    assert cseqs == [(1, "MESSAGE"), (2, "MESSAGE"), (3, "MESSAGE")] and len(call_ids) == 1


@pytest.mark.parametrize("account, qop, message", [
    (None, "auth", "no account is configured"),
    (SipAccount("4711", "pw"), "auth-int", "no digest challenge we can answer"),
    (SipAccount("4711", "pw", realm="other.realm"), "auth", "the account is for 'other.realm'"),
])
def test_challenges_we_cannot_answer(account, qop, message):
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start(), account=account)
        await ua.async_start()
        task = asyncio.create_task(ua.async_send_message(BODY))
        req, addr, _ = await peer.recv()
        peer.send(_challenge(req, qop=qop), addr)
        with pytest.raises(SipAuthError) as exc:
            await task
        await ua.async_close()
        peer.close()
        return exc.value

    err = run(go())
    assert message in str(err) and err.status == 401


# ---- server side --------------------------------------------------------------------------

def test_incoming_message_is_answered_once_and_retransmissions_get_the_same_response():
    seen = []

    async def go():
        peer = UdpPeer()
        port = await peer.start()
        ua = _ua(port, on_request=lambda req, p: (seen.append(req.body), 200)[1])
        await ua.async_start()
        addr = ("127.0.0.1", ua.local_address[1])
        peer.send(request_to(port), addr)
        r1, _, _ = await peer.recv()
        peer.send(request_to(port), addr)
        r2, _, _ = await peer.recv()
        await ua.async_close()
        peer.close()
        return r1, r2, ua

    r1, r2, ua = run(go())
    assert seen == [b"<mrs/>"]
    assert r1.status == 200 and r1.headers.get("To").startswith("<sip:4711@127.0.0.1>;tag=")
    assert r1.to_bytes() == r2.to_bytes() and ua.stats["request_retransmissions"] == 1
    assert r1.headers.get("Call-ID") == "in-1" and r1.cseq == (1, "MESSAGE")


@pytest.mark.parametrize("method, status", [("OPTIONS", 200), ("INVITE", 488), ("SUBSCRIBE", 405), ("BYE", 481)])
def test_other_methods(method, status):
    async def go():
        peer = UdpPeer()
        port = await peer.start()
        ua = _ua(port)
        await ua.async_start()
        peer.send(request_to(port, method), ("127.0.0.1", ua.local_address[1]))
        resp, _, _ = await peer.recv()
        await ua.async_close()
        peer.close()
        return resp

    resp = run(go())
    assert resp.status == status
    if status in (200, 405, 488):
        assert resp.headers.get("Allow") == "MESSAGE, OPTIONS"


def test_handler_failure_answers_500_and_the_ua_keeps_working():
    def boom(req, peer):
        raise RuntimeError("handler bug")

    async def go():
        peer = UdpPeer()
        port = await peer.start()
        ua = _ua(port, on_request=boom)
        await ua.async_start()
        addr = ("127.0.0.1", ua.local_address[1])
        peer.send(request_to(port), addr)
        r1, _, _ = await peer.recv()
        peer.send(b"MESSAGE nonsense\r\n\r\n", addr)
        peer.send(request_to(port, branch="z9hG4bKpeer2"), addr)
        r2, _, _ = await peer.recv()
        await ua.async_close()
        peer.close()
        return r1, r2, ua

    r1, r2, ua = run(go())
    assert (r1.status, r2.status) == (500, 500)
    assert sum(ua.rejects.values()) == 1


# ---- TCP ----------------------------------------------------------------------------------

class TcpPeer:
    def __init__(self, script) -> None:
        self.script = script
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dec = StreamDecoder()
        try:
            await self.script(reader, writer, dec)
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _read_request(reader: asyncio.StreamReader, dec: StreamDecoder) -> SipRequest:
    while True:
        msgs = dec.feed(await reader.read(4096))
        if msgs:
            return msgs[0]


def test_tcp_fragmented_response_keepalives_and_a_request_on_our_connection():
    seen = []

    async def script(reader, writer, dec):
        req = await _read_request(reader, dec)
        data = b"\r\n\r\n" + answer(req, 200, body=b"<mrs><ref>r1</ref><snu>0</snu></mrs>")
        for i in range(0, len(data), 5):
            writer.write(data[i:i + 5])
            await writer.drain()
        writer.write(request_to(1).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        await writer.drain()
        resp = await _read_request(reader, dec)
        seen.append(resp)
        await asyncio.sleep(0.05)

    async def go():
        peer = TcpPeer(script)
        port = await peer.start()
        ua = _ua(port, transport=Transport.TCP, listen=False,
                 on_request=lambda req, p: (seen.append(req.method), 200)[1])
        await ua.async_start()
        resp = await ua.async_send_message(BODY)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        await ua.async_close()
        await peer.close()
        return resp, ua

    resp, ua = run(go())
    assert resp.status == 200 and resp.body.endswith(b"</mrs>")
    assert seen[0] == "MESSAGE" and isinstance(seen[1], SipResponse) and seen[1].status == 200
    assert ua.stats["connections"] == 1 and ua.stats["retransmissions"] == 0


def test_tcp_connection_lost_before_the_answer_is_a_transport_error():
    async def script(reader, writer, dec):
        await _read_request(reader, dec)

    async def go():
        peer = TcpPeer(script)
        ua = _ua(await peer.start(), transport=Transport.TCP, listen=False)
        await ua.async_start()
        with pytest.raises(SipTransportError) as exc:
            await ua.async_send_message(BODY)
        await ua.async_close()
        await peer.close()
        return exc.value

    assert "lost before the final response" in str(run(go()))


def test_tcp_unframeable_stream_closes_the_connection():
    async def script(reader, writer, dec):
        await _read_request(reader, dec)
        writer.write(b"SIP/2.0 200 OK\r\nContent-Length: banana\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)

    async def go():
        peer = TcpPeer(script)
        ua = _ua(await peer.start(), transport=Transport.TCP, listen=False)
        await ua.async_start()
        with pytest.raises(SipTransportError):
            await ua.async_send_message(BODY)
        await ua.async_close()
        await peer.close()
        return ua

    ua = run(go())
    assert ua.rejects["content_length"] == 1


def test_connection_refused_is_a_transport_error():
    async def go():
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        ua = _ua(port, transport=Transport.TCP, listen=False)
        await ua.async_start()
        with pytest.raises(SipTransportError) as exc:
            await ua.async_send_message(BODY)
        await ua.async_close()
        return exc.value

    assert "connect to 127.0.0.1" in str(run(go()))


def test_config_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="is not a SIP URI"):
        SipUserAgent(UaConfig(target="arc@centre", local_user="1"))
    with pytest.raises(ValueError, match="outbound_proxy"):
        SipUserAgent(UaConfig(target="sip:arc@centre", local_user="1", outbound_proxy="proxy"))

    async def not_started():
        with pytest.raises(SipTransportError, match="not started"):
            await SipUserAgent(UaConfig(target="sip:arc@centre", local_user="1")).async_send_message(BODY)
    run(not_started())


# ---- send_message_now: the alarm path without a task or a loop hop ------------------------

def test_send_message_now_puts_it_on_the_wire_before_returning_and_reports_from_the_receive_path():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start())
        await ua.async_start()
        got: list = []
        cid = ua.new_call_id()
        assert not ua.send_message_now(BODY, call_id=cid, on_final=lambda r, e: got.append((r, e)))  # address unknown
        peer_task = asyncio.ensure_future(peer.recv())
        first = asyncio.ensure_future(ua.async_send_message(BODY, call_id=cid))
        req, addr, _ = await peer_task
        peer.send(answer(req, 200), addr)
        await first
        assert ua.send_message_now(BODY, call_id=cid, on_final=lambda r, e: got.append((r, e)))
        assert ua.stats["requests_sent"] == 2                   # sent inside the call (no task to wait for)
        req2, addr2, _ = await peer.recv()
        assert got == []                                        # nothing reported from inside the call
        peer.send(answer(req2, 200, body=b"<mrs><ref>r1</ref><snu>0</snu></mrs>"), addr2)
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.01)
        await ua.async_close()
        peer.close()
        return got, req, req2, ua

    got, req, req2, ua = run(go())
    resp, err = got[0]
    assert err is None and resp.status == 200 and b"<snu>0</snu>" in resp.body
    assert req.headers.get("Call-ID") == req2.headers.get("Call-ID")        # same call, next CSeq
    assert req2.cseq[0] == req.cseq[0] + 1 and ua.stats["sent_at_once"] == 1


def test_send_message_now_reports_timeouts_error_statuses_and_learns_a_challenge():
    async def go():
        peer = UdpPeer()
        ua = _ua(await peer.start(), account=SipAccount("4711", "pw"))
        await ua.async_start()
        cid = ua.new_call_id()
        t = asyncio.ensure_future(ua.async_send_message(BODY, call_id=cid))
        req, addr, _ = await peer.recv()
        peer.send(answer(req, 200), addr)
        await t
        outcomes: list = []
        for status, extra in ((503, None),
                              (401, [("WWW-Authenticate", 'Digest realm="arc", nonce="n1", qop="auth", '
                                                          'algorithm=SHA-256')])):
            assert ua.send_message_now(BODY, call_id=cid, on_final=lambda r, e: outcomes.append((r, e)))
            req, addr, _ = await peer.recv()
            peer.send(answer(req, status, "X", extra=extra), addr)
            await asyncio.sleep(0.05)
        assert ua.send_message_now(BODY, call_id=cid, on_final=lambda r, e: outcomes.append((r, e)))
        await asyncio.sleep(1.6)                              # nobody answers: timer F (64 * 0.02 s)
        await ua.async_close()
        peer.close()
        return outcomes, ua

    outcomes, ua = run(go())
    (r1, e1), (r2, e2), (r3, e3) = outcomes
    assert r1 is None and isinstance(e1, SipStatusError) and e1.status == 503
    assert e2 is None and r2.status == 401 and ua.auth_state and ua.auth_state[0]["realm"] == "arc"
    assert r3 is None and isinstance(e3, SipTimeout)


def test_udp_receive_timestamp_tells_how_long_a_datagram_waited_for_a_busy_loop():
    """The kernel's receive timestamp (Linux SO_TIMESTAMPING): the route takes the centre's
    answer time where it arrived, not when a busy event loop got to it."""
    import socket
    import sys

    from gateway.adapters.sip._transport import UdpEndpoint

    async def go():
        got: list = []
        ep = UdpEndpoint(lambda data, addr: got.append((data, ep.rx_wait_s)))
        addr = ep.open("127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", addr)
            time.sleep(0.08)                       # the loop is busy elsewhere
            await asyncio.sleep(0.02)
        ep.close()
        return got

    got = run(go())
    assert got[0][0] == b"x"
    if sys.platform.startswith("linux"):
        assert 0.07 <= got[0][1] < 1.0
    else:
        assert got[0][1] == 0.0
