"""OpenTelemetry traces through the real gateway: the SDK's in-memory exporter for the span tree and
its attributes, and once over OTLP/HTTP to a receiver on loopback (devtools/otlp_receiver.py)."""

from __future__ import annotations

import secrets
import time
from typing import Any, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from devtools.otlp_receiver import OtlpReceiver
from gateway_support import AUTH, ThreadGateway, chat, make_config, post

ROUTING_STEPS = {"redis.final", "embed", "knn", "redis.fold", "decide"}


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(gateway_config, encoder, exporter) -> Iterator[ThreadGateway]:
    gw = ThreadGateway(gateway_config, encoder, span_exporter=exporter).start()
    yield gw
    gw.stop()


def client_traceparent() -> tuple[str, str, str]:
    """A sampled W3C traceparent as a client would send it: (header, trace id, parent span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def spans_of(exporter: InMemorySpanExporter, trace_id: str, until: str = "SERVER") -> list[ReadableSpan]:
    """The finished spans of one trace, once its server span has ended (it ends after the last byte)."""
    deadline = time.monotonic() + 10
    while True:
        spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
        if any(s.kind == SpanKind.SERVER for s in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def answering_call(spans: list[ReadableSpan]) -> ReadableSpan:
    """The upstream call that answered: the last attempt, the only one not failed (on a loaded machine
    an attempt can time out and be retried; that is the gateway working, not the test failing)."""
    calls = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: attrs(s)["llm_router.attempt"])
    assert [s.status.status_code for s in calls[-1:]] == [StatusCode.UNSET]
    assert all(s.status.status_code == StatusCode.ERROR for s in calls[:-1])
    assert attrs(calls[-1])["llm_router.attempt"] == len(calls)
    return calls[-1]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_routed_request_continues_the_client_trace_and_passes_it_upstream(traced, exporter, upstream, task_id):
    header, trace_id, client_span = client_traceparent()
    r = post(traced.url, {"model": "router", "messages": chat("Which gas do plants absorb from the air?")},
             headers={"traceparent": header, "X-Task-ID": task_id})
    assert r.status_code == 200, r.text
    body = r.json()
    spans = spans_of(exporter, trace_id)

    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    assert f"{parent_id(server):016x}" == client_span  # continued, not a new trace
    assert server.name == "POST /v1/chat/completions"
    assert attrs(server)["llm_router.task_id"] == task_id
    assert attrs(server)["llm_router.served_model"] == body["model"]

    (route,) = by_name(spans, "route")
    assert parent_id(route) == server.context.span_id
    a = attrs(route)
    assert a["llm_router.task_id"] == task_id
    assert a["llm_router.decision.source"] == r.headers["x-router-decision"] == "provisional"
    assert a["llm_router.decision.method"] == body["router"]["method"]
    assert a["llm_router.decision.model"] == body["router"]["chosen_model"]
    steps = {s.name for s in spans if parent_id(s) == route.context.span_id}
    assert ROUTING_STEPS <= steps, steps

    call = answering_call(spans)
    assert parent_id(call) == server.context.span_id
    served = body["model"]
    c = attrs(call)
    assert call.name == f"chat {served}"
    assert c["gen_ai.operation.name"] == "chat" and c["gen_ai.provider.name"] == "openai"
    assert c["gen_ai.request.model"] == c["gen_ai.response.model"] == served
    assert c["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"] > 0
    assert c["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"] > 0
    assert c["llm_router.fallback"] is False

    # the upstream saw our call span as its parent, in the client's trace
    seen = upstream.control()["traceparents"]
    assert f"00-{trace_id}-{call.context.span_id:016x}-01" in seen


def test_retries_and_fallbacks_each_get_a_numbered_span(traced, exporter, upstream, task_id):
    request = {"model": "router", "messages": chat("Write a function that reverses a list.")}
    dry = post(traced.url, {"task_id": task_id, "messages": request["messages"]}, path="/v1/router/route")
    assert dry.status_code == 200, dry.text
    first = dry.json()["model"]
    upstream.control(fail_models=[first])
    header, trace_id, _ = client_traceparent()
    r = post(traced.url, request, headers={"traceparent": header, "X-Task-ID": task_id})
    assert r.status_code == 200, r.text
    calls = sorted((s for s in spans_of(exporter, trace_id) if s.kind == SpanKind.CLIENT),
                   key=lambda s: attrs(s)["llm_router.attempt"])
    assert [attrs(s)["llm_router.attempt"] for s in calls] == [1, 2, 3]  # limits.retries = 1: twice, then the next
    assert [attrs(s)["llm_router.model"] for s in calls] == [first, first, r.json()["model"]]
    assert [s.status.status_code for s in calls] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert [attrs(s).get("error.type") for s in calls] == ["status_5xx", "status_5xx", None]
    assert [attrs(s)["llm_router.fallback"] for s in calls] == [False, False, True]


def test_a_stream_span_covers_the_stream_and_its_usage(traced, exporter, task_id):
    header, trace_id, _ = client_traceparent()
    with httpx.stream("POST", traced.url + "/v1/chat/completions", timeout=30,
                      headers={**AUTH, "traceparent": header, "X-Task-ID": task_id},
                      json={"model": "router", "messages": chat("hi"), "stream": True,
                            "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        assert "data: [DONE]" in list(r.iter_lines())
        served = r.headers["x-router-model"]
    spans = spans_of(exporter, trace_id)
    call = answering_call(spans)
    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    assert attrs(call)["gen_ai.response.model"] == served
    assert attrs(call)["gen_ai.usage.output_tokens"] > 0  # reported by the stream's last chunk
    assert call.end_time is not None and server.end_time is not None and call.end_time <= server.end_time


def test_untraced_gateway_sends_no_traceparent_upstream(gateway, upstream):
    header, trace_id, _ = client_traceparent()
    upstream.control()  # nothing to reset: the list is bounded; look only for this trace id
    r = post(gateway.url, {"model": "router", "messages": chat("hello")}, headers={"traceparent": header})
    assert r.status_code == 200
    assert not [t for t in upstream.control()["traceparents"] if trace_id in t]


def test_spans_reach_an_otlp_http_receiver(encoder, router_dir, router, upstream, redis_url, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the batch processor's export interval, ms
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)  # the config alone switches it on
    with OtlpReceiver() as rx:
        cfg = make_config(router_dir, router.models, upstream.url, redis_url,
                          tracing={"endpoint": rx.endpoint, "service_name": "llm-router-test"})
        gw = ThreadGateway(cfg, encoder).start()
        try:
            header, trace_id, client_span = client_traceparent()
            r = post(gw.url, {"model": "router", "messages": chat("hello")}, headers={"traceparent": header})
            assert r.status_code == 200, r.text
            spans = rx.wait_for(lambda got: {"POST /v1/chat/completions", "route", f"chat {r.json()['model']}"}
                                <= {s.name for s in got if s.trace_id == trace_id})
        finally:
            gw.stop()
    mine = [s for s in spans if s.trace_id == trace_id]
    server = next(s for s in mine if s.name == "POST /v1/chat/completions")
    assert server.parent_span_id == client_span
    assert server.resource["service.name"] == "llm-router-test"
    assert next(s for s in mine if s.name == "route").attributes["llm_router.decision.source"] == "instance"
