"""An httpx transport that runs an ASGI application in this process: no socket, no port.

The embedded fleet (no ``--server``) is the very same FastAPI application as ``fleet serve``;
this transport hands it each request on an event loop of its own (an anyio blocking portal
thread) and streams the answer back as it is produced, so a progress stream (NDJSON) reaches
the command while the work goes on. The app's lifespan runs on :meth:`start` and
:meth:`close` (it closes the app's database connections).

Starlette's TestClient does the same for tests, but collects the whole body before returning
it (no progress) and is a test utility; this is the small part of it the CLI needs.
"""
from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Any, Iterator
from urllib.parse import unquote

import httpx

_DONE = object()


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client
        self._portal_cm: Any = None
        self._portal: Any = None
        self._lifespan: Future | None = None
        self._stop: Any = None
        self._state: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "InProcessTransport":
        from anyio.from_thread import start_blocking_portal

        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._lifespan, self._stop = self._portal.start_task(self._run_lifespan)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def close(self) -> None:
        if self._portal is None:
            return
        portal, self._portal = self._portal, None
        try:
            if self._stop is not None:
                portal.call(self._stop.set)
                assert self._lifespan is not None
                self._lifespan.result(timeout=30)
        finally:
            self._portal_cm.__exit__(None, None, None)

    async def _run_lifespan(self, *, task_status: Any) -> None:
        import anyio

        to_app, from_client = anyio.create_memory_object_stream[dict](4)
        started, stopped, stop = anyio.Event(), anyio.Event(), anyio.Event()
        result: dict[str, Any] = {}

        async def receive() -> dict:
            return await from_client.receive()

        async def send(message: dict) -> None:
            kind = message["type"]
            if kind.startswith("lifespan.startup."):
                result["startup"] = message
                started.set()
            elif kind.startswith("lifespan.shutdown."):
                stopped.set()

        async def run_app() -> None:
            try:
                await self.app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                                "state": self._state}, receive, send)
            finally:
                started.set()
                stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_app)
            await to_app.send({"type": "lifespan.startup"})
            await started.wait()
            msg = result.get("startup") or {}
            if msg.get("type") != "lifespan.startup.complete":
                raise RuntimeError(f"the fleet application did not start: {msg.get('message') or 'no answer'}")
            task_status.started(stop)
            await stop.wait()
            await to_app.send({"type": "lifespan.shutdown"})
            await stopped.wait()

    # -- requests -------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._portal is None:
            raise httpx.ConnectError("the in-process fleet application is not running", request=request)
        body = request.read()
        url = request.url
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
                 "scheme": url.scheme, "path": unquote(url.path), "raw_path": url.raw_path.split(b"?", 1)[0],
                 "query_string": url.query, "root_path": "", "client": self.client,
                 "server": (url.host, url.port or 80), "state": dict(self._state),
                 "headers": [(k.lower(), v) for k, v in request.headers.raw]}
        out: queue.Queue = queue.Queue()
        holder: dict[str, Any] = {}

        async def call() -> None:
            import anyio

            gone = holder["gone"] = anyio.Event()
            sent = False

            async def receive() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict) -> None:
                out.put(message)

            try:
                await self.app(scope, receive, send)
            except Exception as exc:     # noqa: BLE001 - the app answered 500 already, or never started: below
                out.put(exc)
            finally:
                out.put(_DONE)

        future = self._portal.start_task_soon(call)
        start = out.get()
        while isinstance(start, dict) and start["type"] != "http.response.start":
            start = out.get()
        if not isinstance(start, dict):          # the app failed before it answered
            future.result()
            raise httpx.RemoteProtocolError(f"the fleet application failed: {start!r}", request=request)
        stream = _Body(out, future, self._portal, holder)
        return httpx.Response(start["status"], headers=start.get("headers", []), stream=stream, request=request)


class _Body(httpx.SyncByteStream):
    def __init__(self, out: queue.Queue, future: Future, portal: Any, holder: dict[str, Any]) -> None:
        self.out, self.future, self.portal, self.holder = out, future, portal, holder
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        while not self.finished:
            message = self.out.get()
            if message is _DONE or isinstance(message, BaseException):
                self.finished = message is _DONE
                if message is _DONE:
                    return
                continue
            if message.get("type") == "http.response.body" and message.get("body"):
                yield message["body"]

    def close(self) -> None:
        if not self.finished:                    # the reader stopped early: tell the app the client left
            gone = self.holder.get("gone")
            if gone is not None:
                try:
                    self.portal.call(gone.set)
                except RuntimeError:             # the portal is already closed
                    pass
            for _ in self:
                pass
        self.future.result(timeout=60)
