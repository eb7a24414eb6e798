"""Request body size limit (413 problem detail before the body is parsed or stored).

Checked twice: the declared ``Content-Length`` up front, and the bytes actually received
(a chunked body without a length, or a lying length). Release uploads get a larger limit.
"""
from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._problems import MEDIA_TYPE, TYPE_PREFIX


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` while the app reads the body; answered as a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int, upload_paths: tuple[str, ...]) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths

    def _limit_for(self, scope: Scope) -> int:
        path = scope.get("path", "")
        return self.upload_limit if scope.get("method") in ("POST", "PUT") and path in self.upload_paths else self.limit

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        body = json.dumps({
            "type": TYPE_PREFIX + "too_large", "title": "request body too large", "status": 413,
            "detail": f"the request body is larger than {limit} bytes", "instance": scope.get("path", ""),
            "errors": [{"field": None, "problem": f"body over {limit} bytes",
                        "fix": "send a smaller body (split a large import into several requests)"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await self._refuse(scope, send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send, limit)
