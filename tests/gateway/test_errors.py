"""Every error class reaches the caller OpenAI-shaped with the right status; bad input is never a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway_support import API_KEY, AUTH, chat, post



def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def test_malformed_json_is_400(gateway):
    r = httpx.post(gateway.url + "/v1/chat/completions", content=b'{"model": "router", "messages": [',
                   headers={**AUTH, "Content-Type": "application/json"})
    assert assert_openai_error(r, 400)["code"] == "invalid_json"


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "router"}, "messages"),
    ({"model": "router", "messages": "hello"}, "messages"),
    ({"model": "router", "messages": []}, "messages"),
    ({"model": "router", "messages": [{"content": "hi"}]}, "messages.0.role"),
    ({"model": "router", "messages": chat("hi"), "stream": "yes please"}, "stream"),
    ({"model": 7, "messages": chat("hi")}, "model"),
])
def test_missing_or_mistyped_fields_are_400(gateway, body, param):
    assert_openai_error(post(gateway.url, body), 400, param)


def test_non_object_body_is_400(gateway):
    assert_openai_error(post(gateway.url, [1, 2]), 400)
    r = httpx.post(gateway.url + "/v1/chat/completions", headers=AUTH, content=b"model=router")
    assert_openai_error(r, 400)


def test_bad_task_id_is_400(gateway):
    assert_openai_error(post(gateway.url, {"model": "router", "messages": chat("hi")}, {"X-Task-ID": "a{b}"}),
                        400, "task_id")
    assert_openai_error(post(gateway.url, {"model": "router", "messages": chat("hi"), "metadata": {"task_id": 5}}),
                        400, "metadata.task_id")


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=chat("hi"))
    assert info.value.body["param"] == "model"


def test_too_large_is_413(gateway):
    big = {"model": "router", "messages": chat("x" * 100_000)}
    assert_openai_error(post(gateway.url, big), 413)

    def chunks():  # no content-length: the limit applies while reading
        yield b'{"model": "router", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    r = httpx.post(gateway.url + "/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"},
                   content=chunks())
    assert_openai_error(r, 413)


def test_auth(gateway):
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="router", messages=chat("hi"))
    r = httpx.get(gateway.url + "/v1/models")
    assert_openai_error(r, 401)
    assert API_KEY not in r.text
    assert httpx.get(gateway.url + "/v1/models", headers={"x-api-key": API_KEY}).status_code == 200
    # probes and scrapers need no key
    assert httpx.get(gateway.url + "/health/liveness").status_code == 200
    assert httpx.get(gateway.url + "/metrics").status_code == 200


def test_unknown_route_and_method_are_openai_shaped(gateway):
    assert_openai_error(httpx.get(gateway.url + "/v1/nothing", headers=AUTH), 404)
    assert_openai_error(httpx.get(gateway.url + "/v1/chat/completions", headers=AUTH), 405)


def test_upstream_failure_everywhere_is_502(client, upstream, router):
    upstream.control(fail_models=list(router.models))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="router", messages=chat("hi"))
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_error"
    with pytest.raises(openai.InternalServerError) as info:
        list(client.chat.completions.create(model="router", messages=chat("hi"), stream=True))
    assert info.value.status_code == 502


def test_upstream_hang_is_504_not_a_hang(client, upstream, router):
    upstream.control(hang=True)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=router.models[0], messages=chat("hi"))
    assert info.value.status_code == 504
    assert info.value.body["code"] == "upstream_timeout"


def test_upstream_client_error_is_relayed_not_retried(gateway, upstream, router):
    upstream.control(fail_models=[router.models[0]], error_status=400)
    calls = upstream.control()["calls"].get(router.models[0], 0)
    r = post(gateway.url, {"model": router.models[0], "messages": chat("hi")})
    assert assert_openai_error(r, 400)["code"] == "upstream_rejected"
    assert upstream.control()["calls"][router.models[0]] == calls + 1  # no retry of a client error
