"""Failure classification: kind, the caller's status, retry or not; the error code after the last."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.failures import FAILURE_KINDS, classify, error_code
from gateway.forward import Forwarder


class StatusError(Exception):
    def __init__(self, status_code: int, message: str = "upstream said no") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def wrapped(inner: BaseException) -> Exception:
    """An error raised while handling ``inner``, as litellm wraps transport errors."""
    try:
        try:
            raise inner
        except BaseException:
            raise RuntimeError("litellm.InternalServerError: wrapped")
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("exc,kind,status,retry", [
    (asyncio.TimeoutError(), "timeout", 504, True),
    (httpx.ReadTimeout("slow"), "timeout", 504, True),
    (StatusError(429), "rate_limit", 502, True),
    (wrapped(httpx.ConnectError("refused")), "connection", 502, True),
    (ConnectionRefusedError(), "connection", 502, True),
    (StatusError(503), "status_5xx", 502, True),
    (StatusError(400, "litellm.BadRequestError: bad"), "status_4xx", 400, False),
    (StatusError(401), "status_4xx", 502, False),  # the gateway's upstream key is wrong, not the caller's
    (StatusError(408), "other", 502, True),
    (ValueError("odd"), "other", 502, True),
])
def test_classify(exc, kind, status, retry):
    f = classify("m", exc)
    assert (f.kind, f.status, f.retry, f.model) == (kind, status, retry, "m")
    assert f.kind in FAILURE_KINDS
    assert "litellm." not in f.message


def test_error_codes_and_giving_up():
    assert [error_code(k) for k in ("timeout", "status_4xx", "connection")] == [
        "upstream_timeout", "upstream_rejected", "upstream_error"]
    err = Forwarder._give_up([classify("a", StatusError(503)), classify("b", asyncio.TimeoutError())])
    assert err.status == 504 and err.code == "upstream_timeout" and err.headers == {"x-router-attempted": "a,b"}
    assert err.message.startswith("all upstream attempts failed (a,b)")
    assert Forwarder._give_up([]).status == 502
