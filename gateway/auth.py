"""Bearer-key check: constant-time comparison, keys never logged or echoed."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from .errors import GatewayError


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


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


async def require_key(request: Request) -> None:
    """FastAPI dependency for every /v1 route (async: no thread-pool hop)."""
    check_key(request.app.state.api_keys, presented_key(request))
