"""OpenTelemetry traces of each request; the only gateway module that imports OpenTelemetry.

Off unless configured: a ``tracing:`` section with an ``endpoint``, or ``OTEL_EXPORTER_OTLP_ENDPOINT``
/ ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` in the environment (``tracing.enabled: false`` or
``OTEL_SDK_DISABLED=true`` switch it off again). Off, the SDK is never imported and every call here
returns a shared no-op, so a request pays a few attribute look-ups (benchmarks/gateway_overhead.py
measures both). On, spans go to an OTLP/HTTP collector through the SDK's batch processor (a
background thread), and the rest of the gateway never sees an OpenTelemetry type.

The spans of one request (names as exported)::

    POST /v1/chat/completions      SERVER, FastAPI's own; continues the client's W3C ``traceparent``;
                                   llm_router.task_id / decision / served_model added here
      route                        llm_router.task_id, llm_router.decision.source / .method / .model
        redis.final                the task's final decision, if one is cached
        embed                      the prompt's sentence embedding (in a worker thread)
        knn                        router_core's neighbour predictions for the prompt
        redis.fold                 the prompt folded into the task's sums (one Lua script)
        decide                     router_core's decision from the sums
        redis.set_final            first writer wins
      chat <model>                 CLIENT, one per upstream attempt (retries and fallbacks each get
                                   one, llm_router.attempt counts from 1), GenAI semantic conventions;
                                   its ``traceparent`` goes to the upstream with the call
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from .config import TracingSettings

log = logging.getLogger("gateway.tracing")

#: what callers hold: an OpenTelemetry span (a non-recording one while tracing is off)
Span = trace.Span
SCOPE = "llm-router.gateway"
TRACES_PATH = "/v1/traces"
ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: ``gen_ai.operation.name`` per forwarded call kind
OPERATIONS = {"chat": "chat", "text": "text_completion", "embed": "embeddings"}
#: request parameters recorded on an upstream span (GenAI semantic conventions)
REQUEST_PARAMS = {"max_tokens": "gen_ai.request.max_tokens", "temperature": "gen_ai.request.temperature",
                  "top_p": "gen_ai.request.top_p", "seed": "gen_ai.request.seed"}
_OFF_SPAN: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


def env_endpoint() -> str | None:
    """The OTLP traces URL the standard environment variables name, or None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if url := os.environ.get(ENDPOINT_ENV[0], "").strip():
        return url
    if url := os.environ.get(ENDPOINT_ENV[1], "").strip():
        return traces_url(url)
    return None


def traces_url(base: str) -> str:
    """A collector's base URL (``http://collector:4318``) as its OTLP/HTTP traces URL."""
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class Attempt:
    """One upstream call's span: started before the call, ended when its answer (or failure) is known.

    A stream's successful attempt stays open until the stream ends, so it covers the whole answer.
    """

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming this span, for the upstream request."""
        if self.span is INVALID_SPAN:  # tracing off: nothing to propagate (skips the propagator's work)
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span))
        return carrier

    def answered(self, response: Any, end: bool = True) -> None:
        """The upstream answered: its model, id, finish reasons and token usage (a litellm response or chunk)."""
        span = self.span
        if span is INVALID_SPAN:  # tracing off: no attributes to read out of the response
            return
        if (model := getattr(response, "model", None)) is not None:
            span.set_attribute("gen_ai.response.model", str(model))
        if (rid := getattr(response, "id", None)) is not None:
            span.set_attribute("gen_ai.response.id", str(rid))
        reasons = [c.finish_reason for c in getattr(response, "choices", None) or ()
                   if getattr(c, "finish_reason", None)]
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", reasons)
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.usage(getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if end:
            span.end()

    def usage(self, input_tokens: Any, output_tokens: Any) -> None:
        if isinstance(input_tokens, int):
            self.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if isinstance(output_tokens, int):
            self.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)

    def failed(self, kind: str, message: str) -> None:
        """The attempt failed (``kind`` as :mod:`gateway.failures` classifies it); ends the span."""
        self.span.set_attribute("error.type", kind)
        self.span.set_status(Status(StatusCode.ERROR, message))
        self.span.end()

    def finish(self, usage: Mapping[str, Any] | None, error: str | None = None) -> None:
        """A stream ended: the usage its last chunks reported (if any); ``error`` if it broke off.
        Only the first call counts (a stream can end from both sides)."""
        if not self.span.is_recording():
            return
        if usage:
            self.usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if error is not None:
            self.span.set_attribute("error.type", error)
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


NO_ATTEMPT = Attempt(INVALID_SPAN)


class Tracing:
    """The gateway's tracer, or nothing (:data:`OFF`); one per app, made by :func:`from_settings`."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer(SCOPE) if provider is not None else None

    def fastapi_telemetry(self) -> TelemetryConfig:
        """``FastAPI(telemetry=...)``: its HTTP server span (the request span) on our provider, or nothing.

        FastAPI's own metrics and logs stay off (the gateway has Prometheus metrics and its own logs);
        its per-operation spans too (dependency resolution and serialization are not worth a span each).
        """
        return TelemetryConfig(tracing=self.enabled, tracer_provider=self.provider, metrics=False, logs=False,
                               operation_spans=False, auto_configure=False)

    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span]:
        """A child span of the current one, current while the ``with`` block runs (threads included:
        ``asyncio.to_thread`` copies the context)."""
        if self._tracer is None:
            return _OFF_SPAN
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Attributes on the current span (the request span in a handler); nothing while off."""
        if self._tracer is not None:
            trace.get_current_span().set_attributes({k: v for k, v in attributes.items() if v is not None})

    def attempt(self, kind: str, model: str, upstream_model: str, attempt: int, first_choice: bool,
                body: Mapping[str, Any], api_base: str | None) -> Attempt:
        """Start the span of one upstream call (not made current: the caller ends it through
        :class:`Attempt`). ``model`` is the configured name, ``upstream_model`` litellm's model string."""
        if self._tracer is None:
            return NO_ATTEMPT
        provider, _, name = upstream_model.partition("/")
        if not name:
            provider, name = "", upstream_model
        operation = OPERATIONS.get(kind, kind)
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": name,
                                 "llm_router.model": model, "llm_router.attempt": attempt,
                                 "llm_router.fallback": not first_choice}
        if provider:
            attrs["gen_ai.provider.name"] = provider
        for key, attr in REQUEST_PARAMS.items():
            if isinstance(value := body.get(key), (int, float)) and not isinstance(value, bool):
                attrs[attr] = value
        if api_base:
            url = urlsplit(api_base)
            if url.hostname:
                attrs["server.address"] = url.hostname
                if url.port:
                    attrs["server.port"] = url.port
        return Attempt(self._tracer.start_span(f"{operation} {name}", kind=SpanKind.CLIENT, attributes=attrs))

    def shutdown(self) -> None:
        """Export what is still queued and stop the exporter (the app's shutdown)."""
        if self.provider is not None:
            self.provider.shutdown()


OFF = Tracing()


def from_settings(settings: TracingSettings | None, exporter: SpanExporter | None = None) -> Tracing:
    """The app's tracing: :data:`OFF` unless configured (module docstring), or ``exporter`` given (tests:
    spans go to it synchronously as each ends)."""
    endpoint = None
    if exporter is None:
        if settings is not None and not settings.enabled:
            return OFF
        endpoint = traces_url(settings.endpoint) if settings is not None and settings.endpoint else env_endpoint()
        if endpoint is None:
            return OFF
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attrs: dict[str, Any] = {}
    if settings is not None and settings.service_name:
        attrs[SERVICE_NAME] = settings.service_name
    elif not os.environ.get("OTEL_SERVICE_NAME"):
        attrs[SERVICE_NAME] = "llm-router"
    resource = Resource.create(attrs)  # also OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME
    kwargs: dict[str, Any] = {"resource": resource}
    if settings is not None and settings.sample_ratio is not None:  # else OTEL_TRACES_SAMPLER, or always on
        kwargs["sampler"] = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    provider = TracerProvider(**kwargs)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = dict(settings.headers) if settings is not None else None
        timeout = settings.timeout_s if settings is not None else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers or None,
                                                                        timeout=timeout)))
        log.info("tracing on: OTLP/HTTP spans to %s", endpoint)
    return Tracing(provider)
