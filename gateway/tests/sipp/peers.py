"""Start real SIP peers on free loopback ports: a SIPp centre, a Kamailio proxy, and a
lossy UDP relay.

- :class:`SippCentre`: ``sipp -sf <scenario>`` as a SCAIP centre (UAS), with its message
  trace in the work directory so a test can check what the centre received.
- :class:`KamailioProxy`: Kamailio as an authenticating proxy (digest, ``407``, MD5 or
  SHA-256, ``qop=auth``) on UDP, TCP and optionally TLS, relaying to a SIPp centre.
- :class:`LossyUdpRelay`: drops the first N requests on their way to the centre. SIPp
  cannot drop deterministically: it treats a retransmission as a repeat of the message
  it already received (and its ``lost`` attribute is random and applies to the repeats
  too), so the loss is put on the "wire" in front of it instead.

:func:`require` skips outside CI when a binary is absent and fails in CI (env ``CI``):
``scripts/bootstrap.sh`` installs both there.
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

import pytest

from gateway.tests.sipp import SCENARIOS

PACKAGES = {"sipp": "sip-tester", "kamailio": "kamailio"}


def require(binary: str) -> str:
    """Path of ``binary`` (sipp, kamailio); skip with the reason outside CI, fail in CI."""
    exe = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/usr/local/sbin/{binary}")
                                        if os.path.exists(p)), None)
    if exe:
        return exe
    msg = (f"{binary} is not installed (Debian package {PACKAGES.get(binary, binary)}; "
           f"run scripts/bootstrap.sh as root to install it)")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


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


@dataclass
class SippCentre:
    """``sipp`` running ``scenario`` (a file name in gateway/tests/sipp) as the centre.

    ``transport``: SIPp's ``-t`` (``u1`` UDP, ``t1`` TCP). ``calls``: SIPp exits after
    this many calls (one call = one Call-ID = one SCAIP report with all its attempts)."""

    scenario: str
    workdir: Path
    transport: str = "u1"
    calls: int = 1
    timeout_s: float = 60.0
    port: int = 0
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()

    @property
    def uri(self) -> str:
        return f"sip:arc@127.0.0.1:{self.port}"

    def start(self, wait_s: float = 10.0) -> "SippCentre":
        exe = require("sipp")
        cmd = [exe, "-sf", str(SCENARIOS / self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
               "-t", self.transport, "-m", str(self.calls), "-nostdin", "-trace_msg", "-trace_err",
               "-timeout", f"{int(self.timeout_s)}s", *self.extra]
        self._log = open(self.workdir / "sipp.out", "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        kind = socket.SOCK_DGRAM if self.transport.startswith("u") else socket.SOCK_STREAM
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited with {self.proc.returncode}: {self.output()}")
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
        exe = require("kamailio")
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


class LossyUdpRelay(asyncio.DatagramProtocol):
    """A UDP hop that drops the first ``drop_requests`` SIP requests to the centre and
    forwards everything else both ways (one client at a time)."""

    def __init__(self, upstream: tuple[str, int], drop_requests: int) -> None:
        self.upstream = upstream
        self.drop_left = drop_requests
        self.dropped = 0
        self.forwarded = 0
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._up: asyncio.DatagramTransport | None = None

    async def async_start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        relay = self

        class _Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if relay.client is not None and relay.transport is not None:
                    relay.transport.sendto(data, relay.client)

        self._up, _ = await loop.create_datagram_endpoint(_Up, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client = addr
        if self.drop_left > 0 and not data.startswith(b"SIP/2.0"):
            self.drop_left -= 1
            self.dropped += 1
            return
        self.forwarded += 1
        assert self._up is not None
        self._up.sendto(data, self.upstream)

    def close(self) -> None:
        for t in (self.transport, self._up):
            if t is not None:
                t.close()
