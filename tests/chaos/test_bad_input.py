"""A raw-socket battery of malformed and hostile requests: each gets a clean 4xx (OpenAI error shape
where a body is sent) or a closed connection, never a 5xx, an empty reply or a hang; none reaches
an upstream or counts against one."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import pytest

from rawhttp import RawReply, exchange, request

CHAT = "/v1/chat/completions"


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "router", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    base.update(fields)
    return json.dumps(base).encode()


def cases(key: str, max_body: int) -> list[tuple[str, list[bytes], set[int]]]:
    """(name, the bytes sent in parts, acceptable statuses)."""
    auth = {"Authorization": f"Bearer {key}"}
    ok_body = body()
    deep = b'{"model": "router", "messages": [{"role": "user", "content": "x", "extra": ' + b"[" * 5000 \
        + b"]" * 5000 + b"}]}"
    nested = b'{"model": "router", "messages": [{"role": "user", "content": "x"}], "user_data": ' + b'{"a": ' * 200 \
        + b"1" + b"}" * 200 + b"}"
    return [
        # bodies that never finish or lie about their length
        ("partial body (declares 1000, sends 18)", [request("POST", CHAT, ok_body[:18], auth, content_length=1000)],
         {408}),
        ("body stalls after half", [request("POST", CHAT, ok_body[: len(ok_body) // 2], auth,
                                            content_length=len(ok_body))], {408}),
        ("length shorter than body", [request("POST", CHAT, ok_body, auth, content_length=10)], {400}),
        ("length over the limit", [request("POST", CHAT, b"{}", auth, content_length=max_body + 1)], {413}),
        ("body over the limit", [request("POST", CHAT, b" " * (max_body + 10) + ok_body, auth)], {413}),
        ("chunked body over the limit", [request("POST", CHAT, None, {**auth, "Transfer-Encoding": "chunked"})
                                         + b"%x\r\n" % (max_body + 10) + b"a" * (max_body + 10) + b"\r\n0\r\n\r\n"],
         {413}),
        ("negative content-length", [request("POST", CHAT, ok_body, auth).replace(
            b"Content-Length: %d" % len(ok_body), b"Content-Length: -5")], {400}),
        ("non-numeric content-length", [request("POST", CHAT, ok_body, auth).replace(
            b"Content-Length: %d" % len(ok_body), b"Content-Length: abc")], {400}),
        # headers
        ("headers never finish", [b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"], {408}),
        ("huge header", [request("GET", "/v1/models", None, {**auth, "X-Big": "a" * 200_000})], {431}),
        ("bare CR in a header", [request("POST", CHAT, ok_body, {**auth, "X-Task-ID": "a\rb"})], {400}),
        ("header line folded (obs-fold)", [request("POST", CHAT, ok_body, auth).replace(
            b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nX-Task-ID: abc\r\n def\r\n")], {400}),
        ("garbage request line", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n"], {400}),
        # authentication is checked before the body is read
        ("wrong key, body never sent", [request("POST", CHAT, b"", {"Authorization": "Bearer nope"},
                                                content_length=1000)], {401}),
        # encodings
        ("invalid UTF-8", [request("POST", CHAT, body().replace(b"2 + 2", b"\xff\xfe\xc3"), auth)], {400}),
        ("lone surrogate (chat)", [request("POST", CHAT, body().replace(b"2 + 2", b"\\ud800"), auth)], {400}),
        ("lone surrogate (completions)", [request("POST", "/v1/completions",
                                                  b'{"model": "router", "prompt": "a\\udc00b"}', auth)], {400}),
        ("lone surrogate (route)", [request("POST", "/v1/router/route", b'{"prompt": "\\udbff"}', auth)], {400}),
        ("lone surrogate (samples)", [request("POST", "/v1/router/tasks/t1/samples",
                                              b'{"samples": [{"prompt": "\\ud800"}]}', auth)], {400}),
        ("not JSON", [request("POST", CHAT, b"model=router", auth)], {400}),
        ("JSON array", [request("POST", CHAT, b"[1, 2]", auth)], {400}),
        ("deep JSON", [request("POST", CHAT, deep, auth)], {400}),
        ("nested extra field", [request("POST", CHAT, nested, auth)], {400}),
        # wrong types
        ("tools is a string", [request("POST", CHAT, body(tools="x"), auth)], {400}),
        ("stream is a string", [request("POST", CHAT, body(stream="yes"), auth)], {400}),
        ("temperature is a string", [request("POST", CHAT, body(temperature="hot"), auth)], {400}),
        ("messages empty", [request("POST", CHAT, body(messages=[]), auth)], {400}),
        ("message content a number", [request("POST", CHAT, body(messages=[{"role": "user", "content": 5}]),
                                              auth)], {400}),
        ("prompt empty list", [request("POST", "/v1/completions", b'{"model": "router", "prompt": []}', auth)],
         {400}),
        ("prompt list of numbers", [request("POST", "/v1/completions", b'{"model": "router", "prompt": [1, 2]}',
                                            auth)], {400}),
        ("model unknown", [request("POST", CHAT, body(model="no-such-model"), auth)], {404}),
        # task IDs
        ("task ID ends in newline", [request("POST", CHAT, body(metadata={"task_id": "abc\n"}), auth)], {400}),
        ("task ID with braces", [request("POST", CHAT, body(metadata={"task_id": "{x}"}), auth)], {400}),
        ("task ID too long", [request("POST", CHAT, body(metadata={"task_id": "a" * 201}), auth)], {400}),
        ("task ID a number", [request("POST", CHAT, body(metadata={"task_id": 5}), auth)], {400}),
        ("task path with %0A", [request("GET", "/v1/router/tasks/abc%0A", None, auth)], {400}),
        ("task path with %00", [request("GET", "/v1/router/tasks/abc%00", None, auth)], {400}),
        # routes
        ("GET on a POST route", [request("GET", CHAT, None, auth)], {405}),
        ("unknown route", [request("GET", "/v2/nothing", None, auth)], {404}),
    ]


def test_bad_input_battery(chaos) -> None:
    before_calls = chaos.upstream.calls()
    before_errors = chaos.metric_sum("llm_router_upstream_errors_total")
    results: list[tuple[str, RawReply]] = []
    for name, parts, expected in cases(chaos.api_key, chaos.max_body_bytes):
        reply = exchange(chaos.port, parts, wait_s=chaos.body_timeout_s + 10)
        results.append((name, reply))
    print(f"\n{'case':45} status  seconds  code")
    for name, reply in results:
        code = reply.error()["code"] if reply.status and reply.body.startswith(b"{") else "-"
        print(f"{name:45} {reply.status!s:6} {reply.seconds:8.3f}  {code}")
    failures = []
    for (name, _, expected), (_, reply) in zip(cases(chaos.api_key, chaos.max_body_bytes), results):
        if reply.status not in expected:
            failures.append(f"{name}: {reply.status} {reply.body[:200]!r} (expected {sorted(expected)})")
        elif reply.body:
            reply.error()  # every answer with a body is OpenAI-shaped
    assert not failures, "\n".join(failures)
    assert chaos.upstream.calls() == before_calls, "bad input reached an upstream"
    assert chaos.metric_sum("llm_router_upstream_errors_total") == before_errors


def test_partial_bodies_do_not_hold_connections(chaos) -> None:
    """20 connections that declare 1000 bytes and send 18 are all answered 408; the gateway still serves."""
    auth = {"Authorization": f"Bearer {chaos.api_key}"}
    partial = request("POST", CHAT, body()[:18], auth, content_length=1000)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: exchange(chaos.port, partial, wait_s=chaos.body_timeout_s + 10), range(20)))
    statuses = sorted(r.status or 0 for r in replies)
    print(f"\n20 partial bodies: statuses {statuses}, slowest {max(r.seconds for r in replies):.2f} s "
          f"(body timeout {chaos.body_timeout_s} s)")
    assert statuses == [408] * 20
    assert all(r.closed for r in replies)
    ok = exchange(chaos.port, request("POST", CHAT, body(), auth))
    assert ok.status == 200, ok.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/router/route"])
def test_surrogates_never_reach_the_encoder(chaos, path: str) -> None:
    """A lone surrogate anywhere in the body is a 400 naming where it is."""
    auth = {"Authorization": f"Bearer {chaos.api_key}"}
    raw = (b'{"model": "router", "prompt": "ok", "messages": [{"role": "system", "content": "fine"}, '
           b'{"role": "user", "content": "bad \\udfff here"}]}')
    reply = exchange(chaos.port, request("POST", path, raw, auth))
    assert reply.status == 400, reply.body
    err = reply.error()
    assert err["code"] == "invalid_unicode" and err["param"] == "messages.1.content"
