"""The gateway release artifact: a ``.tar.gz`` whose root holds ``app/gateway/…``,
``app/contracts/…`` and ``VERSION`` (built by scripts/build-release.py with :func:`pack`).

:func:`inspect` reads the whole archive from memory and refuses it — before a byte is
written — if it is not gzip/tar, is truncated, holds anything but regular files and
directories (no symlinks, hard links, devices, FIFOs), a name that is absolute, has ``..``
or lies outside ``app/`` and ``VERSION``, a duplicate, more than :data:`MAX_MEMBERS`
entries, a file over :data:`MAX_FILE_BYTES` or more than :data:`MAX_UNPACKED_BYTES` in
all, lacks the gateway's entry points, or has a ``VERSION`` other than the signed one.
:func:`unpack` then writes it into a fresh directory with fixed modes (0644/0755, no
owner from the archive) and fsyncs every file and directory; the caller renames that
directory into the slot.
"""
from __future__ import annotations

import errno
import gzip
import io
import os
import posixpath
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from gateway.adapters.upgrade._errors import UpgradeError

MAX_MEMBERS = 20_000
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
REQUIRED = ("app/gateway/__init__.py", "app/gateway/__main__.py", "app/contracts/__init__.py")
PACKAGES = ("gateway", "contracts")
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
VERSION_FILE = "app/gateway/_version.py"


@dataclass(frozen=True)
class Member:
    name: str          # normalised, relative ("app/gateway/x.py", "VERSION")
    is_dir: bool
    size: int


@dataclass(frozen=True)
class Bundle:
    version: str
    members: tuple[Member, ...]

    @property
    def unpacked_bytes(self) -> int:
        return sum(m.size for m in self.members)


def _bad(problem: str) -> UpgradeError:
    return UpgradeError(f"release artifact refused: {problem}; build it with scripts/build-release.py and sign it "
                        "again", reason="bad_artifact", phase="install")


def _normalise(raw: str) -> str:
    if "\x00" in raw or "\\" in raw:
        raise _bad(f"member name {raw!r} has a NUL or a backslash")
    name = raw[2:] if raw.startswith("./") else raw
    name = name.rstrip("/")
    if not name or name == ".":
        return ""
    if name.startswith("/") or posixpath.isabs(name):
        raise _bad(f"member {raw!r} has an absolute path")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _bad(f"member {raw!r} has '..', '.' or an empty part (path traversal)")
    if not (name == "VERSION" or name == "app" or name.startswith("app/")):
        raise _bad(f"member {raw!r} is outside app/ and VERSION")
    return name


def _members(blob: bytes) -> Iterable[tuple[tarfile.TarInfo, str, tarfile.TarFile]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r|gz") as tf:
            for info in tf:
                yield info, _normalise(info.name), tf
    except UpgradeError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise _bad(f"not a complete .tar.gz ({type(exc).__name__}: {exc})") from None


def inspect(blob: bytes, want_version: str) -> Bundle:
    """Validate the whole archive in memory; the :class:`Bundle` if it may be unpacked."""
    members: list[Member] = []
    seen: set[str] = set()
    total = 0
    version: str | None = None
    for info, name, tf in _members(blob):
        if not name:
            continue
        if not (info.isfile() or info.isdir()):
            kind = ("symlink" if info.issym() else "hard link" if info.islnk() else
                    "device" if info.ischr() or info.isblk() else "FIFO" if info.isfifo() else "special file")
            raise _bad(f"member {info.name!r} is a {kind}; only regular files and directories are allowed")
        if name in seen:
            raise _bad(f"member {name!r} appears twice")
        seen.add(name)
        if len(members) >= MAX_MEMBERS:
            raise _bad(f"more than {MAX_MEMBERS} members")
        size = info.size if info.isfile() else 0
        if size > MAX_FILE_BYTES:
            raise _bad(f"member {name!r} is {size} bytes (limit {MAX_FILE_BYTES})")
        total += size
        if total > MAX_UNPACKED_BYTES:
            raise _bad(f"it unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MiB")
        if name == "VERSION":
            if not info.isfile():
                raise _bad("VERSION is not a file")
            f = tf.extractfile(info)
            version = (f.read(200) if f is not None else b"").decode("utf-8", "replace").strip()
        members.append(Member(name, info.isdir(), size))
    files = {m.name for m in members if not m.is_dir}
    for m in members:
        parent = m.name.rsplit("/", 1)[0] if "/" in m.name else ""
        while parent:
            if parent in files:
                raise _bad(f"member {m.name!r} lies below {parent!r}, which is a file")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
    missing = [r for r in REQUIRED if r not in seen]
    if missing:
        raise _bad(f"it lacks {', '.join(missing)} (not a gateway release)")
    if version is None:
        raise _bad("it has no VERSION file")
    if version != want_version:
        raise _bad(f"its VERSION says {version!r} but the signed manifest says {want_version!r}")
    return Bundle(version, tuple(members))


Opener = Callable[[Path], BinaryIO]


def _open_new(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, "wb")


def unpack(blob: bytes, bundle: Bundle, dest: Path, *, opener: Opener = _open_new) -> None:
    """Write the inspected archive into ``dest`` (must not exist). OSError propagates (ENOSPC…)."""
    dest.mkdir(mode=0o755)
    expected = {m.name: m for m in bundle.members}
    dirs = {dest}
    for info, name, tf in _members(blob):
        m = expected.get(name)
        if not name or m is None:
            continue
        target = dest / name
        if m.is_dir:
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            dirs.add(target)
            continue
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        dirs.add(target.parent)
        src = tf.extractfile(info)
        if src is None:
            raise _bad(f"member {name!r} has no data")
        with opener(target) as out:
            left = m.size
            while left > 0:
                chunk = src.read(min(left, 1 << 16))
                if not chunk:
                    raise _bad(f"member {name!r} is truncated")
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


# ---------------------------------------------------------------- building (scripts/build-release.py)

def source_files(root: Path) -> list[tuple[str, Path]]:
    """(archive name under app/, file) for the packages a slot needs, sorted; no tests, no bytecode."""
    out: list[tuple[str, Path]] = []
    for pkg in PACKAGES:
        base = root / pkg
        if not (base / "__init__.py").is_file():
            raise UpgradeError(f"{base} is not a Python package; run from the repository root", reason="build")
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for fn in sorted(filenames):
                if fn.endswith(_SKIP_SUFFIXES) or fn.startswith("."):
                    continue
                p = Path(dirpath) / fn
                rel = p.relative_to(root).as_posix()
                if rel == "gateway/_version.py":
                    continue                      # written from --version below
                out.append((f"app/{rel}", p))
    return out


def pack(root: Path, version: str, *, replace: dict[str, bytes] | None = None) -> bytes:
    """The release artifact for ``version`` from the source tree at ``root`` (reproducible:
    sorted entries, mtime 0, owner root). ``replace`` maps archive names to content (tests
    build a broken release this way)."""
    files: dict[str, bytes] = {name: p.read_bytes() for name, p in source_files(root)}
    files[VERSION_FILE] = f'"""Written by scripts/build-release.py."""\n__version__ = "{version}"\n'.encode()
    files["VERSION"] = f"{version}\n".encode()
    files.update(replace or {})
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tf.addfile(info)
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), stat.S_IFREG | 0o644, 0
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


__all__ = ["Bundle", "MAX_FILE_BYTES", "MAX_MEMBERS", "MAX_UNPACKED_BYTES", "Member", "inspect", "is_no_space",
           "pack", "source_files", "unpack"]
