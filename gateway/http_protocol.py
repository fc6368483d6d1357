"""The HTTP/1.1 connection protocol ``serve`` runs: uvicorn's httptools protocol plus the two limits
uvicorn lacks before a request reaches the app.

uvicorn waits forever for a request's headers and accepts headers of any size (measured: a
connection sending half a request line stayed open indefinitely; a 2 MB header was accepted).
Here a request's headers must arrive within ``limits.header_timeout_s`` of the connection opening
(or of the request's first byte on a kept-alive connection) and fit in ``limits.max_header_bytes``;
otherwise the client gets an OpenAI-shaped 408 or 431 and the connection is closed. What happens
once the headers are in (body size and read time, the key) is :mod:`gateway.body_limit`'s job.

The limits reach the protocol through the lifespan state (``app_state``): the app's lifespan puts
its config's :class:`~gateway.config.Limits` there under :data:`LIMITS_STATE_KEY`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Limits
from .errors import GatewayError

LIMITS_STATE_KEY = "gateway_limits"
REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the answer is ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def raw_error(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 error response (OpenAI error body) that closes the connection."""
    body = json.dumps(GatewayError(status, message, code=code).body()).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, REASONS.get(status, b"Error"), len(body))) + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header deadline and a header size limit (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = (self.app_state or {}).get(LIMITS_STATE_KEY) or Limits()
        self.header_timeout_s: float = limits.header_timeout_s
        self.max_header_bytes: int = limits.max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0  # exact (url + names + values) once parsed
        self._raw_bytes = 0  # received while the headers were incomplete
        self._rejected: _Reject | None = None

    # -- the header phase ---------------------------------------------------------------
    def _start_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = self._raw_bytes = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _end_headers(self) -> None:
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self._send_reject(_Reject(408, f"request headers not received within {self.header_timeout_s:g} s"))

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            raise _Reject(431, f"request headers exceed {self.max_header_bytes} bytes")

    def _send_reject(self, reject: _Reject) -> None:
        self._end_headers()
        code = "request_timeout" if reject.status == 408 else "headers_too_large"
        self.transport.write(raw_error(reject.status, reject.message, code))
        self.transport.close()

    # -- uvicorn / httptools hooks ------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_headers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._raw_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._raw_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._send_reject(_Reject(431, f"request headers exceed {self.max_header_bytes} bytes"))

    def send_400_response(self, msg: str) -> None:
        if self._rejected is not None:  # our own callback stopped the parser
            reject, self._rejected = self._rejected, None
            self._send_reject(reject)
            return
        self._end_headers()
        self.transport.write(raw_error(400, msg, "invalid_http"))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_headers()

    def on_url(self, url: bytes) -> None:
        self._guard(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._guard(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._end_headers()
        super().on_headers_complete()

    def _guard(self, n: int) -> None:
        try:
            self._count(n)
        except _Reject as reject:
            self._rejected = reject
            raise httptools.HttpParserError(reject.message) from None
