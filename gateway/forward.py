"""Forwarding through litellm: retries, fallback order, timeouts, streaming relay.

``order`` is the router's ranking: the first model is tried ``1 + retries`` times on connection
errors, timeouts and 5xx, then the next models (at most ``max_fallbacks``). An upstream 4xx other
than 408/429 is the caller's problem and is returned at once. For streams a model counts as
answering once its first chunk arrived; after that nothing is retried.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
import httpx  # noqa: E402
import litellm  # noqa: E402
import openai  # noqa: E402
from litellm.litellm_core_utils.litellm_logging import Logging as LiteLLMLogging  # noqa: E402
from litellm.llms.openai.openai import OpenAIChatCompletion  # noqa: E402
from litellm.main import base_llm_http_handler  # noqa: E402
from litellm.types.utils import LlmProviders, ModelResponse  # noqa: E402
from litellm.utils import ProviderConfigManager  # noqa: E402

from . import metrics  # noqa: E402
from .config import GatewayConfig  # noqa: E402
from .errors import GatewayError  # noqa: E402

litellm.telemetry = False
litellm.drop_params = True
litellm.suppress_debug_info = True
# litellm logs every call at INFO ("LiteLLM completion() model=..."): one line per request is noise
logging.getLogger("LiteLLM").setLevel(logging.WARNING)
log = logging.getLogger("gateway.forward")

# request fields the gateway consumes itself
OWN_FIELDS = {"model", "messages", "prompt", "stream", "metadata", "input"}
# OpenAI request parameters handed to litellm as such. Any other field goes to the upstream inside
# ``extra_body`` (e.g. vLLM's ``top_k``), so a client can never set litellm's own arguments
# (``api_base``, ``api_key``, ``mock_response``, ...) and redirect the gateway's credentials.
OPENAI_PARAMS = frozenset({
    "audio", "best_of", "dimensions", "echo", "encoding_format", "frequency_penalty", "function_call",
    "functions", "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "modalities", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "reasoning_effort", "response_format", "seed",
    "service_tier", "stop", "store", "stream_options", "suffix", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})


# litellm's OpenAI chat handler (the one ``litellm.completion`` dispatches ``openai/`` chat models to),
# called directly for streams: see ``Forwarder._chat_openai``.
OPENAI_CHAT = OpenAIChatCompletion()
SCALARS = frozenset({str, int, float, bool})
DIRECT_KEYS = frozenset({"api_base", "api_key", "input_cost_per_token", "output_cost_per_token"})


@dataclass(frozen=True)
class DirectChat:
    """A model whose chat calls go straight to litellm's provider handlers (``Forwarder._chat_openai``)."""

    model: str  # without the ``openai/`` prefix, as litellm's handler takes it
    api_base: str
    api_key: str
    timeout: httpx.Timeout
    config: Any  # litellm's provider config for the model (transforms the request)


def direct_chat(kwargs: dict[str, Any]) -> DirectChat | None:
    """The direct path for one model's litellm arguments, or None where only ``acompletion`` will do.

    Only ``openai/<model>`` with a configured ``api_base`` and ``api_key`` and nothing else that
    ``litellm.completion`` would act on; models litellm bridges to the Responses API (its model map
    says mode ``responses``) or fakes streams for stay on ``acompletion``.
    """
    provider, _, model = str(kwargs.get("model", "")).partition("/")
    if provider != "openai" or not model or not kwargs.get("api_base") or not kwargs.get("api_key"):
        return None
    if set(kwargs) - DIRECT_KEYS - {"model", "max_retries", "timeout"}:
        return None
    if (litellm.model_cost.get(model) or {}).get("mode", "chat") != "chat":
        return None
    config = ProviderConfigManager.get_provider_chat_config(model=model, provider=LlmProviders.OPENAI)
    if config is None or config.should_fake_stream(model=model, stream=True, custom_llm_provider="openai"):
        return None
    return DirectChat(model, kwargs["api_base"], kwargs["api_key"], kwargs["timeout"], config)


@dataclass
class Failure:
    model: str
    kind: str  # one of metrics.UPSTREAM_ERROR_KINDS
    status: int  # what the caller gets if this is the last failure
    retry: bool  # worth another attempt (same model or next)
    message: str


def _caused_by(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or anything in its cause chain is one of ``types`` (litellm wraps errors)."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, types):
            return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False


def classify(model: str, exc: BaseException) -> Failure:
    """One mapping from an upstream exception to its kind, the caller's status and retryability."""
    if _caused_by(exc, (asyncio.TimeoutError, litellm.Timeout, httpx.TimeoutException)):
        return Failure(model, "timeout", 504, True, f"{model}: upstream timed out")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return Failure(model, "rate_limit", 502, True, f"{model}: upstream rate limit")
    # litellm reports a refused connection as a 500 InternalServerError wrapping the transport error
    if _caused_by(exc, (litellm.APIConnectionError, openai.APIConnectionError, httpx.TransportError, OSError)):
        return Failure(model, "connection", 502, True, f"{model}: cannot reach upstream")
    if isinstance(status, int) and status >= 500:
        return Failure(model, "status_5xx", 502, True, f"{model}: upstream returned {status}")
    if isinstance(status, int) and 400 <= status < 500 and status != 408:
        msg = str(getattr(exc, "message", exc)).replace("litellm.", "")
        return Failure(model, "status_4xx", status if status != 401 else 502, False, f"{model}: {msg}")
    return Failure(model, "other", 502, True, f"{model}: {type(exc).__name__}")


@dataclass
class Outcome:
    """What one forwarded request produced."""

    served: str
    response: Any = None  # litellm response (non-streaming)
    first: Any = None  # first chunk (streaming)
    stream: Any = None  # the rest of the chunks (streaming)
    failures: list[Failure] = field(default_factory=list)
    upstream_s: float = 0.0


class Forwarder:
    def __init__(self, config: GatewayConfig) -> None:
        lim = config.limits
        self.limits = lim
        self.entries = config.models_by_name
        self._kwargs: dict[str, dict[str, Any]] = {}
        for name, entry in self.entries.items():
            read = entry.litellm_params.timeout or lim.read_timeout_s
            # explicit per-token prices put litellm's cost calculator on its short path (profiled:
            # without them it searches its model map ten times per response)
            prices = {"input_cost_per_token": entry.model_info.input_cost_per_token,
                      "output_cost_per_token": entry.model_info.output_cost_per_token}
            self._kwargs[name] = {"model": entry.litellm_params.model, "max_retries": 0,
                                  "timeout": httpx.Timeout(read, connect=lim.connect_timeout_s),
                                  **prices, **entry.litellm_params.call_kwargs()}
        self._direct: dict[str, DirectChat] = {}
        self._mapped: dict[tuple, dict[str, Any]] = {}  # see _optional_params
        for name, kwargs in self._kwargs.items():
            if (direct := direct_chat(kwargs)) is not None:
                self._direct[name] = direct

    def _attempts(self, order: list[str]) -> list[str]:
        models = [m for m in order if m in self._kwargs][: 1 + self.limits.max_fallbacks]
        return [m for m in models for _ in range(1 + self.limits.retries)]

    @staticmethod
    def _params(body: dict[str, Any]) -> dict[str, Any]:
        """The client's parameters as litellm arguments: OpenAI ones by name, the rest in extra_body."""
        params: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in body.items():
            if key in OWN_FIELDS or value is None:
                continue
            (params if key in OPENAI_PARAMS else extra)[key] = value
        if extra:
            params["extra_body"] = extra
        return params

    async def _call(self, kind: str, model: str, body: dict[str, Any], stream: bool) -> Any:
        if kind == "chat" and model in self._direct and body.get("web_search_options") is None:
            return await self._chat_openai(self._direct[model], body, stream)
        kwargs = {**self._params(body), **self._kwargs[model]}  # configured arguments always win
        if kind == "chat":
            return await litellm.acompletion(messages=body["messages"], stream=stream, **kwargs)
        if kind == "text":
            return await litellm.atext_completion(prompt=body["prompt"], stream=stream, **kwargs)
        return await litellm.aembedding(input=body["input"], **kwargs)

    def _optional_params(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        """``litellm.get_optional_params`` for an ``openai/`` model, memoized for scalar parameters.

        The mapping is a function of the model and the parameters (and litellm's settings, fixed at
        import), ~0.3-0.7 ms a call here; requests mostly repeat a few scalar settings (none,
        ``temperature``, ``max_tokens``, ...). Anything else (tools, messages-like structures) is
        mapped per call. The memo is bounded.
        """
        key = None
        if all(type(v) in SCALARS for v in params.values()):
            key = (model, *sorted((k, type(v).__name__, v) for k, v in params.items()))
            if (hit := self._mapped.get(key)) is not None:
                return {k: dict(v) if isinstance(v, dict) else v for k, v in hit.items()}
        optional = litellm.get_optional_params(model=model, custom_llm_provider="openai", **params)
        if key is not None:
            if len(self._mapped) >= 1024:
                self._mapped.clear()
            self._mapped[key] = {k: dict(v) if isinstance(v, dict) else v for k, v in optional.items()}
        return optional

    async def _chat_openai(self, d: DirectChat, body: dict[str, Any], stream: bool) -> Any:
        """A chat call through litellm's provider handlers, without ``litellm.acompletion`` around them.

        What ``litellm.completion`` does for an ``openai/`` chat model, less what the gateway does not
        use. Parameters are mapped by ``litellm.get_optional_params`` (the same mapping and
        ``drop_params`` as ``acompletion``). A non-streaming call goes through litellm's generic HTTP
        handler (``BaseLLMHTTPHandler``, what litellm runs for most providers and for OpenAI under
        ``EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER``) with the OpenAI provider config's request and
        response transforms; a stream through litellm's OpenAI chat handler (the one ``acompletion``
        uses). Both return the same ``ModelResponse`` / ``CustomStreamWrapper`` and raise litellm's
        ``OpenAIError`` with the upstream status. Left out: the thread-pool hop ``acompletion`` takes
        per call (it runs ``completion()`` in the default executor), the OpenAI SDK's request building
        (non-streaming), litellm's callbacks, success logging and response-cost calculation (the
        gateway prices responses itself from ``model_info``). See docs/performance.md (Gateway).
        """
        params = self._params(body)
        optional = self._optional_params(d.model, params)
        optional.pop("stream", None)
        stream_options = optional.pop("stream_options", None)
        messages = body["messages"]
        log_obj = LiteLLMLogging(model=d.model, messages=messages, stream=stream, call_type="acompletion",
                                 start_time=datetime.datetime.now(), litellm_call_id=str(uuid.uuid4()),
                                 function_id="gateway")
        log_obj.update_environment_variables(model=d.model, user=None, optional_params=optional,
                                             litellm_params={"api_base": d.api_base, "custom_llm_provider": "openai"})
        if stream:
            return await OPENAI_CHAT.async_streaming(
                messages=messages, optional_params=optional, litellm_params={}, provider_config=d.config,
                model=d.model, logging_obj=log_obj, timeout=d.timeout, api_key=d.api_key, api_base=d.api_base,
                max_retries=0, stream_options=stream_options)
        return await base_llm_http_handler.completion(
            model=d.model, messages=messages, api_base=d.api_base, custom_llm_provider="openai",
            model_response=ModelResponse(), encoding=None, logging_obj=log_obj, optional_params=optional,
            timeout=d.timeout, litellm_params={}, acompletion=True, stream=False, api_key=d.api_key, headers={},
            provider_config=d.config)

    def _fail(self, failures: list[Failure], exc: BaseException, model: str) -> Failure:
        failure = classify(model, exc)
        failures.append(failure)
        metrics.UPSTREAM_ERRORS.labels(model, failure.kind).inc()
        log.info("upstream attempt failed: %s (%s)", failure.message, failure.kind)
        return failure

    def _give_up(self, failures: list[Failure]) -> GatewayError:
        last = failures[-1] if failures else Failure("", "other", 502, False, "no configured model to try")
        tried = ",".join(dict.fromkeys(f.model for f in failures))
        msg = last.message if len(failures) <= 1 else f"all upstream attempts failed ({tried}); last: {last.message}"
        code = {"timeout": "upstream_timeout", "status_4xx": "upstream_rejected"}.get(last.kind, "upstream_error")
        return GatewayError(last.status, msg, code=code,
                            headers={"x-router-attempted": tried} if tried else None)

    async def complete(self, kind: str, body: dict[str, Any], order: list[str]) -> Outcome:
        """Non-streaming call with retries and fallbacks; raises GatewayError when all fail."""
        failures: list[Failure] = []
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout_s  # all attempts together
        for model in self._attempts(order):
            if failures and loop.time() >= deadline:
                break
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._call(kind, model, body, stream=False)
                if response is None:  # litellm has returned None for some upstream statuses (e.g. 422)
                    raise litellm.APIError(502, "upstream returned no response", "openai", model)
                return Outcome(model, response=response, failures=failures, upstream_s=time.perf_counter() - start)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every upstream failure is classified, none escapes as a 500
                if not self._fail(failures, exc, model).retry:
                    break
        raise self._give_up(failures)

    async def open_stream(self, kind: str, body: dict[str, Any], order: list[str]) -> Outcome:
        """Start a stream; fallbacks apply until a model's first chunk has arrived."""
        failures: list[Failure] = []
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout_s  # all attempts together
        first_chunk_s = self.limits.connect_timeout_s + self.limits.read_timeout_s
        for model in self._attempts(order):
            if failures and loop.time() >= deadline:
                break
            stream = None
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + first_chunk_s)):
                    stream = await self._call(kind, model, body, stream=True)
                    iterator = stream.__aiter__()
                    first = await iterator.__anext__()
                return Outcome(model, first=first, stream=iterator, failures=failures,
                               upstream_s=time.perf_counter() - start)
            except asyncio.CancelledError:
                raise
            except StopAsyncIteration:
                return Outcome(model, first=None, stream=None, failures=failures,
                               upstream_s=time.perf_counter() - start)
            except Exception as exc:
                await close_stream(stream)
                if not self._fail(failures, exc, model).retry:
                    break
        raise self._give_up(failures)

    async def relay(self, iterator: Any, started: float) -> AsyncIterator[Any]:
        """The rest of a stream: each chunk within the read timeout, all of it within the total one.

        ``started`` is the request's ``time.perf_counter()`` start.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout_s - (time.perf_counter() - started)
        while True:
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + self.limits.read_timeout_s)):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            yield chunk


async def close_stream(stream: Any) -> None:
    """Close an upstream stream (client gone, or failed): stops the upstream call."""
    if stream is None:
        return
    for name in ("aclose", "close"):
        fn = getattr(stream, name, None)
        if fn is not None:
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # closing is best effort
                pass
            return
