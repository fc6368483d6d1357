"""Client mistakes are the client's: 400s naming the field before anything is routed, upstream
refusals of a malformed request passed back untried, rate limits reported as 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from litellm.exceptions import BadRequestError, RateLimitError
from pydantic import ValidationError

from doubles import HashEncoder, prompts
from gateway import openapi_doc
from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, RouteRequest
from gateway.body_check import MAX_DEPTH, check_body
from gateway.config import RouterSettings
from gateway.errors import GatewayError, _validation_error
from gateway.failures import classify
from gateway.forward import Forwarder
from gateway.routing import TaskRouter, check_task_id

CHAT = {"model": "router", "messages": [{"role": "user", "content": "hi"}]}


def rejected(model: type, body: dict[str, Any]) -> GatewayError:
    """The 400 the gateway answers for ``body`` (FastAPI turns ValidationError into RequestValidationError)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return _validation_error(RequestValidationError(exc.errors()))
    except GatewayError as exc:
        return exc
    raise AssertionError(f"{body} was accepted")


@pytest.mark.parametrize("model,body,param,says", [
    (ChatCompletionRequest, {**CHAT, "tools": "x"}, "tools", "valid list"),
    (ChatCompletionRequest, {**CHAT, "stream": "yes"}, "stream", "valid boolean"),
    (ChatCompletionRequest, {**CHAT, "temperature": "hot"}, "temperature", "valid number"),
    (ChatCompletionRequest, {**CHAT, "metadata": {"task_id": 5}}, "metadata.task_id", "valid string"),
    (ChatCompletionRequest, {**CHAT, "messages": [{"role": "user", "content": 5}]}, "messages.0.content", ""),
    (CompletionRequest, {"model": "router", "prompt": []}, "prompt", "at least 1 item"),
    (CompletionRequest, {"model": "router", "prompt": [1, 2]}, "prompt", "valid string"),
    (RouteRequest, {"prompt": "ok", "task_id": 7}, "task_id", "valid string"),
])
def test_wrong_types_are_400s_naming_the_field(model, body, param, says):
    err = rejected(model, body)
    assert err.status == 400 and err.param == param and says in err.message


def test_right_types_pass_and_are_forwarded():
    body = ChatCompletionRequest.model_validate({**CHAT, "stream": True, "temperature": 1, "tools": [{"type": "x"}],
                                                 "top_k": 5})
    forwarded = body.upstream_body()
    assert forwarded["stream"] is True and forwarded["temperature"] == 1.0 and forwarded["top_k"] == 5
    assert "seed" not in forwarded  # unset parameters are not sent
    assert CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]}).routing_text() == "a\nb"


@pytest.mark.parametrize("body,param", [
    ({**CHAT, "messages": [{"role": "user", "content": "a\ud800b"}]}, "messages.0.content"),
    ({"model": "router", "prompt": ["fine", "\udfff"]}, "prompt.1"),
    ({**CHAT, "user_data": {"\udc00key": 1}}, "user_data"),
])
def test_lone_surrogates_are_400s_naming_the_field(body, param):
    with pytest.raises(GatewayError) as caught:
        check_body(body)
    assert caught.value.status == 400 and caught.value.code == "invalid_unicode" and caught.value.param == param


def test_nesting_is_bounded():
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(GatewayError) as caught:
        check_body({"x": deep})
    assert caught.value.code == "too_deep"
    check_body({"ok": [[{"a": [1, "\U0001f600 paired surrogates are fine"]}]]})


@pytest.mark.parametrize("task_id", ["abc\n", "abc\r", "{x}", "a/b", "-lead", "a" * 201, "abc\x00"])
def test_task_ids_must_match_in_full(task_id):
    with pytest.raises(GatewayError) as caught:
        check_task_id(task_id)
    assert caught.value.status == 400 and caught.value.code == "invalid_task_id"


def test_good_task_ids_pass():
    assert check_task_id("eval-run_1.2:x@y+z=w") == "eval-run_1.2:x@y+z=w"
    assert check_task_id("a" * 200) == "a" * 200 and check_task_id("") is None


class _Resp:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def rate_limited(retry_after: str | None) -> RateLimitError:
    exc = RateLimitError("slow down", "openai", "m")
    exc.litellm_response_headers = {"retry-after": retry_after} if retry_after else {}  # type: ignore[assignment]
    return exc


def test_bad_requests_are_the_clients_and_never_retried():
    for exc in (BadRequestError("bad tools", "m", "openai"), StatusError(422), StatusError(413)):
        f = classify("m", exc)
        assert f.client_error and not f.retry and f.status in (400, 413, 422)
    assert not classify("m", StatusError(401)).client_error  # the gateway's own upstream key: not the client's
    assert not classify("m", StatusError(503)).client_error
    err = Forwarder._give_up([classify("m", BadRequestError("bad tools", "m", "openai"))])
    assert err.status == 400 and "bad tools" in err.message and "x-router-attempted" not in err.headers


def test_rate_limited_everywhere_is_a_429_with_the_longest_retry_after():
    failures = [classify("a", rate_limited("3")), classify("a", rate_limited("7")), classify("b", rate_limited(None))]
    assert [f.retry_after for f in failures] == ["3", "7", None]
    err = Forwarder._give_up(failures)
    assert err.status == 429 and err.headers["retry-after"] == "7" and err.code == "rate_limit_exceeded"
    assert err.body()["error"]["type"] == "rate_limit_error"
    mixed = Forwarder._give_up([classify("a", rate_limited("3")), classify("b", StatusError(503))])
    assert mixed.status == 502 and "retry-after" not in mixed.headers


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code
        self.message = f"status {status_code}"


class SavingEncoder(HashEncoder):
    """A cached encoder's two entry points, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[str] = []

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.saved += list(texts)
        return super().encode(texts, progress)

    def encode_unsaved(self, texts: Sequence[str]) -> np.ndarray:
        return super().encode(texts)


async def test_a_dry_run_writes_no_embedding(learned, store):
    enc = SavingEncoder()
    tr = TaskRouter(learned, enc, store, RouterSettings(artifact=Path("unused"), min_samples=3))
    await tr.dry_run(None, "math question never routed")
    await tr.dry_run("t-dry", "code question never routed")
    assert enc.saved == [] and "t-dry" not in store.sums
    await tr.choose("t-real", prompts("math", 1)[0])
    assert enc.saved == prompts("math", 1)


def test_openapi_documents_what_the_gateway_answers():
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest) -> dict[str, str]:
        return {}

    @app.get("/health/liveness")
    async def live() -> dict[str, str]:
        return {}

    openapi_doc.install(app)
    schema = app.openapi()
    chat_responses = schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat_responses
    assert {"400", "401", "404", "405", "408", "413", "429", "502", "504"} <= set(chat_responses)
    assert chat_responses["400"]["content"]["application/json"]["schema"] == openapi_doc.ERROR_REF
    assert "Allow" in chat_responses["405"]["headers"] and "Retry-After" in chat_responses["429"]["headers"]
    assert "text/event-stream" in chat_responses["200"]["content"]
    health = schema["paths"]["/health/liveness"]["get"]["responses"]
    assert "401" not in health and "400" not in health
    assert "HTTPValidationError" not in schema["components"]["schemas"]
