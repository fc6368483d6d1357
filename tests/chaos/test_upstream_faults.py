"""Upstream faults: 429 everywhere, 400, 500, a hang and a stream that dies half-way, each answered
the documented way; the client's own mistakes never count against the upstreams."""

from __future__ import annotations

import json
import time

import httpx

MESSAGES = [{"role": "user", "content": "Name a prime number between 10 and 20."}]


def chat(chaos, stream: bool = False, **fields) -> httpx.Response:
    return httpx.post(chaos.url + "/v1/chat/completions", headers=chaos.auth, timeout=30,
                      json={"model": "router", "messages": MESSAGES, "stream": stream, **fields})


def test_rate_limited_everywhere_is_a_429_with_retry_after(chaos) -> None:
    chaos.upstream.control(error_rate=1.0, error_status=429, retry_after_s=7)
    calls = chaos.upstream.calls()
    r = chat(chaos)
    attempts = chaos.upstream.calls() - calls
    print(f"\nall attempts 429: status {r.status_code}, retry-after {r.headers.get('retry-after')}, "
          f"{attempts} upstream attempts, attempted {r.headers.get('x-router-attempted')}")
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == "7"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert attempts == chaos.attempts_per_request


def test_upstream_400_passes_through_untried_and_unblamed(chaos) -> None:
    chaos.upstream.control(error_rate=1.0, error_status=400)
    calls, errors = chaos.upstream.calls(), chaos.metric_sum("llm_router_upstream_errors_total")
    r = chat(chaos)
    print(f"\nupstream 400: status {r.status_code}, {chaos.upstream.calls() - calls} upstream call(s), "
          f"upstream errors +{chaos.metric_sum('llm_router_upstream_errors_total') - errors:g}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert chaos.upstream.calls() - calls == 1  # not retried, no fallback
    assert chaos.metric_sum("llm_router_upstream_errors_total") == errors


def test_500_on_the_first_choice_falls_back(chaos) -> None:
    pick = httpx.post(chaos.url + "/v1/router/route", headers=chaos.auth, json={"messages": MESSAGES}).json()
    first, second = pick["router"]["ranking"][:2]
    chaos.upstream.control(fail_models=[first], error_status=500)
    r = chat(chaos)
    print(f"\n{first} failing with 500: status {r.status_code}, served by {r.headers.get('x-router-model')}, "
          f"attempted {r.headers.get('x-router-attempted')}")
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == second
    assert r.headers["x-router-attempted"] == first


def test_hanging_upstream_is_a_504(chaos) -> None:
    chaos.upstream.control(hang=True)
    start = time.perf_counter()
    r = chat(chaos)
    print(f"\nhanging upstream: status {r.status_code} after {time.perf_counter() - start:.2f} s "
          f"(total timeout {chaos.total_timeout_s} s)")
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "upstream_timeout"


def test_stream_that_dies_midway_ends_with_an_error_event(chaos) -> None:
    chaos.upstream.control(die_after_chunks=2)
    events = []
    with httpx.stream("POST", chaos.url + "/v1/chat/completions", headers=chaos.auth, timeout=30,
                      json={"model": "router", "messages": MESSAGES, "stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    print(f"\nstream dying after 2 chunks: {len(events)} events, last two {events[-2:]}")
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream_error" and "interrupted" in error["message"]
    assert sum("choices" in json.loads(e) for e in events[:-2]) == 2
