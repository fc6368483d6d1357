"""Bound what reading a request body can cost: its size (413) and its time (408), pure ASGI.

FastAPI's own ``max_body_size`` answers a too-large ``Content-Length`` with Starlette's plain-text
413, which the OpenAI SDK cannot parse; this middleware answers both cases in the error shape. A
body that stops arriving (a client that declared 1000 bytes and sent 18) is cut off
``body_timeout_s`` after the app first asked for it with a 408 that closes the connection, so a
client cannot hold connections open by trickling or withholding its body.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import GatewayError

CLOSE = {"connection": "close"}  # the rest of the body is never read: the connection cannot be reused


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = GatewayError(413, f"request body exceeds {self.max_bytes} bytes", code="request_too_large",
                                 headers=CLOSE)
        too_slow = GatewayError(408, f"request body not received within {self.timeout_s:g} s",
                                code="request_timeout", headers=CLOSE)

        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await too_large.response()(scope, receive, send)
                    return
        seen = 0
        complete = False
        deadline: float | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, complete, deadline
            if complete:  # after the body only a disconnect can arrive: no deadline
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise too_slow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except GatewayError as exc:
            if exc is not too_large and exc is not too_slow:
                raise
            if not started:
                await exc.response()(scope, receive, send)
