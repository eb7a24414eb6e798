# Small persistence helpers on the (littlefs) data directory.
#
# littlefs commits a file's data on close and renames atomically, so
# "write a temp file, then rename over the target" survives a power cut at any
# write: the reader sees the old or the new content, never a mix. Records carry
# a CRC so a file torn by a failing flash is detected instead of trusted.
from micropython import const
import os
import struct
from wire import crc16

_SEQ_BLOCK = const(16)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def mkdirs(path):
    p = ""
    for part in path.split("/"):
        if not part:
            continue
        p += "/" + part
        if not exists(p):
            os.mkdir(p)


def remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def write_atomic(path, data, crc=True):
    """Replace ``path`` with ``data`` (+ CRC-16), atomically (tmp file + rename)."""
    tmp = path + ".t"
    with open(tmp, "wb") as f:
        f.write(data)
        if crc:
            f.write(struct.pack("<H", crc16(data)))
    os.rename(tmp, path)


def read_checked(path):
    """Content written by write_atomic, or None if missing or corrupt."""
    try:
        with open(path, "rb") as f:
            b = f.read()
    except OSError:
        return None
    if len(b) < 2 or crc16(b[:-2]) != struct.unpack("<H", b[-2:])[0]:
        return None
    return b[:-2]


class Counter:
    """A u32 that never goes backwards across resets, persisted in reserved blocks.

    The file holds the first value NOT yet reserved. At boot the counter starts
    there (the rest of the previous block is skipped) and reserves a new block
    before handing out any value of it, so a reset at any point cannot reuse one.
    """

    def __init__(self, path, floor=1, block=_SEQ_BLOCK):
        self._path = path
        self._block = block
        b = read_checked(path)
        start = struct.unpack("<I", b)[0] if b is not None and len(b) == 4 else 0
        self._next = max(start, floor, 1)
        self._limit = self._next
        self.lost = b is None and exists(path)

    def _reserve(self):
        self._limit = self._next + self._block
        write_atomic(self._path, struct.pack("<I", self._limit))

    def peek(self):
        return self._next

    def next(self):
        if self._next >= self._limit:
            self._reserve()
        v = self._next
        self._next += 1
        return v
