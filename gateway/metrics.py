"""Every Prometheus metric the gateway exports, defined once.

Names carry the ``llm_router_`` prefix and base units; counters end in ``_total``. Labels are
bounded: configured model names and aliases, decision sources (``gateway.routing.SOURCES``),
status classes, failure kinds (``gateway.failures.FAILURE_KINDS``), feedback results; never task IDs,
request IDs, prompts, users or keys. Unknown requested model names are folded into
``other`` by :func:`requested_label` before they become a label value.

With several uvicorn workers, ``serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory
before the workers start; the gauges below declare how their per-process values combine.
"""

from __future__ import annotations

import os
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, multiprocess

# 1 ms .. 300 s, roughly x2-x2.5 per step
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0, 120.0, 300.0)

OTHER = "other"

REQUESTS = Counter(
    "llm_router_requests_total",
    "Requests handled, by requested alias or model, the model that served, decision source and status class.",
    ["requested", "served_model", "decision", "status_class"])
REQUEST_DURATION = Histogram(
    "llm_router_request_duration_seconds", "End-to-end request latency as seen by the gateway.",
    ["served_model"], buckets=LATENCY_BUCKETS)
OVERHEAD = Histogram(
    "llm_router_overhead_duration_seconds", "Gateway overhead: end-to-end latency minus upstream time.",
    buckets=LATENCY_BUCKETS)
UPSTREAM_DURATION = Histogram(
    "llm_router_upstream_duration_seconds", "Time spent in upstream calls (all attempts).",
    ["served_model"], buckets=LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram(
    "llm_router_time_to_first_token_seconds", "Streaming: time from request to the first content chunk.",
    ["served_model"], buckets=LATENCY_BUCKETS)
TOKENS = Counter(
    "llm_router_tokens_total", "Tokens, by served model and direction (input or output).",
    ["served_model", "direction"])
COST = Counter("llm_router_cost_usd_total", "Estimated upstream cost in USD.", ["served_model"])
DECISIONS = Counter("llm_router_decisions_total", "Routing decisions by source.", ["decision"])
DECISION_CACHE = Counter(
    "llm_router_decision_cache_total", "Task decision lookups: a final decision found (hit) or not (miss).",
    ["result"])
FEEDBACK = Counter(
    "llm_router_feedback_total",
    "Outcomes fed back (POST /v1/router/feedback): counted, repeat (already counted, not again), unknown "
    "(no such request ID, or its record expired).", ["result"])
REVISIONS = Counter(
    "llm_router_decision_revisions_total",
    "Final task decisions revised on the task's outcome feedback, by the model replaced and the new one.",
    ["from_model", "to_model"])
TASKS_NEEDING_FEEDBACK = Gauge(
    "llm_router_tasks_needing_feedback",
    "Tasks whose coverage (how far the router's prediction for them can be trusted) is below "
    "feedback.coverage_threshold, as of the last coverage update.", multiprocess_mode="max")
FALLBACKS = Counter(
    "llm_router_fallbacks_total", "Requests answered by a fallback model after the first choice failed.",
    ["from_model", "to_model"])
UPSTREAM_ERRORS = Counter(
    "llm_router_upstream_errors_total", "Failed upstream attempts by model and kind.", ["served_model", "kind"])
CLIENT_DISCONNECTS = Counter(
    "llm_router_client_disconnects_total",
    "Requests whose client disconnected before the response was complete (handling and the upstream call cancelled).")
REDIS_ERRORS = Counter("llm_router_redis_errors_total", "Redis operations that failed.", ["operation"])
REDIS_FAIL_OPEN = Gauge(
    "llm_router_redis_fail_open", "1 while Redis is unreachable and the gateway serves from in-process state.",
    multiprocess_mode="max")
IN_FLIGHT = Gauge("llm_router_in_flight_requests", "Requests being handled now.", multiprocess_mode="livesum")
CONFIG_RELOADS = Counter(
    "llm_router_config_reloads_total",
    "Config reloads (SIGHUP) by result: applied, unchanged, rejected (the running config stays).",
    ["result"])
ROUTER_INFO = Gauge(
    "llm_router_artifact_info", "The loaded router artifact (value 1): its version and model count.",
    ["version", "models"], multiprocess_mode="max")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def requested_label(name: str | None, known: Iterable[str]) -> str:
    """The ``requested`` label value: a configured model or alias, else ``other`` (bounded)."""
    return name if name is not None and name in set(known) else OTHER


def registry_for_scrape() -> CollectorRegistry | None:
    """The registry /metrics renders: the multiprocess collector when enabled, else the default."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return None


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    from prometheus_client import REGISTRY

    registry = registry_for_scrape() or REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
