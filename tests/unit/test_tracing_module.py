"""gateway.tracing on its own: when it is on, what an upstream attempt's span records and sends on."""

from __future__ import annotations

from typing import Any

import pytest
from litellm.types.utils import ModelResponse
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from gateway import tracing
from gateway.config import TracingSettings

OTEL_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
            "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)


def test_off_unless_an_endpoint_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing.from_settings(TracingSettings()) is tracing.OFF
    assert tracing.from_settings(None) is tracing.OFF
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert tracing.env_endpoint() == "http://collector:4318/v1/traces"
    assert tracing.from_settings(TracingSettings(enabled=False)) is tracing.OFF
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.from_settings(TracingSettings()) is tracing.OFF
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/custom")
    assert tracing.env_endpoint() == "http://other:4318/custom"  # the per-signal URL is used as is
    on = tracing.from_settings(TracingSettings())
    try:
        assert on.enabled and on.fastapi_telemetry()["tracing"] is True
    finally:
        on.shutdown()


def test_config_endpoint_wins_and_is_a_base_url() -> None:
    assert tracing.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert tracing.traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
    with pytest.raises(ValidationError):
        TracingSettings(endpoint="collector:4318")  # no scheme: the exporter could not use it
    with pytest.raises(ValidationError):
        TracingSettings(sample_ratio=1.5)


def test_off_costs_nothing_and_sends_nothing() -> None:
    off = tracing.OFF
    assert off.fastapi_telemetry()["tracing"] is False
    with off.span("route", {"a": 1}) as span:
        assert not span.is_recording()
    attempt = off.attempt("chat", "m", "openai/m", 1, True, {}, None)
    assert attempt is tracing.NO_ATTEMPT and attempt.headers() == {}
    attempt.failed("timeout", "x")  # no-ops, no errors
    off.annotate({"llm_router.task_id": "t"})


def _on() -> tuple[tracing.Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return tracing.from_settings(TracingSettings(), exporter=exporter), exporter


def test_attempt_span_follows_the_genai_conventions_and_names_itself_upstream() -> None:
    t, exporter = _on()
    with t.span("route") as parent:
        attempt = t.attempt("chat", "gpt-x", "openai/gpt-x-0613", 3, False, {"temperature": 0.5, "max_tokens": 7,
                                                                           "stream": True}, "http://up:8080/v1")
    headers = attempt.headers()
    ctx = attempt.span.get_span_context()
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    response = ModelResponse(model="gpt-x-0613-resp", usage={"prompt_tokens": 11, "completion_tokens": 5,
                                                             "total_tokens": 16})
    attempt.answered(response)
    span = next(s for s in exporter.get_finished_spans() if s.name == "chat gpt-x-0613")
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-x-0613"
    assert attrs["gen_ai.response.model"] == "gpt-x-0613-resp"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 5)
    assert (attrs["gen_ai.request.temperature"], attrs["gen_ai.request.max_tokens"]) == (0.5, 7)
    assert (attrs["llm_router.attempt"], attrs["llm_router.fallback"]) == (3, True)
    assert (attrs["server.address"], attrs["server.port"]) == ("up", 8080)
    assert attrs["llm_router.model"] == "gpt-x"


def test_failed_and_streamed_attempts() -> None:
    t, exporter = _on()
    failed = t.attempt("text", "m", "openai/m", 1, True, {}, None)
    failed.failed("status_5xx", "m: upstream returned 500")
    streamed = t.attempt("chat", "m", "openai/m", 2, True, {}, None)
    streamed.answered(ModelResponse(model="m"), end=False)
    assert not exporter.get_finished_spans()[1:]  # the stream's span stays open until the stream ends
    streamed.finish({"prompt_tokens": 3, "completion_tokens": 4})
    first, second = exporter.get_finished_spans()
    assert first.name == "text_completion m" and first.status.status_code == StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "status_5xx"
    assert (second.attributes or {})["gen_ai.usage.output_tokens"] == 4
    assert second.status.status_code == StatusCode.UNSET
