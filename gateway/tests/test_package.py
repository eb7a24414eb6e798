"""The Debian package: built by scripts/build_deb.py, installed into a scratch root, run.

How it is installed without touching this machine: ``dpkg --root=SCRATCH
--force-script-chrootless`` — the real dpkg unpacks, records conffiles and runs the real
maintainer scripts, on the host (no chroot: the scratch root has no shell or Python) with
``DPKG_ROOT=SCRATCH``; the scripts put every path under ``$DPKG_ROOT``, create the user
with ``systemd-sysusers --root`` in the scratch ``/etc/passwd`` (seeded from base-passwd)
and never call systemctl. The scratch root's own dpkg database (``SCRATCH/var/lib/dpkg``)
is used, so nothing is recorded on the host. Needs root (dpkg chowns to root) and
dpkg-deb; ``--force-depends`` because the scratch database has no python3.

The package is built once per module (≈20 s: pip installs the vendored wheels, xz) with
a version only the packaged ``gateway/_version.py`` can report.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build_deb.py"
VERSION = "0.1.0+pkgtest"
SYS_PYTHON = "/usr/bin/python3"
LAUNCH_ARGS = ("--slots /var/lib/wt-gateway/slots --config /etc/wt-gateway/gateway.toml "
               "--vendor /usr/lib/wt-gateway/vendor")

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None or not os.access(SYS_PYTHON, os.X_OK),
                                reason="dpkg-deb or Debian's /usr/bin/python3 is not installed (Debian only)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root chowns files to root: run the tests as root")


def _host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([sys.executable, str(BUILD), "--out", str(out), "--version", VERSION],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path == out / f"wt-gateway_{VERSION}_{_host_arch()}.deb" and path.is_file()
    return path


@pytest.fixture(scope="module")
def members(deb) -> dict[str, tarfile.TarInfo]:
    """The data archive's entries as recorded in the .deb (owner, mode, type)."""
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    import io
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tf.getmembers() if m.name not in ("./", ".")}


def _control(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-I", str(deb), name], capture_output=True, text=True, check=True).stdout


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def _scratch_root(base: Path) -> Path:
    root = base / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    for name in ("passwd", "group"):     # a Debian system's static users and groups (root, dialout...)
        shutil.copyfile(f"/usr/share/base-passwd/{name}.master", root / "etc" / name)
    return root


def _dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                        "--force-confold", *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _ids(root: Path, db: str, name: str) -> tuple[int, list[str]]:
    for line in (root / "etc" / db).read_text().splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), (f[3].split(",") if db == "group" and f[3] else [])
    raise AssertionError(f"{name} not in {root}/etc/{db}")


def _members_of(root: Path, group: str) -> list[str]:
    return _ids(root, "group", group)[1]


def _tree(root: Path, under: str) -> dict[str, tuple[int, int, int, str]]:
    """path → (mode, uid, gid, content hash or link target) for everything under ``under``."""
    import hashlib
    out = {}
    base = root / under
    for p in sorted([base, *base.rglob("*")]):
        st = p.lstat()
        if p.is_symlink():
            what = "-> " + os.readlink(p)
        elif p.is_file():
            what = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            what = "dir"
        out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return out


# ---------------------------------------------------------------- the build script's bad input (fast)

def test_build_refuses_a_bad_version_and_arch(tmp_path):
    r = subprocess.run([sys.executable, str(BUILD), "--out", str(tmp_path), "--version", "v1.0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--version 'v1.0' is not a Debian version" in r.stderr and "start with a digit" in r.stderr
    r = subprocess.run([sys.executable, str(BUILD), "--arch", "sparc"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice: 'sparc'" in r.stderr
    r = subprocess.run([sys.executable, str(BUILD), "--wheelhouse", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such directory" in r.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- what the .deb records

@pytest.mark.slow
@needs_dpkg
def test_package_metadata_layout_modes_and_ownership(deb, members):
    assert _field(deb, "Package") == "wt-gateway" and _field(deb, "Version") == VERSION
    assert _field(deb, "Architecture") == _host_arch()
    depends = _field(deb, "Depends")
    assert "python3 (>= 3.11)" in depends and "python3 (<< 3.12)" in depends and "libc6 (>= 2." in depends
    assert "mosquitto-clients" in _field(deb, "Suggests")
    assert _control(deb, "conffiles").split() == ["/etc/wt-gateway/gateway.toml"]
    assert deb.stat().st_size < 20_000_000, f"package grew to {deb.stat().st_size / 1e6:.1f} MB"

    for path in ("usr/lib/wt-gateway/launch.py", "usr/lib/wt-gateway/factory/VERSION",
                 "usr/lib/wt-gateway/factory/app/gateway/__main__.py", "usr/lib/wt-gateway/factory/app/contracts/__init__.py",
                 "usr/lib/wt-gateway/factory/app/gateway/_version.py", "usr/lib/systemd/system/wt-gateway.service",
                 "usr/lib/sysusers.d/wt-gateway.conf", "etc/wt-gateway/gateway.toml", "usr/bin/wt-gateway",
                 "usr/share/doc/wt-gateway/copyright", "usr/share/doc/wt-gateway/examples/ble-raw-hci.conf"):
        assert path in members, path
    vendor = {n.split("/")[4] for n in members if n.startswith("usr/lib/wt-gateway/vendor/")}
    for lib in ("paho", "serial", "zeroconf", "bleak", "dbus_fast", "cryptography"):
        assert lib in vendor, f"{lib} not vendored"
    assert not any(v.startswith("psycopg") for v in vendor), "the fleet's PostgreSQL driver is not the gateway's"
    assert not any("/tests/" in n or "__pycache__" in n or n.endswith(".pyc") for n in members)
    assert not any(n.startswith(("var/", "usr/lib/wt-gateway/vendor/bin")) for n in members)

    executables = set()
    for name, m in members.items():
        assert (m.uname, m.gname, m.uid, m.gid) == ("root", "root", 0, 0), f"{name} owned by {m.uname}:{m.gname}"
        if m.isdir():
            assert m.mode == 0o755, f"{name} {oct(m.mode)}"
        elif m.isfile():
            assert m.mode in (0o644, 0o755), f"{name} {oct(m.mode)}"
            if m.mode == 0o755:
                executables.add(name)
    assert executables == {"usr/lib/wt-gateway/launch.py", "usr/bin/wt-gateway"}


@pytest.mark.slow
@needs_dpkg
def test_unit_file_content_and_systemd_analyze_verify(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    unit_path = tmp_path / "usr/lib/systemd/system/wt-gateway.service"
    unit = unit_path.read_text()
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    one = {k: v[-1] for k, v in settings.items()}
    assert one["ExecStart"] == f"/usr/bin/python3 /usr/lib/wt-gateway/launch.py {LAUNCH_ARGS}"
    assert (one["Type"], one["NotifyAccess"], one["WatchdogSec"]) == ("notify", "main", "30s")
    assert (one["Restart"], one["RestartSec"], one["SuccessExitStatus"]) == ("always", "5s", "75")
    assert one["StartLimitIntervalSec"] and one["StartLimitBurst"]
    assert (one["User"], one["StandardOutput"], one["StandardError"]) == ("wt-gateway", "journal", "journal")
    assert (one["ProtectSystem"], one["ReadWritePaths"]) == ("strict", "/var/lib/wt-gateway")
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups"):
        assert one[key] == "yes", key
    assert one["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6", "AF_BLUETOOTH", "AF_NETLINK"]
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    caps = (tmp_path / "usr/share/doc/wt-gateway/examples/ble-raw-hci.conf").read_text()
    assert "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW" in caps
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit was checked by content only")
    for path in (unit_path, *sorted((tmp_path / "usr/share/doc/wt-gateway/examples").glob("*.conf"))):
        if path.name != unit_path.name:     # a drop-in is verified applied to the unit
            d = tmp_path / "verify" / "wt-gateway.service.d"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(unit_path, d.parent / "wt-gateway.service")
            shutil.copyfile(path, d / path.name)
            path = d.parent / "wt-gateway.service"
        r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr.strip() == "", f"{path}: {r.stderr}"


# ---------------------------------------------------------------- installed into a scratch root

@pytest.fixture
def installed(deb, tmp_path) -> Path:
    root = _scratch_root(tmp_path)
    _dpkg(root, "-i", str(deb))
    return root


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_install_creates_user_data_dir_first_slot_and_protects_the_config(installed):
    root = installed
    uid, _ = _ids(root, "passwd", "wt-gateway")
    gid, _ = _ids(root, "group", "wt-gateway")
    passwd = next(ln for ln in (root / "etc/passwd").read_text().splitlines() if ln.startswith("wt-gateway:"))
    assert passwd.endswith(":/var/lib/wt-gateway:/usr/sbin/nologin") and uid < 1000
    assert "wt-gateway" in _members_of(root, "dialout") and "wt-gateway" in _members_of(root, "bluetooth")

    def owner_mode(rel: str) -> tuple[int, int, int]:
        st = (root / rel).lstat()
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    assert owner_mode("var/lib/wt-gateway") == (uid, gid, 0o750)
    assert owner_mode("var/lib/wt-gateway/slots") == (uid, gid, 0o750)
    assert owner_mode("etc/wt-gateway") == (0, gid, 0o750)
    assert owner_mode("etc/wt-gateway/gateway.toml") == (0, gid, 0o640)
    assert owner_mode("usr/lib/wt-gateway/launch.py") == (0, 0, 0o755)

    slots = root / "var/lib/wt-gateway/slots"
    assert os.readlink(slots / "current") == "a"
    assert (slots / "a/app/gateway/__init__.py").is_file() and (slots / "a/VERSION").read_text().strip() == VERSION
    state = json.loads((slots / "state.json").read_text())
    assert (state["active"], state["version"], state["pending"]) == ("a", VERSION, None)
    assert all(p.lstat().st_uid == uid for p in [slots, *slots.rglob("*")]), "the daemon must own its slots"
    assert list((root / "usr/lib/wt-gateway/vendor/paho").rglob("*.pyc")), "libraries not byte-compiled"
    # the files on disk are the package's (md5sums), byte-compiling added caches only
    r = subprocess.run(["dpkg", f"--root={root}", "--verify", "wt-gateway"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert not (root / "etc/systemd").exists(), "a first install neither enables nor starts the service"


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_config_check_passes_with_the_shipped_example_from_the_installed_tree(installed, tmp_path):
    root = installed
    app, vendor = root / "usr/lib/wt-gateway/factory/app", root / "usr/lib/wt-gateway/vendor"
    conf = root / "etc/wt-gateway/gateway.toml"
    code = ("import sys, runpy\n"
            "sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]\n"
            "import paho.mqtt, cryptography, gateway\n"
            "print('FROM', paho.mqtt.__file__, cryptography.__file__, gateway.__file__, gateway.__version__)\n"
            "sys.argv[0] = 'gateway'\n"
            "runpy.run_module('gateway', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([SYS_PYTHON, "-I", "-c", code, str(app), str(vendor), "config", "check", str(conf)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    where = next(ln for ln in r.stdout.splitlines() if ln.startswith("FROM")).split()
    assert where[1].startswith(str(vendor)) and where[2].startswith(str(vendor)) and where[3].startswith(str(app))
    assert where[4] == VERSION
    assert f"{conf}: OK" in r.stdout + r.stderr
    assert 'data_dir = "/var/lib/wt-gateway"' in r.stdout

    # the installed CLI (/usr/bin/wt-gateway) runs the slot the service runs; its paths moved into the scratch root
    wrapper = tmp_path / "wt-gateway"
    wrapper.write_text((root / "usr/bin/wt-gateway").read_text()
                       .replace("LIB=/usr/lib/wt-gateway", f"LIB={root}/usr/lib/wt-gateway")
                       .replace("SLOTS=/var/lib/wt-gateway/slots", f"SLOTS={root}/var/lib/wt-gateway/slots"))
    r = subprocess.run(["sh", str(wrapper), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin"})
    assert (r.returncode, r.stdout.strip()) == (0, VERSION), r.stderr
    r = subprocess.run(["sh", str(wrapper), "config", "check", str(conf)], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and f"{conf}: OK" in r.stdout + r.stderr, r.stderr
    assert not list((root / "var/lib/wt-gateway/slots/a").rglob("*.pyc")), "the CLI must not write caches into slots"


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_maintainer_scripts_are_idempotent_and_keep_config_and_slots(installed, deb):
    root = installed
    conf = root / "etc/wt-gateway/gateway.toml"
    conf.write_text(conf.read_text().replace('id = "gw-0001"', 'id = "gw-4242"') + "# local change\n")
    slots = root / "var/lib/wt-gateway/slots"
    shutil.copytree(slots / "a", slots / "b", symlinks=True)
    (slots / "b/VERSION").write_text("0.2.0\n")
    os.symlink("b", slots / "current.tmp")
    os.replace(slots / "current.tmp", slots / "current")
    state = json.loads((slots / "state.json").read_text())
    state.update(active="b", version="0.2.0", previous={"slot": "a", "version": VERSION})
    (slots / "state.json").write_text(json.dumps(state))
    (root / "var/lib/wt-gateway/journal.sqlite").write_bytes(b"not really a journal")
    passwd, group = (root / "etc/passwd").read_text(), (root / "etc/group").read_text()
    before = {**_tree(root, "etc/wt-gateway"), **_tree(root, "var/lib/wt-gateway")}

    # the postinst again, as dpkg would run it (configure <installed version>), twice
    postinst = root / "var/lib/dpkg/info/wt-gateway.postinst"
    for _ in range(2):
        r = subprocess.run(["sh", str(postinst), "configure", VERSION], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DPKG_ROOT": str(root)})
        assert r.returncode == 0, r.stderr
    assert {**_tree(root, "etc/wt-gateway"), **_tree(root, "var/lib/wt-gateway")} == before

    # an upgrade (the package installed again): prerm upgrade, unpack, postinst configure
    _dpkg(root, "-i", str(deb))
    assert {**_tree(root, "etc/wt-gateway"), **_tree(root, "var/lib/wt-gateway")} == before
    assert (root / "etc/passwd").read_text() == passwd and (root / "etc/group").read_text() == group
    assert 'id = "gw-4242"' in conf.read_text()


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_remove_keeps_config_and_data_purge_deletes_them(installed):
    root = installed
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    os.symlink("/usr/lib/systemd/system/wt-gateway.service",
               root / "etc/systemd/system/multi-user.target.wants/wt-gateway.service")
    _dpkg(root, "-r", "wt-gateway")
    assert not (root / "usr/lib/wt-gateway").exists(), "leftovers: " + str(list((root / "usr/lib").rglob("*"))[:5])
    assert (root / "etc/wt-gateway/gateway.toml").is_file()
    assert (root / "var/lib/wt-gateway/slots/a/app/gateway/__init__.py").is_file()
    _dpkg(root, "-P", "wt-gateway")
    assert not (root / "etc/wt-gateway").exists() and not (root / "var/lib/wt-gateway").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/wt-gateway.service").is_symlink()
    _ids(root, "passwd", "wt-gateway")      # the system user stays (Debian policy)


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_installed_launcher_runs_the_packaged_gateway_until_ready(installed, tmp_path, mosquitto):
    """The unit's ExecStart, with the scratch root's paths: the launcher picks slot a and
    execs the daemon in the same process, which reports READY=1 with the packaged version."""
    root = installed
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)    # the sender's pid, as systemd sees it
    sock.settimeout(1.0)
    args = LAUNCH_ARGS.replace("/var/", f"{root}/var/").replace("/etc/", f"{root}/etc/").replace("/usr/", f"{root}/usr/")
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
           "WT_GW__GATEWAY__DATA_DIR": str(root / "var/lib/wt-gateway"), "WT_GW__UPLINK__HOST": "127.0.0.1",
           "WT_GW__UPLINK__PORT": str(mosquitto.port), "WT_GW__UPLINK__TLS__ENABLED": "false",
           "WT_GW__STATUS__PORT": "0", "WT_GW__DISCOVERY__ENABLED": "false"}
    proc = subprocess.Popen([SYS_PYTHON, str(root / "usr/lib/wt-gateway/launch.py"), *args.split()], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    got: list[dict[str, str]] = []
    senders: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not any("WATCHDOG" in m for m in got) and time.monotonic() < deadline and proc.poll() is None:
            try:
                data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("iII")))
            except socket.timeout:
                continue
            for level, kind, cred in anc:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                    senders.add(struct.unpack("iII", cred[:struct.calcsize("iII")])[0])
            got.append(dict(ln.split("=", 1) for ln in data.decode().split("\n") if "=" in ln))
        ready = [m for m in got if m.get("READY") == "1"]
        assert ready, f"no READY=1; got {got}\n" + "".join(out)
        assert ready[0]["STATUS"].startswith(f"gw-0001 {VERSION} running"), ready[0]
        assert any("WATCHDOG" in m for m in got)
        # the daemon is the launcher's own process (exec): NotifyAccess=main accepts what it sends
        assert senders == {proc.pid}, (senders, proc.pid)
        assert any(re.search(r"starting gateway .* from slot a", ln) for ln in out), "".join(out)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
