"""One proxied request, end to end: resolve the model, route, forward, explain, measure.

Handlers in :mod:`gateway.api.openai` parse and validate; this module sequences the steps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import explain, metrics
from .errors import GatewayError
from .failures import classify
from .forward import CallKind, Outcome, close_stream
from .knobs import Knobs, from_headers
from .routing import Choice, check_task_id
from .runtime import Runtime

log = logging.getLogger("gateway.proxy")
NONE = "none"  # served_model label when nothing answered
CLIENT_CLOSED = 499  # status recorded when the client disconnects first (nginx's convention)


def task_id_of(request: Request, metadata: Any) -> str | None:
    """``X-Task-ID`` header, else ``metadata.task_id`` in the body."""
    task_id = request.headers.get("x-task-id")
    if not task_id and metadata is not None:
        task_id = getattr(metadata, "task_id", None)
    return check_task_id(task_id)


def knobs_of(rt: Runtime, request: Request, alias: str | None) -> Knobs:
    """The alias's routing knobs with the request's ``x-router-*`` headers applied (400 if they cannot)."""
    tr = rt.task_router
    return from_headers(tr.knobs_of(alias), request.headers, rt.learned, tr.costs)


async def resolve(rt: Runtime, request: Request, model: str, task_id: str | None, text: str) -> Choice:
    """An alias routes; a configured model passes through; anything else is a 404."""
    if model in rt.config.models_by_name:
        return rt.task_router.explicit(model)
    if model in rt.aliases:
        return await rt.task_router.choose(task_id, text, knobs_of(rt, request, model))
    raise GatewayError(404, f"model '{model}' is not configured; use an alias ({', '.join(rt.aliases)}) "
                       "or one of GET /v1/models", param="model", code="model_not_found")


class Measure:
    """Timing and metric bookkeeping for one request."""

    def __init__(self, rt: Runtime, requested: str) -> None:
        self.start = time.perf_counter()
        self.requested = metrics.requested_label(requested, rt.known_names)
        self.tracing = rt.tracing
        metrics.IN_FLIGHT.inc()
        self.done = False
        self.first_byte_s: float | None = None  # streams: when the first chunk went out

    def first_byte(self) -> float:
        """Mark the first chunk going out; returns the time to it."""
        self.first_byte_s = time.perf_counter() - self.start
        return self.first_byte_s

    def finish(self, status: int, choice: Choice | None, outcome: Outcome | None,
               usage: dict[str, int] | None, cost: float | None) -> None:
        if self.done:
            return
        self.done = True
        metrics.IN_FLIGHT.dec()
        total = time.perf_counter() - self.start
        served = outcome.served if outcome is not None else NONE
        decision = choice.source if choice is not None else NONE
        if self.tracing.enabled:
            self.tracing.annotate({"llm_router.requested_model": self.requested, "llm_router.served_model": served,
                                   "llm_router.decision": decision,
                                   "llm_router.task_id": choice.task_id if choice is not None else None})
        metrics.REQUESTS.labels(self.requested, served, decision, metrics.status_class(status)).inc()
        metrics.REQUEST_DURATION.labels(served).observe(total)
        if choice is not None:
            metrics.DECISIONS.labels(choice.source).inc()
        if outcome is None:
            return
        if self.first_byte_s is not None:  # a stream: our overhead ends with its first chunk
            overhead = self.first_byte_s - outcome.upstream_s
        else:
            overhead = total - outcome.upstream_s
        metrics.UPSTREAM_DURATION.labels(served).observe(max(0.0, total - overhead))
        metrics.OVERHEAD.observe(max(0.0, overhead))
        if outcome.failures and served != outcome.failures[0].model:
            metrics.FALLBACKS.labels(outcome.failures[0].model, served).inc()
        if usage:
            metrics.TOKENS.labels(served, "input").inc(usage.get("prompt_tokens") or 0)
            metrics.TOKENS.labels(served, "output").inc(usage.get("completion_tokens") or 0)
        if cost:
            metrics.COST.labels(served).inc(cost)


def _usage(obj: dict[str, Any]) -> dict[str, int] | None:
    usage = obj.get("usage")
    return usage if isinstance(usage, dict) else None


def _cost(rt: Runtime, outcome: Outcome, usage: dict[str, int] | None) -> float:
    """USD from the prices of the deployment that answered and the upstream's token usage."""
    usage = usage or {}
    return rt.cost(outcome, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


async def handle(rt: Runtime, request: Request, kind: CallKind, model: str, metadata: Any, text: str,
                 body: dict[str, Any], stream: bool) -> Response:
    """Serve one chat or text completion (``kind``) and return the response to send."""
    measure = Measure(rt, model)
    choice: Choice | None = None
    try:
        task_id = task_id_of(request, metadata)
        choice = await rt.feedback.begin(await resolve(rt, request, model, task_id, text), task_id)
        if stream:
            outcome = await rt.forwarder.open_stream(kind, body, choice.order)
            await rt.feedback.record(choice, outcome.served, text)
            return _stream_response(rt, kind, choice, outcome, measure)
        outcome = await rt.forwarder.complete(kind, body, choice.order)
        await rt.feedback.record(choice, outcome.served, text)
    except GatewayError as exc:
        measure.finish(exc.status, choice, None, None, None)
        raise
    except asyncio.CancelledError:  # the client went away
        measure.finish(CLIENT_CLOSED, choice, None, None, None)
        raise
    except BaseException:
        measure.finish(500, choice, None, None, None)
        raise
    data = outcome.response.model_dump()
    data["model"] = outcome.served
    if kind == "text":
        data["id"] = completion_id(data.get("id"))
    data["router"] = explain.router_object(choice, rt.learned.version, outcome, rt.task_router.details(choice))
    usage = _usage(data)
    cost = _cost(rt, outcome, usage)
    headers = explain.headers(choice, rt.learned.version, outcome.served, cost, outcome)
    measure.finish(200, choice, outcome, usage, cost)
    return Response(json.dumps(data), media_type="application/json", headers=headers)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def completion_id(upstream_id: Any) -> str:
    """A text completion's id as OpenAI writes it (``cmpl-``; litellm reuses its ``chatcmpl-`` ids)."""
    text = str(upstream_id or "")
    if text.startswith("chatcmpl-"):
        return "cmpl-" + text[len("chatcmpl-"):]
    return text if text.startswith("cmpl-") else f"cmpl-{text}"


def _chunk(chunk: Any, kind: CallKind, served: str) -> dict[str, Any]:
    """A litellm stream chunk as the OpenAI wire shape, naming the model that answers."""
    data: dict[str, Any] = chunk.model_dump(exclude_none=True)
    data["model"] = served
    if kind == "text":  # litellm drops an empty final ``text``; the SDK's type requires a string
        data["id"] = completion_id(data.get("id"))
        for c in data.get("choices") or ():
            c.setdefault("text", "")
    return data


def _stream_response(rt: Runtime, kind: CallKind, choice: Choice, outcome: Outcome, measure: Measure
                     ) -> StreamingResponse:
    """Relay chunks as they arrive; the first carries the ``router`` object; ends with [DONE]."""
    served = outcome.served

    async def body() -> AsyncIterator[bytes]:
        usage: dict[str, int] | None = None
        status = CLIENT_CLOSED  # unless the stream ends or fails on the upstream's side
        broke: str | None = "client_closed"  # the upstream span's error.type, unless it ends well
        try:
            if outcome.first is not None:
                first = _chunk(outcome.first, kind, served)
                first["router"] = explain.router_object(choice, rt.learned.version, outcome,
                                                        rt.task_router.details(choice))
                metrics.TIME_TO_FIRST_TOKEN.labels(served).observe(measure.first_byte())
                yield _sse(first)
                async for chunk in rt.forwarder.relay(outcome.stream, measure.start):
                    data = _chunk(chunk, kind, served)
                    usage = _usage(data) or usage
                    yield _sse(data)
            status, broke = 200, None
        except GatewayError as exc:  # nothing can be retried once bytes went out: say so in-band
            status, broke = exc.status, "gateway_error"
            yield _sse(exc.body())
        except Exception as exc:  # mid-stream upstream failure or timeout, classified like any other
            failure = classify(served, exc, outcome.deployment.label if outcome.deployment else None)
            log.warning("upstream stream failed: %s (%s)", failure.message, failure.kind)
            metrics.UPSTREAM_ERRORS.labels(served, failure.kind).inc()
            status, broke = failure.status, failure.kind
            yield _sse(GatewayError(failure.status, f"stream interrupted: {failure.message}",
                                    code="upstream_timeout" if failure.kind == "timeout" else "upstream_error").body())
        finally:
            await close_stream(outcome.stream)
            outcome.trace.finish(usage, broke)
            measure.finish(status, choice, outcome, usage, _cost(rt, outcome, usage) if usage else None)
        yield b"data: [DONE]\n\n"

    async def on_close() -> None:  # also when the client left before the body started
        await close_stream(outcome.stream)
        outcome.trace.finish(None, "client_closed")  # no-op if the body finished it
        measure.finish(CLIENT_CLOSED, choice, outcome, None, None)  # likewise

    headers = explain.headers(choice, rt.learned.version, served, None, outcome)
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    return _Relay(body(), on_close, media_type="text/event-stream", headers=headers)


class _Relay(StreamingResponse):
    """A StreamingResponse that always runs ``on_close`` once the response is over, however it ended."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()
