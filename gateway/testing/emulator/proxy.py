"""A loopback TCP proxy the demo puts between gateway and broker to cut the uplink.

``cut()`` closes every connection and refuses new ones (the gateway sees its broker
vanish, like a home router losing its WAN); ``restore()`` lets connections through again.
asyncio-native, runs on the demo's event loop.
"""
from __future__ import annotations

import asyncio
import contextlib


class UplinkCutter:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.cut_active = False
        self.refused = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def async_start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def async_stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def cut(self) -> None:
        self.cut_active = True
        self._close_all()

    def restore(self) -> None:
        self.cut_active = False

    def _close_all(self) -> None:
        for w in list(self._conns):
            w.close()
        self._conns.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_active:
            self.refused += 1
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_w))
        tasks = [asyncio.create_task(self._pump(reader, up_w)), asyncio.create_task(self._pump(up_r, writer))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        for w in (writer, up_w):
            self._conns.discard(w)
            w.close()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await r.read(65536)
                if not data or w.is_closing():
                    break
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            w.close()
