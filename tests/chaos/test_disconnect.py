"""A client that hangs up cancels the upstream call, whether the gateway was waiting for a plain
response, for a stream's first chunk, or relaying a stream; each is counted."""

from __future__ import annotations

import json
import socket

import pytest

from devtools.processes import wait_for
from rawhttp import request


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream-before-first-chunk"])
def test_hanging_up_while_the_upstream_thinks(chaos, stream: bool) -> None:
    chaos.upstream.control(latency_ms=5000)
    calls, cancelled = chaos.upstream.calls(), chaos.upstream.cancelled()
    disconnects = chaos.metric_sum("llm_router_client_disconnects_total")
    raw = json.dumps({"model": "router", "stream": stream,
                      "messages": [{"role": "user", "content": "Summarise the French revolution."}]}).encode()
    with socket.create_connection(("127.0.0.1", chaos.port)) as s:
        s.sendall(request("POST", "/v1/chat/completions", raw, chaos.auth))
        assert wait_for(lambda: chaos.upstream.calls() > calls), "the upstream was never called"
    assert wait_for(lambda: chaos.upstream.cancelled() > cancelled), "the upstream call ran on"
    assert wait_for(lambda: chaos.metric_sum("llm_router_client_disconnects_total") == disconnects + 1)
    print(f"\n{'stream' if stream else 'plain'}: upstream calls +{chaos.upstream.calls() - calls}, "
          f"cancelled +{chaos.upstream.cancelled() - cancelled}, disconnects counted +1")


def test_hanging_up_mid_stream(chaos) -> None:
    chaos.upstream.control(per_token_ms=400)
    state = chaos.upstream.control()
    streams_cancelled = state["streams"]["cancelled"]
    raw = json.dumps({"model": "router", "stream": True,
                      "messages": [{"role": "user", "content": "Count slowly to thirty."}]}).encode()
    with socket.create_connection(("127.0.0.1", chaos.port)) as s:
        s.sendall(request("POST", "/v1/chat/completions", raw, chaos.auth))
        s.settimeout(10)
        received = b""
        while b"data: " not in received:  # wait for the first chunk, then leave
            chunk = s.recv(65536)
            assert chunk, "the gateway closed the stream"
            received += chunk
    assert wait_for(lambda: chaos.upstream.control()["streams"]["cancelled"] > streams_cancelled), \
        "the upstream stream kept running"
    print("\nmid-stream hang-up: upstream stream cancelled")
