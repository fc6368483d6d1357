"""Upstream failures: one mapping from an exception to its kind, the caller's status and retryability.

The forwarding loop (:mod:`gateway.forward`) and the stream relay (:mod:`gateway.proxy`) both
classify through :func:`classify`, so a kind means the same thing in the metrics, the ``router``
object and the retry decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, get_args

import httpx
import openai
from litellm.exceptions import APIConnectionError, BadRequestError, RateLimitError, Timeout

FailureKind = Literal["connection", "timeout", "status_4xx", "status_5xx", "rate_limit", "other"]
#: every kind, in the order the metrics document them (the ``kind`` label's values)
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)


#: upstream statuses that say the request itself was wrong (the client's to fix, not the upstream's)
CLIENT_STATUSES = frozenset({400, 413, 415, 422})


@dataclass
class Failure:
    """One failed upstream attempt."""

    model: str
    kind: FailureKind
    status: int  # what the caller gets if this is the last failure
    retry: bool  # worth another attempt (same model or next)
    message: str
    client_error: bool = False  # the request was wrong: passed back, never counted against the upstream
    retry_after: str | None = None  # a rate limit's Retry-After, as the upstream sent it


def retry_after(exc: BaseException) -> str | None:
    """The ``Retry-After`` header of the upstream response behind ``exc``, if it had one."""
    for source in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None),
                   getattr(getattr(exc, "response", None), "headers", None)):
        try:
            value = source.get("retry-after") if source is not None else None
        except AttributeError:
            continue
        if value:
            return str(value)
    return None


def _caused_by(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or anything in its cause chain is one of ``types`` (litellm wraps errors)."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, types):
            return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False


def classify(model: str, exc: BaseException, where: str | None = None) -> Failure:
    """The failure ``exc`` stands for: timeouts 504, rate limits/connection/5xx 502 (all retried);
    a request the upstream (or litellm, before calling it) refused as malformed is the client's
    error, passed through with its status; other 4xx passed through too (not retried; a 401 from the
    upstream is the gateway's fault: 502).

    Messages start with ``where`` (the model and its api_base, ``Deployment.label``; never a key),
    else the model's name.
    """
    who = where or model
    if _caused_by(exc, (asyncio.TimeoutError, Timeout, httpx.TimeoutException)):
        return Failure(model, "timeout", 504, True, f"{who}: upstream timed out")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, RateLimitError) or status == 429:
        return Failure(model, "rate_limit", 502, True, f"{who}: upstream rate limit", retry_after=retry_after(exc))
    if isinstance(exc, BadRequestError) or status in CLIENT_STATUSES:
        code = status if isinstance(status, int) and status in CLIENT_STATUSES else 400
        msg = str(getattr(exc, "message", exc)).replace("litellm.", "")
        return Failure(model, "status_4xx", code, False, f"{who}: {msg}", client_error=True)
    # litellm reports a refused connection as a 500 InternalServerError wrapping the transport error
    if _caused_by(exc, (APIConnectionError, openai.APIConnectionError, httpx.TransportError, OSError)):
        return Failure(model, "connection", 502, True, f"{who}: cannot reach upstream")
    if isinstance(status, int) and status >= 500:
        return Failure(model, "status_5xx", 502, True, f"{who}: upstream returned {status}")
    if isinstance(status, int) and 400 <= status < 500 and status != 408:
        msg = str(getattr(exc, "message", exc)).replace("litellm.", "")
        return Failure(model, "status_4xx", status if status != 401 else 502, False, f"{who}: {msg}")
    return Failure(model, "other", 502, True, f"{who}: {type(exc).__name__}")


def error_code(kind: FailureKind) -> str:
    """The OpenAI error ``code`` the caller sees when the last failure was of ``kind``."""
    return {"timeout": "upstream_timeout", "status_4xx": "upstream_rejected"}.get(kind, "upstream_error")
