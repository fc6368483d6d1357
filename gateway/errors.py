"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``, and one mapping.

Every failure the gateway reports goes through :class:`GatewayError`, so the status, the ``type``
and the ``code`` are decided here and nowhere else.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 408: "invalid_request_error", 413: "invalid_request_error",
         431: "invalid_request_error", 429: "rate_limit_error",
         500: "internal_error", 502: "upstream_error", 503: "service_unavailable", 504: "timeout_error"}


class GatewayError(Exception):
    """An error the caller sees with ``status`` and an OpenAI error body."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return Response(json.dumps(self.body()), status_code=self.status, media_type="application/json",
                        headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, code=code, param=param)


# pydantic names the member of a union that failed in the error's location (``prompt.list[str]``);
# the caller's ``param`` is the field's path, so the location is cut there
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _param(loc: tuple[Any, ...]) -> str | None:
    parts: list[str] = []
    for p in loc:
        if p == "body" and not parts:
            continue
        if isinstance(p, str) and (p in _UNION_TAGS or "[" in p):
            break
        parts.append(str(p))
    return ".".join(parts) or None


def _validation_error(exc: RequestValidationError) -> GatewayError:
    errors = exc.errors()
    if not errors:
        return bad_request("invalid request")
    first = errors[0]
    param = _param(tuple(first.get("loc", ())))
    for err in errors:  # of a union's failed members, the one that says more than "wrong type"
        if _param(tuple(err.get("loc", ()))) == param and not str(err.get("type", "")).endswith("_type"):
            first = err
            break
    if first.get("type") == "json_invalid":
        return bad_request("request body is not valid JSON", code="invalid_json")
    param = _param(tuple(first.get("loc", ())))
    if param is None and first.get("type") in ("model_attributes_type", "dict_type", "missing"):
        return bad_request("request body must be a JSON object (send Content-Type: application/json)",
                           code="invalid_json")
    if first.get("type") == "missing":
        return bad_request(f"missing required field '{param}'", param=param, code="missing_field")
    return bad_request(f"{param or 'body'}: {first.get('msg', 'invalid value')}", param=param,
                       code="invalid_field")


def install(app: FastAPI) -> None:
    """Make FastAPI's own errors (validation, 404/405 routes) OpenAI-shaped too."""

    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return _validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, GatewayError):  # raised while FastAPI read the body (size, time)
            return exc.__cause__.response()
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            return bad_request("request body is not valid UTF-8", code="invalid_unicode").response()
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return bad_request("request body is nested too deeply", code="too_deep").response()
        return GatewayError(exc.status_code, str(exc.detail), code=f"http_{exc.status_code}",
                            headers=dict(exc.headers or {})).response()  # 405 keeps its Allow header
