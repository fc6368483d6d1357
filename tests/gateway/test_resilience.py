"""Failures the gateway absorbs: an upstream model that fails (fallback), Redis going away (fail open)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from gateway.redis_embedded import EmbeddedRedis
from gateway_support import API_KEY, AUTH, MIN_SAMPLES, ThreadGateway, chat, make_config
from gateway_support import send as send_chat



def ranking_for(gateway, prompt: str, task_id: str | None = None) -> list[str]:
    r = httpx.post(gateway.url + "/v1/router/route", headers=AUTH, json={"prompt": prompt, "task_id": task_id})
    return r.json()["router"]["ranking"]


@pytest.mark.parametrize("stream", [False, True])
def test_failing_model_falls_back_to_the_next_by_score(client, gateway, upstream, bench, stream):
    prompt = bench.held_out["arc-challenge"][5]
    first, second = ranking_for(gateway, prompt)[:2]
    upstream.control(fail_models=[first], error_status=503)
    raw = client.chat.completions.with_raw_response.create(model="router", messages=chat(prompt), stream=stream)
    assert raw.headers["x-router-model"] == second
    assert raw.headers["x-router-attempted"] == first
    if stream:
        chunks = list(raw.parse())
        info, served = chunks[0].model_extra["router"], chunks[0].model
    else:
        completion = raw.parse()
        info, served = completion.model_extra["router"], completion.model
    assert served == second and info["chosen_model"] == first
    assert [a["model"] for a in info["attempted"]] == [first, first]  # one retry, then the fallback
    assert {a["error"] for a in info["attempted"]} == {"status_5xx"}
    metrics = httpx.get(gateway.url + "/metrics").text
    assert f'llm_router_fallbacks_total{{from_model="{first}",to_model="{second}"}}' in metrics


def test_explicit_model_is_not_replaced(client, upstream, router):
    upstream.control(fail_models=[router.models[3]])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=router.models[3], messages=chat("hi"))


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_redis_killed_mid_test_every_request_still_succeeds(router_dir, router, upstream, encoder, bench,
                                                            tmp_path):
    redis = EmbeddedRedis(tmp_path / "redis").start()
    gw = ThreadGateway(make_config(router_dir, router.models, upstream.url, redis.url), encoder).start()
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=API_KEY, max_retries=0)

        def send(prompt, task_id=None, stream=False):
            return send_chat(client, prompt, task_id, stream)[:2]

        prompts = bench.held_out["mbpp"][:MIN_SAMPLES]
        for p in prompts:
            source, final_model = send(p, "sticky")
        assert source == "final"

        redis.stop()
        assert send(prompts[0], "sticky") == ("cached", final_model)  # known decision, from memory
        assert send(prompts[0], "new-task")[0] == "instance"
        assert send(prompts[1])[0] == "instance"
        assert send(prompts[2], "new-task", stream=True)[0] == "instance"
        ready = httpx.get(gw.url + "/health/readiness").json()
        assert ready["fail_open"] is True and ready["redis"] == "unreachable" and "detail" in ready
        assert "llm_router_redis_fail_open 1.0" in httpx.get(gw.url + "/metrics").text
        r = httpx.get(gw.url + "/v1/router/tasks/sticky", headers=AUTH)
        assert r.status_code == 503 and r.json()["error"]["code"] == "redis_unavailable"

        redis = EmbeddedRedis(tmp_path / "redis", port=redis.port).start()  # same port: it reconnects
        wait_for(lambda: httpx.get(gw.url + "/health/readiness").json()["fail_open"] is False)
        assert "llm_router_redis_fail_open 0.0" in httpx.get(gw.url + "/metrics").text
        assert send(prompts[0], "sticky") == ("cached", final_model)
        assert send(prompts[0], "after-restart")[0] == "provisional"
    finally:
        gw.stop()
        redis.stop()


def test_client_disconnect_cancels_the_upstream_stream(gateway, upstream, router):
    upstream.control(per_token_ms=300)  # a slow stream: ~4 s if read to the end
    before = upstream.control()["streams"]
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", headers=AUTH, timeout=30,
                      json={"model": router.models[0], "messages": chat("hi"), "stream": True}) as r:
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    # the client hung up after the first chunk: the gateway must drop its upstream stream too
    wait_for(lambda: upstream.control()["streams"]["cancelled"] == before["cancelled"] + 1)
    assert upstream.control()["streams"]["finished"] == before["finished"]


def test_client_cannot_redirect_the_upstream_call(gateway, router):
    """litellm arguments in the body (api_base, api_key, ...) never override the configured ones."""
    r = httpx.post(gateway.url + "/v1/chat/completions", headers=AUTH, timeout=30,
                   json={"model": router.models[0], "messages": chat("hi"), "api_base": "http://127.0.0.1:9/v1",
                         "api_key": "stolen", "mock_response": "forged", "top_k": 5})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].startswith(f"[{router.models[0]}] answered")


def test_unreachable_upstream_is_a_connection_error_and_502(router_dir, router, upstream, redis_url, encoder):
    from gateway.redis_embedded import free_port

    cfg = make_config(router_dir, router.models, upstream.url, redis_url)
    dead = router.models[0]
    cfg["model_list"][0]["litellm_params"]["api_base"] = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens
    gw = ThreadGateway(cfg, encoder).start()
    try:
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=30,
                       json={"model": dead, "messages": chat("hi")})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        assert "cannot reach upstream" in r.json()["error"]["message"]
        metrics = httpx.get(gw.url + "/metrics").text
        assert f'llm_router_upstream_errors_total{{kind="connection",served_model="{dead}"}}' in metrics
    finally:
        gw.stop()
