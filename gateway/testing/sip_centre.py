"""SIP peers for the SCAIP route's tests, demo and bench: real processes on loopback ports,
a cuttable UDP relay, and an in-memory centre for domain tests.

- :class:`SippCentre`: ``sipp -sf <scenario>`` as a SCAIP alarm receiving centre (UAS),
  its message trace in the work directory so a caller can check what the centre
  received (:meth:`SippCentre.refs`: every ``ref`` in arrival order, repeats included).
  :data:`CENTRE_OK` is the scenario of the demo and the bench: every MESSAGE answered
  ``200 OK`` with ``<mrs>`` ``snu`` 0 in the body.
- :class:`KamailioProxy`: Kamailio as an authenticating proxy (digest, ``407``, MD5 or
  SHA-256, ``qop=auth``) on UDP, TCP and optionally TLS, relaying to a SIPp centre.
- :class:`UdpRelay`: a UDP hop in front of the centre that can drop the first N requests
  (SIPp cannot drop deterministically: it recognises a retransmission as the message it
  already has, and its ``lost`` attribute is random) and can cut the path altogether
  (:meth:`UdpRelay.cut` / :meth:`UdpRelay.restore`: the demo's ``--outage``).
- :class:`FakeCentre`: a :class:`~gateway.domain.scaip.CentreRoute` in memory — the test
  decides each report's answer (``snu``), escalation and health.

:func:`find_tool` raises :class:`SipToolMissing` with what to install when SIPp or
Kamailio is absent (Debian packages ``sip-tester``, ``kamailio``; scripts/bootstrap.sh).
Never imported by production code.
"""
from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.domain.model import Event, EventCode
from gateway.domain.scaip import EVENT_MAP, ReportKind, ScaipListener, ScaipReply, Snu, ref_for
from gateway.errors import GatewayError

PACKAGES = {"sipp": "sip-tester", "kamailio": "kamailio"}

#: The demo's and the bench's centre: 200 OK with <mrs> snu 0 for every MESSAGE (alarms,
#: follow-ups, heartbeats alike), any number of calls.
CENTRE_OK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="centre: snu 0 in the 200 OK">
  <recv request="MESSAGE">
    <action>
      <ereg regexp="&lt;ref&gt;([A-Za-z0-9]{1,16})&lt;/ref&gt;" search_in="body" check_it="true" assign_to="all,ref"/>
    </action>
  </recv>
  <Reference variables="all"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Type: application/scaip+xml
      Content-Length: [len]

      <?xml version="1.0" encoding="UTF-8"?><mrs><ref>[$ref]</ref><snu>0</snu></mrs>
    ]]>
  </send>
</scenario>
"""


class SipToolMissing(GatewayError):
    """SIPp or Kamailio is not installed; the message says which package to install."""


def find_tool(binary: str) -> str:
    """Path of ``binary`` (``sipp``, ``kamailio``), or :class:`SipToolMissing`."""
    exe = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/usr/local/sbin/{binary}")
                                        if os.path.exists(p)), None)
    if exe:
        return exe
    raise SipToolMissing(f"{binary} is not installed (Debian package {PACKAGES.get(binary, binary)}; "
                         f"run scripts/bootstrap.sh as root to install it)")


class _PortTaken(Exception):
    """SIPp found its port taken (errno 98) before it could bind."""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIPp and Kamailio bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _bound(port: int, kind: int) -> bool:
    """True once somebody has bound ``port`` (we can no longer bind it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _stop(proc: subprocess.Popen | None) -> None:
    """End a peer we started: its own process group (Kamailio forks workers)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


_REF = re.compile(r"<ref>([A-Za-z0-9]{1,16})</ref>")


@dataclass
class SippCentre:
    """``sipp`` running ``scenario`` (a path; or a name in ``scenarios``) as the centre.

    ``scenario_text``: write this scenario into the work directory and run it instead
    (e.g. :data:`CENTRE_OK`). ``transport``: SIPp's ``-t`` (``u1`` UDP, ``t1`` TCP).
    ``calls``: SIPp exits after this many calls (one call = one Call-ID = one SCAIP report
    with all its attempts); 0 = run until stopped."""

    scenario: str
    workdir: Path
    transport: str = "u1"
    calls: int = 1
    timeout_s: float = 60.0
    port: int = 0
    extra: tuple[str, ...] = ()
    scenarios: Path | None = None
    scenario_text: str | None = None
    trace: bool = True
    proc: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._auto_port = not self.port
        if not self.port:
            self.port = free_port()

    @property
    def uri(self) -> str:
        return f"sip:arc@127.0.0.1:{self.port}"

    def _scenario_path(self) -> Path:
        if self.scenario_text is not None:
            path = self.workdir / (Path(self.scenario).name or "centre.xml")
            path.write_text(self.scenario_text)
            return path
        p = Path(self.scenario)
        return p if p.is_absolute() or self.scenarios is None else self.scenarios / p

    def start(self, wait_s: float = 10.0) -> "SippCentre":
        """Start SIPp and wait until it listens. A port picked here (none given) that another
        process took between the pick and SIPp's bind (parallel test shards) is picked again,
        at most three times; a port the caller chose is never changed."""
        for attempt in range(3):
            try:
                return self._start_once(wait_s)
            except _PortTaken:
                if not self._auto_port or attempt == 2:
                    raise RuntimeError(f"sipp could not bind 127.0.0.1:{self.port}: {self.output()}") from None
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, wait_s: float) -> "SippCentre":
        exe = find_tool("sipp")
        cmd = [exe, "-sf", str(self._scenario_path()), "-i", "127.0.0.1", "-p", str(self.port),
               "-t", self.transport, "-nostdin", "-trace_err"]
        if self.calls:
            cmd += ["-m", str(self.calls)]
        if self.trace:
            cmd += ["-trace_msg"]
        if self.timeout_s:
            cmd += ["-timeout", f"{int(self.timeout_s)}s"]
        cmd += list(self.extra)
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.workdir / "sipp.out", "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        kind = socket.SOCK_DGRAM if self.transport.startswith("u") else socket.SOCK_STREAM
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.output()
                if "Address already in use" in out.rsplit("Unable to bind", 1)[-1][:200] or (
                        "Unable to bind" in out and "errno = 98" in out):
                    (self.workdir / "sipp.out").write_bytes(b"")     # the next attempt's output only
                    raise _PortTaken()
                raise RuntimeError(f"sipp exited with {self.proc.returncode}: {out}")
            if _bound(self.port, kind):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"sipp did not bind 127.0.0.1:{self.port} within {wait_s}s")

    async def async_wait(self, timeout_s: float = 30.0) -> int:
        """SIPp's exit status: 0 when every call of the scenario succeeded."""
        deadline = time.monotonic() + timeout_s
        while self.proc is not None and self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"sipp still running after {timeout_s}s: {self.output()[-2000:]}")
            await asyncio.sleep(0.05)
        assert self.proc is not None
        return self.proc.returncode

    def stop(self) -> None:
        _stop(self.proc)
        if getattr(self, "_log", None):
            self._log.close()

    def output(self) -> str:
        parts = []
        for pattern in ("sipp.out", "*_errors.log"):
            for p in sorted(self.workdir.glob(pattern)):
                parts.append(p.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def messages(self) -> list[str]:
        """Every SIP message SIPp received, in order (from its ``-trace_msg`` log)."""
        out = []
        for p in sorted(self.workdir.glob("*_messages.log")):
            text = p.read_text(errors="replace")
            for block in re.split(r"-{20,} [^\n]*\n", text):
                head, _, rest = block.partition("\n")
                if "message received" in head:
                    out.append(rest.strip("\n"))
        return out

    def received(self, method: str) -> list[str]:
        return [m for m in self.messages() if m.startswith(method + " ")]

    def refs(self) -> list[str]:
        """The ``ref`` of every MESSAGE the centre received, in order (repeats included)."""
        return [m.group(1) for msg in self.received("MESSAGE") if (m := _REF.search(msg))]


def _kamailio_modules() -> str:
    for pattern in ("/usr/lib/*/kamailio/modules", "/usr/lib/kamailio/modules", "/usr/local/lib*/kamailio/modules"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    raise RuntimeError("kamailio modules directory not found")


_KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:{udp}
listen=tcp:127.0.0.1:{tcp}
{tls_listen}
mpath="{mpath}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"
{tls_modules}
modparam("auth", "algorithm", "{algorithm}")
modparam("auth", "nonce_expire", 300)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("ACK")) {{
        t_relay();
        exit;
    }}
    if (!pv_proxy_authenticate("{realm}", "{password}", "0")) {{
        xlog("L_INFO", "challenge $rm from $si:$sp ($proto)\\n");
        proxy_challenge("{realm}", "1");
        exit;
    }}
    if ($au != "{username}") {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    consume_credentials();
    loose_route();
    $du = "sip:{fwd_host}:{fwd_port};transport=udp";
    xlog("L_INFO", "relay $rm $ru from $si:$sp ($proto) to $du\\n");
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""

_TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


@dataclass
class KamailioProxy:
    """Kamailio demanding proxy digest auth (``407``) and relaying to ``forward_to`` over UDP."""

    workdir: Path
    forward_to: tuple[str, int]
    realm: str = "centre.test"
    username: str = "4700112233"
    password: str = "s3cret-pa55"
    algorithm: str = "MD5"              # or "SHA-256"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    udp_port: int = 0
    tcp_port: int = 0
    tls_port: int = 0
    proc: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.udp_port = self.udp_port or free_port()
        self.tcp_port = self.tcp_port or free_port(socket.SOCK_STREAM)
        if self.tls_cert is not None:
            self.tls_port = self.tls_port or free_port(socket.SOCK_STREAM)

    def uri(self, transport: str = "udp") -> str:
        port = {"udp": self.udp_port, "tcp": self.tcp_port, "tls": self.tls_port}[transport]
        return f"sip:127.0.0.1:{port};transport={transport}"

    def start(self, wait_s: float = 15.0) -> "KamailioProxy":
        exe = find_tool("kamailio")
        tls = self.tls_cert is not None
        tls_cfg = self.workdir / "tls.cfg"
        if tls:
            tls_cfg.write_text(_TLS_CFG.format(key=self.tls_key, cert=self.tls_cert))
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(_KAMAILIO_CFG.format(
            udp=self.udp_port, tcp=self.tcp_port, mpath=_kamailio_modules(), realm=self.realm,
            password=self.password, username=self.username, algorithm=self.algorithm,
            fwd_host=self.forward_to[0], fwd_port=self.forward_to[1],
            tls_listen=f"enable_tls=yes\nlisten=tls:127.0.0.1:{self.tls_port}" if tls else "",
            tls_modules=f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")' if tls else ""))
        rundir = self.workdir / "run"
        rundir.mkdir(exist_ok=True)
        self._log = open(self.workdir / "kamailio.log", "ab")
        self.proc = subprocess.Popen([exe, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "4", "-Y", str(rundir)],
                                     cwd=self.workdir, stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        port = self.tls_port if tls else self.tcp_port
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.proc.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"kamailio did not listen on 127.0.0.1:{port} within {wait_s}s: {self.output()}")

    def stop(self) -> None:
        _stop(self.proc)
        if getattr(self, "_log", None):
            self._log.close()

    def output(self) -> str:
        p = self.workdir / "kamailio.log"
        return p.read_text(errors="replace")[-6000:] if p.exists() else ""


class UdpRelay(asyncio.DatagramProtocol):
    """A UDP hop in front of the centre: forwards both ways (one client at a time), drops
    the first ``drop_requests`` SIP requests to the centre, and drops everything while
    :meth:`cut` (an outage of the path to the centre) until :meth:`restore`."""

    def __init__(self, upstream: tuple[str, int], drop_requests: int = 0) -> None:
        self.upstream = upstream
        self.drop_left = drop_requests
        self.dropped = 0
        self.forwarded = 0
        self.cut_active = False
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._up: asyncio.DatagramTransport | None = None

    async def async_start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        relay = self

        class _Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if relay.cut_active:
                    relay.dropped += 1
                    return
                if relay.client is not None and relay.transport is not None:
                    relay.transport.sendto(data, relay.client)

        self._up, _ = await loop.create_datagram_endpoint(_Up, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[:2]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client = addr
        if self.cut_active or (self.drop_left > 0 and not data.startswith(b"SIP/2.0")):
            if not self.cut_active:
                self.drop_left -= 1
            self.dropped += 1
            return
        self.forwarded += 1
        assert self._up is not None
        self._up.sendto(data, self.upstream)

    def cut(self) -> None:
        self.cut_active = True

    def restore(self) -> None:
        self.cut_active = False

    def close(self) -> None:
        for t in (self.transport, self._up):
            if t is not None:
                t.close()


#: Former name (the relay used to only drop the first requests).
LossyUdpRelay = UdpRelay


class FakeCentre:
    """A :class:`~gateway.domain.scaip.CentreRoute` in memory for domain tests: records what
    the forwarder hands it; the test answers (:meth:`answer`), escalates (:meth:`escalate`)
    or sets :attr:`healthy`. Like the real route it never calls the listener from inside
    :meth:`submit`, and it skips information events unless ``send_info``."""

    def __init__(self, listener: ScaipListener, *, route: str = "scaip", send_info: bool = False) -> None:
        self.listener = listener
        self.route = route
        self.send_info = send_info
        self.healthy = True
        self.submitted: list[Event] = []
        self.open: dict[str, Event] = {}

    def carries(self, code: EventCode) -> bool:
        return EVENT_MAP[code].kind is not ReportKind.INFO or self.send_info

    def submit(self, event: Event) -> str | None:
        if not self.carries(event.code):
            return None
        self.submitted.append(event)
        self.open[event.event_id] = event
        return ref_for(event.event_id)

    def answer(self, event_id: str, snu: int = 0, ste: str | None = None) -> None:
        """The centre's ``<mrs>`` for this event, as the real route reports it."""
        event = self.open[event_id]
        reply = ScaipReply(ref_for(event_id), Snu(snu), ste=ste)
        s = Snu(snu)
        if s is Snu.OK:
            del self.open[event_id]
            self.listener.scaip_delivered(event, reply, escalated=False)
        elif s.our_fault:
            del self.open[event_id]
            self.listener.scaip_refused(event, reply, f"snu {snu}")
            if event.is_alarm:
                self.listener.scaip_escalate(event, f"snu {snu}")
        elif s is Snu.NOT_TREATED and event.is_alarm:
            self.listener.scaip_escalate(event, "snu 5")

    def escalate(self, event_id: str, reason: str = "no snu 0 within 30 s") -> None:
        self.listener.scaip_escalate(self.open[event_id], reason)

    def status(self) -> dict[str, Any]:
        return {"route": self.route, "healthy": self.healthy, "open": len(self.open), "last_snu": None,
                "heartbeat": {"alive": self.healthy}}
