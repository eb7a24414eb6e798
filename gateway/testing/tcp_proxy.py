"""A loopback TCP proxy that injects network faults between a client and a real broker.

Pass, blackhole (swallow bytes, as a dead link does: no FIN, no RST), delay, or cut the
connections. Used by the fault tests, the HIL benches and the demo's outage.
"""
from __future__ import annotations

import select
import socket
import threading
import time


class TcpProxy:
    """Loopback TCP proxy with fault modes; real sockets, one thread per connection.

    ``blackhole()``: from now on every byte in either direction is swallowed (the link is
    dead but no FIN/RST is seen — like a cut uplink); new connections are accepted and
    swallowed too. ``heal()``: blackholed connections are closed (they are dead anyway)
    and new ones forward normally. ``delay_s``: added latency per chunk. ``cut()``:
    close all current connections.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, 0))
        self._srv.listen(64)
        self.host, self.port = self._srv.getsockname()
        self._blackholed = False
        self.delay_s = 0.0
        self._conns: list[tuple[socket.socket, socket.socket | None, bool]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        with self._lock:
            self._blackholed = True
            self._conns = [(a, b, True) for a, b, _ in self._conns]

    def heal(self) -> None:
        with self._lock:
            self._blackholed = False
            dead = [(a, b) for a, b, bh in self._conns if bh]
            self._conns = [c for c in self._conns if not c[2]]
        for a, b in dead:
            for s in (a, b):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for a, b, _ in conns:
            for s in (a, b):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed = True
        try:
            self._srv.close()
        except OSError:
            pass
        self.cut()

    def _is_blackholed(self, a: socket.socket) -> bool:
        with self._lock:
            return any(c[0] is a and c[2] for c in self._conns)

    def _accept(self) -> None:
        while not self._closed:
            try:
                a, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                bh = self._blackholed
            b = None
            if not bh:
                try:
                    b = socket.create_connection(self.target, timeout=5)
                except OSError:
                    a.close()
                    continue
            with self._lock:
                self._conns.append((a, b, bh))
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket | None) -> None:
        socks = [a] + ([b] if b is not None else [])
        try:
            while not self._closed:
                r, _, _ = select.select(socks, [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    if b is None or self._is_blackholed(a):
                        continue        # swallowed
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass
