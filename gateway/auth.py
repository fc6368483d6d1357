"""Bearer-key check: constant-time comparison, keys never logged or echoed, before the body is read.

:class:`KeyFirst` checks the key of every ``/v1`` request from its headers alone, before any
handler (and so before FastAPI reads the body): a client without a key cannot make the gateway
wait for, buffer or parse a body.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import GatewayError

PROTECTED_PREFIX = "/v1/"


def presented_key(headers: Headers) -> str | None:
    """The bearer key (``Authorization: Bearer``), else ``X-API-Key``."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key")


def check_key(accepted: list[bytes], presented: str | None) -> None:
    """Raise 401 unless ``presented`` equals one of ``accepted`` (all compared, in constant time)."""
    if not accepted:
        return
    given = (presented or "").encode()
    ok = False
    for key in accepted:
        ok |= hmac.compare_digest(key, given)
    if not ok:
        raise GatewayError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                           code="invalid_api_key")


class KeyFirst:
    """ASGI middleware: a ``/v1`` request without an accepted key gets its 401 before anything else."""

    def __init__(self, app: ASGIApp, api_keys: list[str]) -> None:
        self.app = app
        self.accepted = [k.encode() for k in api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.accepted and scope["path"].startswith(PROTECTED_PREFIX):
            try:
                check_key(self.accepted, presented_key(Headers(scope=scope)))
            except GatewayError as exc:
                await exc.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
