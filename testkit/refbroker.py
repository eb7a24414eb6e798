"""The reference broker for tests: docs/mosquitto.conf with docs/mosquitto.acl, run by a real
Mosquitto on loopback.

The reference configuration is itself under test (TLS listener with client certificates,
``allow_anonymous false``, the ACL every identity is confined by), so it is read as shipped
and only what cannot work in a test is substituted, each line exactly once (an assertion
fails if the reference file no longer has it):

- ``user mosquitto`` -> ``user root`` when running as root, else dropped;
- ``persistence_location`` -> a directory under ``workdir``; ``log_dest syslog`` -> stderr
  (the broker's log file in ``workdir/mosq``);
- ``password_file`` -> one written with ``mosquitto_passwd`` from ``users`` (or a given file);
- ``acl_file`` -> docs/mosquitto.acl itself (absolute path);
- ``listener 1883 127.0.0.1`` / ``listener 8883`` -> two free loopback ports;
- ``cafile`` / ``certfile`` / ``keyfile`` -> a throw-away PKI (:func:`testkit.pki.make_pki`)
  or the caller's.

``extra_subs`` (regex -> replacement, also applied exactly once) adds a test's own change.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.broker import MosquittoProcess, free_port, port_open
from testkit.pki import make_pki

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CONF = ROOT / "docs" / "mosquitto.conf"
REFERENCE_ACL = ROOT / "docs" / "mosquitto.acl"


@dataclass
class RefBroker:
    """A running reference broker: ``plain_port`` is the local plain listener (same users and ACL),
    ``tls_port`` the mutual-TLS one; ``pki`` the server certificate/key (and, when generated, the CA
    and a client certificate); ``dir`` the work directory; ``conf`` the configuration it runs."""

    plain_port: int
    tls_port: int
    pki: Any
    dir: Path
    conf: str
    process: MosquittoProcess

    def stop(self) -> None:
        self.process.stop()


def write_passwd(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (hashes, by ``mosquitto_passwd``) for ``users`` (name -> password)."""
    for i, (user, pw) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(path), user, pw], check=True,
                       capture_output=True)
    return path


def reference_conf(workdir: Path, *, plain_port: int, tls_port: int, passwd: Path, cafile: Path, server: Any,
                   extra_subs: dict[str, str] | None = None) -> str:
    """docs/mosquitto.conf with only the test paths and ports substituted (see the module docstring)."""
    conf = REFERENCE_CONF.read_text()
    subs = {
        r"^user mosquitto$": "user root" if os.geteuid() == 0 else "",
        r"^persistence_location .*$": f"persistence_location {workdir / 'persist'}/",
        r"^log_dest syslog$": "log_dest stderr",
        r"^password_file .*$": f"password_file {passwd}",
        r"^acl_file .*$": f"acl_file {REFERENCE_ACL}",     # the reference ACL itself
        r"^listener 1883 127.0.0.1$": f"listener {plain_port} 127.0.0.1",
        r"^listener 8883$": f"listener {tls_port} 127.0.0.1",
        r"^cafile .*$": f"cafile {cafile}",
        r"^certfile .*$": f"certfile {server.server_cert}",
        r"^keyfile .*$": f"keyfile {server.server_key}",
        **(extra_subs or {}),
    }
    for pat, rep in subs.items():
        conf, n = re.subn(pat, rep, conf, flags=re.MULTILINE)
        assert n == 1, pat
    return conf


def start_reference_broker(workdir: Path, users: dict[str, str] | None = None, *, passwd: Path | None = None,
                           pki: Any = None, cafile: Path | None = None,
                           extra_subs: dict[str, str] | None = None) -> RefBroker:
    """Start docs/mosquitto.conf + docs/mosquitto.acl on two free loopback ports under ``workdir``.

    ``users`` (name -> password) are written to ``workdir/passwd``, or ``passwd`` is an existing
    password file. ``pki`` (anything with ``server_cert``/``server_key``; default a fresh
    :func:`~testkit.pki.make_pki` in ``workdir/pki``) serves TLS; client certificates are checked
    against ``cafile`` (default ``pki.ca``). Returns once the TLS listener accepts (or after 10 s).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if pki is None:
        pki = make_pki(workdir / "pki")
    if passwd is None:
        passwd = write_passwd(workdir / "passwd", users or {})
    (workdir / "persist").mkdir()
    plain, tls = free_port(), free_port()
    conf = reference_conf(workdir, plain_port=plain, tls_port=tls, passwd=passwd,
                          cafile=cafile if cafile is not None else pki.ca, server=pki, extra_subs=extra_subs)
    b = MosquittoProcess(port=plain, workdir=workdir / "mosq")
    b.write_config = lambda: b.conf_path.write_text(conf)       # type: ignore[method-assign]
    b.start()
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", tls) and time.monotonic() < deadline:
        time.sleep(0.05)
    return RefBroker(plain_port=plain, tls_port=tls, pki=pki, dir=workdir, conf=conf, process=b)


__all__ = ["REFERENCE_ACL", "REFERENCE_CONF", "RefBroker", "reference_conf", "start_reference_broker",
           "write_passwd"]
