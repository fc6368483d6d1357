"""A client that hangs up cancels its request, so the upstream call stops (and is no longer billed).

Starlette runs a plain (non-streaming) handler to the end whatever the client does, and a
stream's handler learns of a disconnect only once its response has started: a client that left
while the gateway waited for an upstream still had the upstream call run to completion. This
middleware listens for ``http.disconnect`` as soon as the request body has been read, and on a
disconnect before the response is complete cancels the request's task (the handler's
``CancelledError`` path closes the upstream call and records status 499) and counts it in
``llm_router_client_disconnects_total``.

The app's own ``receive`` calls after the body (Starlette's stream disconnect listener) are
answered from the same watch, so the middleware is the only reader of the server's ``receive``.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics

DISCONNECT: Message = {"type": "http.disconnect"}


class CancelOnDisconnect:
    """ASGI middleware: cancel an HTTP request's handling when its client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        gone = asyncio.Event()
        response_done = False

        async def app_receive() -> Message:
            if body_read.is_set():  # after the body there is only a disconnect to hear of
                await gone.wait()
                return DISCONNECT
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def app_send(message: Message) -> None:
            nonlocal response_done
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_done = True
            await send(message)

        async def watch() -> None:
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass  # nothing else can arrive after the body; be tolerant all the same
            gone.set()

        handler = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and gone.is_set() and not response_done:
                metrics.CLIENT_DISCONNECTS.inc()
                handler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handler
                return
            await handler
        finally:
            watcher.cancel()
            if not handler.done():  # this task itself was cancelled (server shutdown)
                handler.cancel()
