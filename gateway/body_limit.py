"""Reject request bodies over the configured size with an OpenAI-shaped 413 (pure ASGI, no buffering).

FastAPI's own ``max_body_size`` answers a too-large ``Content-Length`` with Starlette's plain-text
413, which the OpenAI SDK cannot parse; this middleware answers both cases in the error shape.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import GatewayError


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = GatewayError(413, f"request body exceeds {self.max_bytes} bytes", code="request_too_large")

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
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except GatewayError as exc:
            if exc is not too_large:
                raise
            if not started:
                await too_large.response()(scope, receive, send)
