"""The OpenAPI schema, corrected to say what the gateway really returns.

FastAPI documents a 422 with its own validation body for every operation with parameters, while
the gateway answers validation errors with 400 in OpenAI's error shape (:mod:`gateway.errors`);
it does not know the statuses the middleware answers (401 key, 408 body too slow, 413 body too
large) nor that the completion routes stream ``text/event-stream``. :func:`install` replaces the
app's ``openapi()`` with one that fixes these once, from the routes FastAPI generated.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "ErrorResponse", "required": ["error"],
    "description": "OpenAI's error shape, for every error the gateway answers.",
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "code": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}},
}
REASONS = {400: "Malformed JSON, a missing or mistyped field, a bad task ID or text that is not valid Unicode.",
           401: "Missing or wrong API key (checked before the body is read).",
           404: "Unknown model, unknown task (GET /v1/router/tasks/{task_id}), unknown or expired request ID "
                "(POST /v1/router/feedback), or no such route.",
           405: "Method not allowed on this route (the Allow header lists the allowed ones).",
           408: "The request body did not arrive within limits.body_timeout_s.",
           413: "The request body exceeds limits.max_body_bytes.",
           429: "Every upstream attempt was rate limited (Retry-After as the upstream sent it).",
           502: "Every upstream attempt failed.",
           503: "Task state is unavailable while Redis is down.",
           504: "The upstream timed out."}
ALLOW_HEADER = {"Allow": {"description": "The methods this route allows.", "schema": {"type": "string"}}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait, from the upstream.", "schema": {"type": "string"}}}
# each event's data is a chunk object (the first with `router`), an error object, or `[DONE]`
SSE = {"text/event-stream": {"schema": {"description": "Server-sent events (`stream: true`): one "
                                        "chat.completion.chunk (or text_completion) object per event, an error "
                                        "object if the upstream fails mid-stream, then `data: [DONE]`."}}}
STREAMING = {"/v1/chat/completions", "/v1/completions"}
UPSTREAM = STREAMING | {"/v1/embeddings"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, besides those its route declared."""
    out = {404, 405}  # unknown routes: a path parameter with '/' or a method the route lacks
    if path.startswith("/v1/"):
        out.add(401)
    if operation.get("parameters") or "requestBody" in operation:
        out.add(400)
    if method in ("post", "put", "patch"):
        out |= {408, 413}
    if path in UPSTREAM:
        out |= {429, 502, 504}
    if path.startswith(("/v1/router/tasks", "/v1/router/feedback")):
        out.add(503)
    return out


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's) with the gateway's real error statuses, error body and stream type."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorResponse"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(_statuses(path, method, operation) | {int(s) for s in responses if s[0] in "45"}):
                entry = responses.setdefault(str(status), {})
                entry["description"] = entry.get("description") or REASONS.get(status, "Error.")
                entry["content"] = {"application/json": {"schema": ERROR_REF}}
                if status == 405:
                    entry["headers"] = ALLOW_HEADER
                if status == 429:
                    entry["headers"] = RETRY_AFTER
            if path in STREAMING and "200" in responses:
                responses["200"].setdefault("content", {}).update(SSE)
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`document`'s schema at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
