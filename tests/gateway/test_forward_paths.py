"""Both forwarding paths through litellm: its provider handlers directly (plain ``openai/`` chat models)
and ``litellm.acompletion`` (everything else), with the same responses, streams, errors and metrics."""

from __future__ import annotations

import json

import httpx
import litellm
import pytest

from gateway.litellm_direct import ParamMemo, configure, direct_chat
from gateway_support import AUTH, ThreadGateway, chat, make_config, post

TIMEOUT = httpx.Timeout(5.0, connect=1.0)
PLAIN = {"model": "openai/some-model", "api_base": "http://127.0.0.1:1/v1", "api_key": "k", "max_retries": 0,
         "timeout": TIMEOUT, "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


def test_direct_path_only_for_plain_openai_chat_models():
    d = direct_chat(PLAIN)
    assert d is not None and d.model == "some-model" and d.api_base == PLAIN["api_base"] and d.timeout is TIMEOUT
    assert direct_chat({**PLAIN, "model": "openai/org/model-7b"}).model == "org/model-7b"
    for other in ({"model": "hosted_vllm/some-model"},  # another provider
                  {"model": "openai/"},
                  {"api_key": None}, {"api_base": None},  # litellm would look these up in the environment
                  {"extra_headers": {"x": "1"}},  # anything else litellm acts on
                  {"model": "openai/o1-pro"}):  # litellm bridges it to the Responses API
        assert direct_chat({**PLAIN, **other}) is None, other


@pytest.fixture(scope="module")
def two_path_gateway(router_dir, router, upstream, redis_url, encoder):
    cfg = make_config(router_dir, router.models, upstream.url, redis_url)
    # an extra litellm argument keeps the first model on litellm.acompletion
    cfg["model_list"][0]["litellm_params"]["extra_headers"] = {"x-gateway-test": "1"}
    gw = ThreadGateway(cfg, encoder).start()
    yield gw
    gw.stop()


@pytest.fixture()
def acompletion_calls(monkeypatch):
    calls: list[str] = []
    real = litellm.acompletion

    async def spy(*args, **kwargs):
        calls.append(kwargs["model"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(litellm, "acompletion", spy)
    return calls


def _output_tokens(gw, model: str) -> float:
    prefix = f'llm_router_tokens_total{{direction="output",served_model="{model}"}} '
    lines = [line for line in httpx.get(gw.url + "/metrics").text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


@pytest.mark.parametrize("index,via_acompletion", [(0, True), (1, False)])
def test_both_paths_answer_alike(two_path_gateway, router, acompletion_calls, index, via_acompletion):
    model = router.models[index]
    tokens = _output_tokens(two_path_gateway, model)
    r = post(two_path_gateway.url, {"model": model, "messages": chat("hi"), "temperature": 0.1, "top_k": 3})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["model"] == model and data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"].startswith(f"[{model}] answered")
    assert data["usage"]["completion_tokens"] > 0
    assert float(r.headers["x-router-cost-usd"]) > 0
    tokens_after_one = _output_tokens(two_path_gateway, model)
    assert tokens_after_one == tokens + data["usage"]["completion_tokens"]

    with httpx.stream("POST", two_path_gateway.url + "/v1/chat/completions", headers=AUTH, timeout=30,
                      json={"model": model, "messages": chat("stream me"), "stream": True,
                            "stream_options": {"include_usage": True}}) as s:
        lines = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["model"] == model for c in chunks) and "router" in chunks[0]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text.startswith(f"[{model}] answered")
    assert acompletion_calls == ([f"openai/{model}"] * 2 if via_acompletion else [])
    assert _output_tokens(two_path_gateway, model) > tokens_after_one  # the stream's usage chunk counted


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("status,code,kind", [(400, 400, "status_4xx"), (429, 429, "rate_limit"),
                                              (503, 502, "status_5xx")])
def test_both_paths_classify_upstream_errors_alike(two_path_gateway, router, upstream, index, status, code, kind):
    """A 400 is the request's fault (passed back, not counted against the upstream); a 429 on every
    attempt is a 429; a 5xx is the upstream's."""
    model = router.models[index]
    upstream.control(fail_models=[model], error_status=status)
    r = post(two_path_gateway.url, {"model": model, "messages": chat("hi")})
    assert r.status_code == code, r.text
    metrics = httpx.get(two_path_gateway.url + "/metrics").text
    counted = f'llm_router_upstream_errors_total{{kind="{kind}",served_model="{model}"}}' in metrics
    assert counted == (status != 400)


def test_mapped_parameters_are_memoized_per_value_and_type():
    configure()  # drop_params, as the forwarder sets it
    memo = ParamMemo()
    first = memo.map("m", {"temperature": 1, "user": "u"})
    assert first["temperature"] == 1 and "user" not in first  # mapped like acompletion (drop_params drops it)
    first["extra_body"]["x"] = 1  # a caller's changes never reach the memo
    again = memo.map("m", {"temperature": 1, "user": "u"})
    assert again == memo.map("m", {"user": "u", "temperature": 1}) and "x" not in again["extra_body"]
    assert type(memo.map("m", {"temperature": 1.0})["temperature"]) is float
    assert type(memo.map("m", {"temperature": 1})["temperature"]) is int
    assert "tools" in memo.map("m", {"tools": [{"type": "function", "function": {"name": "f"}}]})
    assert len(memo) == 3  # the tools call was not memoized
