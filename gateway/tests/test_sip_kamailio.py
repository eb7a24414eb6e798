"""The SIP user agent and the SCAIP route through Kamailio, a real SIP proxy demanding
digest authentication (407, MD5 or SHA-256, qop=auth), over UDP, TCP and TLS, in front
of a SIPp centre. Each test starts its own Kamailio and SIPp on free loopback ports."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.adapters.sip import (
    ScaipRoute,
    ScaipSettings,
    SipAccount,
    SipAuthError,
    SipTransportError,
    SipUserAgent,
    Timers,
    Transport,
    UaConfig,
)
from gateway.domain.model import Event, EventCode, Role
from gateway.domain.ports import SystemClock
from gateway.domain.scaip import RetryPolicy, Snu
from gateway.tests.sipp.peers import KamailioProxy, SippCentre
from testkit.pki import make_pki

pytestmark = pytest.mark.timeout(120)

CID = "4700112233"
PASSWORD = "s3cret-pa55"
FAST = Timers(t1=0.1, t2=0.4, t4=0.5)
BODY = b'<?xml version="1.0" encoding="UTF-8"?><mrq><ref>k1</ref><cid>4700112233</cid><dty>0003</dty></mrq>'


@pytest.fixture
def peers(tmp_path):
    """factory(scenario, calls, algorithm, tls) → (SippCentre, KamailioProxy, Pki)."""
    made: list = []

    def make(scenario: str = "centre_reply_in_200.xml", *, calls: int = 1, algorithm: str = "MD5",
             tls: bool = True):
        centre = SippCentre(scenario, tmp_path / f"sipp-{len(made)}", calls=calls).start()
        made.append(centre)
        pki = make_pki(tmp_path / f"pki-{len(made)}") if tls else None
        proxy = KamailioProxy(tmp_path / f"kamailio-{len(made)}", ("127.0.0.1", centre.port), username=CID,
                              password=PASSWORD, algorithm=algorithm,
                              tls_cert=pki.server_cert if pki else None, tls_key=pki.server_key if pki else None)
        made.append(proxy)
        proxy.start()
        return centre, proxy, pki

    yield make
    for p in reversed(made):
        p.stop()


def _ua(centre: SippCentre, proxy: KamailioProxy, transport: Transport, pki=None, *, password: str = PASSWORD,
        server_name: str = "localhost") -> SipUserAgent:
    return SipUserAgent(UaConfig(
        target=centre.uri, local_user=CID, transport=transport, local_host="127.0.0.1",
        outbound_proxy=proxy.uri(transport.value), account=SipAccount(CID, password), timers=FAST,
        tls_ca_file=str(pki.ca) if pki else None, tls_server_name=server_name))


async def _send(ua: SipUserAgent, n: int = 1):
    await ua.async_start()
    try:
        return [await ua.async_send_message(BODY.replace(b"k1", b"k%d" % i)) for i in range(1, n + 1)]
    finally:
        await ua.async_close()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_through_kamailio_over_udp_tcp_and_tls(peers, algorithm):
    centre, proxy, pki = peers(calls=3, algorithm=algorithm)
    for transport in (Transport.UDP, Transport.TCP, Transport.TLS):
        ua = _ua(centre, proxy, transport, pki)
        (resp,) = asyncio.run(_send(ua))
        assert resp.status == 200 and b"<snu>0</snu>" in resp.body, transport
        assert ua.stats["challenges"] == 1
        assert ua.auth_state == [{"realm": "centre.test", "algorithm": algorithm, "proxy": True, "nc": 1}]
    assert asyncio.run(centre.async_wait()) == 0, centre.output()
    log = proxy.output()
    for proto in ("udp", "tcp", "tls"):
        assert f"relay MESSAGE sip:arc@127.0.0.1:{centre.port} from 127.0.0.1" in log and f"({proto})" in log


def test_sha256_challenge_is_answered_with_sha256(peers):
    centre, proxy, _ = peers(algorithm="SHA-256", tls=False)
    ua = _ua(centre, proxy, Transport.UDP)
    (resp,) = asyncio.run(_send(ua))
    assert resp.status == 200
    (msg,) = centre.received("MESSAGE")
    # Kamailio consumed the credentials (consume_credentials): the centre sees none
    assert "Proxy-Authorization" not in msg
    assert ua.auth_state[0]["algorithm"] == "SHA-256"


def test_answered_challenge_is_reused_without_a_new_407(peers):
    centre, proxy, _ = peers(calls=3, tls=False)
    ua = _ua(centre, proxy, Transport.UDP)
    responses = asyncio.run(_send(ua, n=3))
    assert [r.status for r in responses] == [200, 200, 200]
    assert ua.stats["challenges"] == 1                  # one 407 for three MESSAGEs
    assert ua.stats["requests_sent"] == 4
    assert ua.auth_state[0]["nc"] == 3
    assert asyncio.run(centre.async_wait()) == 0, centre.output()


def test_wrong_password_is_refused_with_a_clear_error(peers):
    centre, proxy, _ = peers(tls=False)
    ua = _ua(centre, proxy, Transport.UDP, password="wrong")

    with pytest.raises(SipAuthError) as exc:
        asyncio.run(_send(ua))
    assert "refused the credentials" in str(exc.value) and exc.value.status == 407
    assert centre.received("MESSAGE") == []


def test_tls_certificate_mismatch_is_a_clear_transport_error(peers):
    centre, proxy, pki = peers(tls=True)
    ua = _ua(centre, proxy, Transport.TLS, pki, server_name="arc.example.org")
    with pytest.raises(SipTransportError) as exc:
        asyncio.run(_send(ua))
    assert "certificate" in str(exc.value) and "arc.example.org" in str(exc.value)
    other = make_pki(proxy.workdir / "other-ca", prefix="other-")
    ua2 = _ua(centre, proxy, Transport.TLS, other)
    with pytest.raises(SipTransportError) as exc2:
        asyncio.run(_send(ua2))
    assert "did not verify" in str(exc2.value)
    assert centre.received("MESSAGE") == []


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def scaip_delivered(self, event, reply, *, escalated, at=None):
        self.seen.append(("delivered", reply.snu if reply else None, escalated))

    def scaip_escalate(self, event, reason):
        self.seen.append(("escalate", reason))

    def scaip_refused(self, event, reply, reason):
        self.seen.append(("refused", reason))


def _press() -> Event:
    now = time.time()
    return Event("a4c1380a1b2c-00000001", "a4c1380a1b2c", EventCode.BUTTON_PRESS, now, now, Role.BUTTON, 1)


def test_route_over_tls_through_kamailio(peers):
    centre, proxy, pki = peers(tls=True)

    async def run():
        rec = _Recorder()
        route = ScaipRoute(_ua(centre, proxy, Transport.TLS, pki),
                           ScaipSettings(cid=CID, heartbeats=False), listener=rec, clock=SystemClock())
        await route.async_start()
        route.submit(_press())
        deadline = time.monotonic() + 15
        while not rec.seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        status = route.status()
        await route.async_close()
        return rec, status

    rec, status = asyncio.run(run())
    assert rec.seen == [("delivered", Snu.OK, False)]
    assert status["transport"] == "tls" and status["auth"][0]["proxy"] is True
    assert asyncio.run(centre.async_wait()) == 0, centre.output()


def test_route_escalates_when_tls_fails_and_keeps_running(peers, caplog):
    centre, proxy, pki = peers(tls=True)

    async def run():
        rec = _Recorder()
        route = ScaipRoute(_ua(centre, proxy, Transport.TLS, pki, server_name="arc.example.org"),
                           ScaipSettings(cid=CID, heartbeats=False, escalate_after_s=0.5,
                                         retry=RetryPolicy(initial_s=0.1, cap_s=0.2)),
                           listener=rec, clock=SystemClock())
        await route.async_start()
        route.submit(_press())
        deadline = time.monotonic() + 10
        while not rec.seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        status = route.status()
        await route.async_close()
        return rec, status

    with caplog.at_level(logging.WARNING, logger="gateway.adapters.sip"):
        rec, status = asyncio.run(run())
    assert rec.seen == [("escalate", "no snu 0 within 0.5 s")]
    assert status["counters"]["sip_failed"] >= 2 and status["sip"]["connect_failures"] >= 2
    (report,) = [r for r in status["reports"] if r["state"] != "done"]
    assert report["escalated"] is True and "certificate" in report["last_error"]
    assert any("did not verify" in r.getMessage() for r in caplog.records)
