#!/usr/bin/env python3
"""Build the gateway's Debian package, ``wt-gateway_<version>_<arch>.deb``, with dpkg-deb.

    python scripts/build_deb.py [--arch amd64|arm64] [--out DIR] [--version V] [--wheelhouse DIR]

What goes where (docs/operations.md, "What the package installs"):

  /usr/lib/wt-gateway/launch.py        the stable launcher (gateway/launch.py), never replaced by a gateway update
  /usr/lib/wt-gateway/vendor/          the runtime dependencies from pyproject.toml (not psycopg: fleet only),
                                       installed with ``pip --target`` from wheels for the target architecture
  /usr/lib/wt-gateway/factory/         the packaged release: app/ (packages gateway and contracts,
                                       .py sources, gateway/_version.py) and VERSION — the release
                                       artifact of scripts/build-release.py, unpacked
  /usr/lib/systemd/system/wt-gateway.service, /usr/lib/sysusers.d/wt-gateway.conf
  /usr/bin/wt-gateway                  the CLI (``wt-gateway config check``, ``wt-gateway status``)
  /etc/wt-gateway/gateway.toml         conffile (packaging/gateway.toml)
  /usr/share/doc/wt-gateway/           copyright, operations.md, examples/ (systemd drop-ins)

Maintainer scripts are packaging/debian/{postinst,prerm,postrm}. Every file is root:root
(``dpkg-deb --root-owner-group``: no fakeroot needed), directories and executables 0755,
other files 0644; mtimes are clamped to ``SOURCE_DATE_EPOCH`` (default: the last commit).
The network is used only by pip, for PyPI (``--wheelhouse DIR`` builds offline from
downloaded wheels). Bad input exits 2 with a message naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
PACKAGE = "wt-gateway"
LIB = Path("usr/lib/wt-gateway")
APP_PACKAGES = ("gateway", "contracts")
APP_DATA_SUFFIXES = (".py", ".toml", ".json", ".html", ".sql", ".conf")
# Python packages the gateway does not need at run time (the fleet's PostgreSQL driver)
NOT_VENDORED = ("psycopg", "fastapi", "uvicorn", "prometheus-client", "httpx")   # the fleet service and CLI only
TARGET_PYTHON = "3.11"                     # Debian 12 / Raspberry Pi OS 12: python3 is 3.11
# glibc of Debian 12 is 2.36: any manylinux_2_N wheel with N <= 36 runs there. pip does not
# widen one --platform to older glibc versions, so every one is listed.
GLIBC_MAX_MINOR = 36
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
EXECUTABLES = {f"{LIB}/launch.py", "usr/bin/wt-gateway"}
CONFFILES = ("/etc/wt-gateway/gateway.toml",)


class BuildError(Exception):
    """A build step failed; the message names what and how to fix it."""


def log(msg: str) -> None:
    print(f"build_deb: {msg}", file=sys.stderr, flush=True)


def source_version() -> str:
    """The version of the source tree (gateway/__init__.py's DEV_VERSION or __version__)."""
    text = (ROOT / "gateway" / "__init__.py").read_text()
    m = re.search(r'^(?:DEV_VERSION|__version__)\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise BuildError("gateway/__init__.py has no DEV_VERSION or __version__ string; pass --version")
    return m.group(1)


def runtime_requirements() -> list[str]:
    """pyproject.toml's [project].dependencies minus the fleet-only ones."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = []
    for d in deps:
        name = re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower().replace("_", "-")
        if name not in NOT_VENDORED:
            out.append(d)
    return out


# ---------------------------------------------------------------- staging

def stage_app(dest: Path, version: str) -> int:
    """Copy the packages gateway and contracts (no tests, no caches) into ``dest``; write
    gateway/_version.py so the packaged gateway reports ``version``. Returns the file count."""
    n = 0
    for pkg in APP_PACKAGES:
        for src in sorted((ROOT / pkg).rglob("*")):
            rel = src.relative_to(ROOT)
            if not src.is_file() or "tests" in rel.parts or "__pycache__" in rel.parts:
                continue
            if src.suffix not in APP_DATA_SUFFIXES or rel.name == "_version.py":
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            n += 1
    (dest / "gateway" / "_version.py").write_text(
        f'"""Written by scripts/build_deb.py: the version of this packaged release."""\n__version__ = "{version}"\n')
    return n + 1


def stage_factory(dest: Path, version: str) -> str:
    """The packaged release in ``dest`` (app/, VERSION): the very artifact a fleet update
    would ship (scripts/build-release.py), unpacked; without that script, the packages
    copied here. Returns how it was made."""
    release = ROOT / "scripts" / "build-release.py"
    if not release.is_file():
        (dest / "app").mkdir(parents=True)
        stage_app(dest / "app", version)
        (dest / "VERSION").write_text(version + "\n")
        return "copied from the source tree"
    with tempfile.TemporaryDirectory(prefix="wt-gateway-release-") as td:
        r = subprocess.run([sys.executable, str(release), "--version", version, "--out", td, "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"scripts/build-release.py --version {version} failed: {r.stderr.strip()}")
        artifact = Path(json.loads(r.stdout.strip().splitlines()[-1])["artifact"])
        dest.mkdir(parents=True)
        with tarfile.open(artifact) as tf:
            tf.extractall(dest, filter="data")
    if not (dest / "app" / "gateway" / "__main__.py").is_file() or not (dest / "VERSION").is_file():
        raise BuildError("the release artifact of scripts/build-release.py has no app/gateway or VERSION")
    return "the release artifact of scripts/build-release.py"


def stage_vendor(dest: Path, arch: str, wheelhouse: Path | None) -> None:
    machine = ARCHES[arch]
    platforms: list[str] = []
    for minor in range(GLIBC_MAX_MINOR, 16, -1):
        platforms += ["--platform", f"manylinux_2_{minor}_{machine}"]
    platforms += ["--platform", f"manylinux2014_{machine}"]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(dest), "--only-binary=:all:", *platforms, "--python-version", TARGET_PYTHON,
           "--implementation", "cp", "--abi", "cp" + TARGET_PYTHON.replace(".", "")]
    if wheelhouse is not None:
        cmd += ["--no-index", "--find-links", str(wheelhouse)]
    cmd += runtime_requirements()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        err = "\n".join(ln for ln in r.stderr.splitlines() if "is ignored" not in ln)
        raise BuildError(f"pip could not install the runtime dependencies for {arch}:\n{err}\n"
                         "fix: check access to PyPI, or download the wheels first and pass --wheelhouse DIR")
    shutil.rmtree(dest / "bin", ignore_errors=True)       # console scripts with this machine's interpreter path
    for cache in dest.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    wrong = [p.name for p in dest.rglob("*.so") if "-linux-gnu" in p.name and machine not in p.name]
    if wrong:
        raise BuildError(f"vendor holds extension modules for another architecture: {wrong[:5]}")


def glibc_needed(vendor: Path) -> str:
    """The highest glibc a vendored wheel's manylinux tag asks for (``2.17`` for manylinux2014)."""
    best = (2, 17)
    for wheel in vendor.glob("*.dist-info/WHEEL"):
        for m in re.finditer(r"^Tag: .*-manylinux_(\d+)_(\d+)_", wheel.read_text(), re.M):
            best = max(best, (int(m.group(1)), int(m.group(2))))
    return f"{best[0]}.{best[1]}"


def stage_tree(root: Path, *, version: str, arch: str, wheelhouse: Path | None) -> dict[str, str]:
    launcher = ROOT / "gateway" / "launch.py"
    if not launcher.is_file():
        raise BuildError("gateway/launch.py (the stable launcher) is missing: it is part of the A/B slot work; "
                         "build from a tree that has it")
    lib = root / LIB
    lib.mkdir(parents=True)
    shutil.copyfile(launcher, lib / "launch.py")
    how = stage_factory(lib / "factory", version)
    files = sum(1 for p in (lib / "factory").rglob("*") if p.is_file())
    log(f"factory release {version}: {files} files ({how})")
    t = time.monotonic()
    stage_vendor(lib / "vendor", arch, wheelhouse)
    log(f"vendor for {arch}: {len(list((lib / 'vendor').glob('*.dist-info')))} distributions "
        f"({time.monotonic() - t:.1f} s)")

    def put(src: Path, rel: str) -> None:
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)

    put(PACKAGING / "wt-gateway.service", "usr/lib/systemd/system/wt-gateway.service")
    put(PACKAGING / "sysusers.d" / "wt-gateway.conf", "usr/lib/sysusers.d/wt-gateway.conf")
    put(PACKAGING / "wt-gateway", "usr/bin/wt-gateway")
    put(PACKAGING / "gateway.toml", "etc/wt-gateway/gateway.toml")
    doc = "usr/share/doc/wt-gateway"
    put(PACKAGING / "copyright", f"{doc}/copyright")
    for md in ("operations.md", "upgrades.md", "gateway-config.md"):
        if (ROOT / "docs" / md).is_file():
            put(ROOT / "docs" / md, f"{doc}/{md}")
    for ex in sorted((PACKAGING / "examples").glob("*.conf")):
        put(ex, f"{doc}/examples/{ex.name}")
    return {"glibc": glibc_needed(lib / "vendor")}


def control_text(*, version: str, arch: str, installed_kb: int, glibc: str) -> str:
    tpl = (PACKAGING / "debian" / "control.in").read_text()
    return (tpl.replace("@VERSION@", version).replace("@ARCH@", arch).replace("@INSTALLED_SIZE@", str(installed_kb))
            .replace("@GLIBC@", glibc).replace("@PYTHON@", TARGET_PYTHON)
            .replace("@PYTHON_NEXT@", f"3.{int(TARGET_PYTHON.split('.')[1]) + 1}"))


def write_debian_dir(root: Path, *, version: str, arch: str, glibc: str) -> None:
    deb = root / "DEBIAN"
    deb.mkdir()
    payload = [p for p in sorted(root.rglob("*")) if p.is_file() and deb not in p.parents]
    installed_kb = sum((p.stat().st_size + 1023) // 1024 for p in payload) + sum(p.is_dir() for p in root.rglob("*"))
    (deb / "control").write_text(control_text(version=version, arch=arch, installed_kb=installed_kb, glibc=glibc))
    (deb / "conffiles").write_text("".join(c + "\n" for c in CONFFILES))
    sums = []
    for p in payload:
        rel = p.relative_to(root).as_posix()
        if "/" + rel not in CONFFILES:
            sums.append(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {rel}\n")
    (deb / "md5sums").write_text("".join(sums))
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(PACKAGING / "debian" / script, deb / script)


def normalise(root: Path, epoch: int) -> None:
    """Modes 0755 (directories, executables, maintainer scripts) / 0644; mtimes clamped."""
    for p in sorted(root.rglob("*"), reverse=True):
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            p.chmod(0o755)
        elif rel in EXECUTABLES or rel in ("DEBIAN/postinst", "DEBIAN/prerm", "DEBIAN/postrm"):
            p.chmod(0o755)
        else:
            p.chmod(0o644)
        os.utime(p, (epoch, epoch), follow_symlinks=False)
    root.chmod(0o755)


def source_date_epoch() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    r = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else int(time.time())


def build(*, arch: str, out_dir: Path, version: str, wheelhouse: Path | None = None, keep: bool = False) -> Path:
    if shutil.which("dpkg-deb") is None:
        raise BuildError("dpkg-deb is not installed: apt-get install dpkg")
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~-]*", version):
        raise BuildError(f"--version {version!r} is not a Debian version: start with a digit, then letters, "
                         "digits and . + ~ - only (e.g. 0.2.0 or 0.2.0+rc1)")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wt-gateway-deb-"))
    try:
        root = work / f"{PACKAGE}_{version}_{arch}"
        root.mkdir()
        facts = stage_tree(root, version=version, arch=arch, wheelhouse=wheelhouse)
        write_debian_dir(root, version=version, arch=arch, glibc=facts["glibc"])
        epoch = source_date_epoch()
        normalise(root, epoch)
        deb = out_dir / f"{PACKAGE}_{version}_{arch}.deb"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        r = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise BuildError(f"dpkg-deb failed: {r.stderr.strip()}")
        if keep:
            log(f"staging tree kept in {root}")
        return deb
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def host_arch() -> str:
    r = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "amd64"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="build_deb.py", description="Build the wt-gateway Debian package.")
    p.add_argument("--arch", choices=sorted(ARCHES), help="target architecture (default: this machine's)")
    p.add_argument("--out", default=str(ROOT / "dist"), help="output directory (default: dist/)")
    p.add_argument("--version", help="package version (default: the source tree's, gateway/__init__.py)")
    p.add_argument("--wheelhouse", help="build offline: take the dependency wheels from this directory")
    p.add_argument("--keep", action="store_true", help="keep the staging tree (its path is printed)")
    args = p.parse_args(argv)
    t = time.monotonic()
    try:
        arch = args.arch or host_arch()
        if arch not in ARCHES:
            raise BuildError(f"this machine's architecture {arch!r} is not supported: pass --arch amd64 or arm64")
        wheelhouse = Path(args.wheelhouse) if args.wheelhouse else None
        if wheelhouse is not None and not wheelhouse.is_dir():
            raise BuildError(f"--wheelhouse {wheelhouse}: no such directory")
        deb = build(arch=arch, out_dir=Path(args.out), version=args.version or source_version(),
                    wheelhouse=wheelhouse, keep=args.keep)
    except BuildError as exc:
        print(f"build_deb: error: {exc}", file=sys.stderr)
        return 2
    log(f"built {deb} ({deb.stat().st_size / 1e6:.1f} MB in {time.monotonic() - t:.1f} s)")
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
