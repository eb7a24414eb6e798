"""Fault injection on the links a bench exercises.

* :class:`SerialFaultProxy` sits between a device's pseudo-terminal and the one the
  gateway opens, copying bytes both ways and, by a seeded policy, dropping, delaying,
  corrupting or duplicating them.
* :class:`TcpFaultProxy` sits between the gateway and the broker on loopback and can
  pass, blackhole (connections stay open, bytes vanish), slow down, or refuse traffic.

Both are deterministic for a given seed and stop by themselves when closed.
"""
from __future__ import annotations

import os
import random
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class FaultPolicy:
    drop: float = 0.0        # probability a chunk is dropped
    corrupt: float = 0.0     # probability one bit of a chunk is flipped
    duplicate: float = 0.0   # probability a chunk is sent twice
    delay_s: float = 0.0     # added latency per chunk
    seed: int = 1

    def is_clean(self) -> bool:
        return not (self.drop or self.corrupt or self.duplicate or self.delay_s)


@dataclass
class FaultCounters:
    chunks: int = 0
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0


def open_pty() -> tuple[int, int, str]:
    """(master_fd, slave_fd, slave_path) in raw mode."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


class SerialFaultProxy:
    """device pty <-> proxy <-> gateway pty.

    ``device_path`` is the tty the device (firmware) opens; ``gateway_path`` the one the
    gateway opens. Policies apply per direction: ``up`` (device→gateway), ``down``.
    """

    def __init__(self, up: FaultPolicy | None = None, down: FaultPolicy | None = None,
                 tap: "Callable[[str, bytes], None] | None" = None) -> None:
        self.tap = tap       # sees what each side finally receives: tap("up"|"down", bytes)
        self.up = up or FaultPolicy()
        self.down = down or FaultPolicy(seed=2)
        self.counters = {"up": FaultCounters(), "down": FaultCounters()}
        self._dev_master, self._dev_slave, self.device_path = open_pty()
        self._gw_master, self._gw_slave, self.gateway_path = open_pty()
        self._rng = {"up": random.Random(self.up.seed), "down": random.Random(self.down.seed)}
        self._stop = threading.Event()
        self._cycles = 0     # proxy loop iterations completed (drain() waits on it)
        self._thread = threading.Thread(target=self._run, name="serial-fault-proxy", daemon=True)

    def start(self) -> "SerialFaultProxy":
        self._thread.start()
        return self

    def set_policy(self, up: FaultPolicy | None = None, down: FaultPolicy | None = None) -> None:
        if up is not None:
            self.up = up
            self._rng["up"] = random.Random(up.seed)
        if down is not None:
            self.down = down
            self._rng["down"] = random.Random(down.seed)

    def drain(self, direction: str = "up", timeout_s: float = 5.0) -> None:
        """Return once every byte already written by one side has passed the proxy under the
        current policy. A starved proxy thread otherwise reads bytes a device wrote before a
        ``set_policy`` under the new policy (seen: a frame sent while the link was "cut"
        delivered after the link was restored)."""
        import fcntl
        import struct
        import termios

        fd = self._dev_master if direction == "up" else self._gw_master
        deadline = time.monotonic() + timeout_s
        while True:
            pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            if pending == 0:
                seen = self._cycles
                while self._cycles < seen + 2:       # a read in progress has been forwarded
                    if time.monotonic() > deadline:
                        raise AssertionError(f"serial proxy did not drain {direction} within {timeout_s} s")
                    time.sleep(0.01)
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"serial proxy did not drain {direction} within {timeout_s} s "
                                     f"({pending} bytes pending)")
            time.sleep(0.01)

    def _apply(self, direction: str, data: bytes) -> list[bytes]:
        pol = self.up if direction == "up" else self.down
        cnt = self.counters[direction]
        cnt.chunks += 1
        if pol.is_clean():
            return [data]
        rng = self._rng[direction]
        if pol.delay_s:
            time.sleep(pol.delay_s)
        if rng.random() < pol.drop:
            cnt.dropped += 1
            return []
        if data and rng.random() < pol.corrupt:
            b = bytearray(data)
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
            data = bytes(b)
            cnt.corrupted += 1
        if rng.random() < pol.duplicate:
            cnt.duplicated += 1
            return [data, data]
        return [data]

    def _run(self) -> None:
        pairs = {self._dev_master: ("up", self._gw_master), self._gw_master: ("down", self._dev_master)}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.1)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue  # the other end is not open (yet); keep serving
                direction, out = pairs[fd]
                for chunk in self._apply(direction, data):
                    try:
                        os.write(out, chunk)
                    except OSError:
                        pass
                    if self.tap is not None:
                        try:
                            self.tap(direction, chunk)
                        except Exception:  # an observer must never break the link
                            pass
            self._cycles += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._dev_master, self._dev_slave, self._gw_master, self._gw_slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpFaultProxy:
    """Loopback TCP proxy with modes ``pass``, ``blackhole``, ``slow`` and ``refuse``."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((listen_host, 0))
        self._lsock.listen(16)
        self.host, self.port = self._lsock.getsockname()
        self.mode = "pass"
        self.delay_s = 0.0
        self.bytes_blackholed = 0
        self._stop = threading.Event()
        self._conns: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-fault-proxy", daemon=True)

    def start(self) -> "TcpFaultProxy":
        self._thread.start()
        return self

    def set_mode(self, mode: str, delay_s: float = 0.0) -> None:
        if mode not in ("pass", "blackhole", "slow", "refuse"):
            raise ValueError(f"unknown proxy mode {mode!r}; use pass, blackhole, slow or refuse")
        self.mode, self.delay_s = mode, delay_s
        if mode == "refuse":
            self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for a, b in conns:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _accept_loop(self) -> None:
        self._lsock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except (socket.timeout, OSError):
                continue
            if self.mode == "refuse":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([a, b], [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for x in (a, b):
                        try:
                            x.close()
                        except OSError:
                            pass
                    return
                if self.mode in ("blackhole", "refuse"):    # refuse: read before the switch, never forwarded
                    self.bytes_blackholed += len(data)
                    continue
                if self.mode == "slow" and self.delay_s:
                    time.sleep(self.delay_s)
                try:
                    peers[s].sendall(data)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.drop_connections()
        self._lsock.close()
        self._thread.join(2)
