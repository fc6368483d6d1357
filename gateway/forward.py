"""Forwarding through litellm: the parameter whitelist, one retry/fallback loop, the stream relay.

``order`` is the router's ranking: the first model is tried ``1 + retries`` times on connection
errors, timeouts and 5xx, then the next models (at most ``max_fallbacks``). A model with several
deployments (``model_list`` entries under one name) is load-balanced by
:class:`gateway.deployments.DeploymentPool`: each try goes to its next deployment, one that keeps
failing is tried last for a while. An upstream 4xx other
than 408/429 is the caller's problem and is returned at once (:mod:`gateway.failures` decides).
Streaming and non-streaming calls share the loop: for streams a model counts as answering once
its first chunk arrived; after that nothing is retried. Plain ``openai/`` chat models go through
litellm's provider handlers directly (:mod:`gateway.litellm_direct`), everything else through
``litellm.acompletion`` / ``atext_completion`` / ``aembedding``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

import httpx
import litellm
from litellm.exceptions import APIError

from . import metrics
from .config import GatewayConfig
from .deployments import Deployment, DeploymentPool
from .errors import GatewayError
from .failures import Failure, classify, error_code
from .tracing import NO_ATTEMPT, OFF, Attempt, Tracing
from .litellm_direct import DirectChat, ParamMemo, chat_openai, configure, direct_chat

log = logging.getLogger("gateway.forward")

CallKind = Literal["chat", "text", "embed"]

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


def upstream_params(body: dict[str, Any]) -> dict[str, Any]:
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


@dataclass
class Outcome:
    """What one forwarded request produced."""

    served: str
    deployment: Deployment | None = None  # the deployment that answered
    response: Any = None  # litellm response (non-streaming)
    first: Any = None  # first chunk (streaming)
    stream: Any = None  # the rest of the chunks (streaming)
    failures: list[Failure] = field(default_factory=list)
    upstream_s: float = 0.0
    trace: Attempt = NO_ATTEMPT  # the answering attempt's span (a stream's ends with the stream)


class Forwarder:
    """Calls the configured models for one gateway process (litellm set up by :func:`configure`)."""

    def __init__(self, config: GatewayConfig, tracing: Tracing = OFF) -> None:
        up = config.upstreams
        configure(up.drop_params)
        self.tracing = tracing
        lim = config.limits
        self.limits = lim
        deployments = []
        for name, entries in config.deployments_by_name.items():
            for i, entry in enumerate(entries):
                read = entry.litellm_params.timeout or lim.read_timeout_s
                # explicit per-token prices put litellm's cost calculator on its short path (profiled:
                # without them it searches its model map ten times per response)
                prices = {"input_cost_per_token": entry.model_info.input_cost_per_token,
                          "output_cost_per_token": entry.model_info.output_cost_per_token}
                kwargs = {"model": entry.litellm_params.model, "max_retries": 0,
                          "timeout": httpx.Timeout(read, connect=lim.connect_timeout_s),
                          **prices, **entry.litellm_params.call_kwargs()}
                deployments.append(Deployment(name, i, kwargs, entry.model_info, direct_chat(kwargs)))
        self.pool = DeploymentPool(deployments, up.balancing, up.cooldown_s, up.allowed_fails)
        self._memo = ParamMemo()

    def _attempts(self, order: list[str]) -> list[Deployment]:
        models = [m for m in order if m in self.pool][: 1 + self.limits.max_fallbacks]
        return self.pool.plan(models, 1 + self.limits.retries)

    async def _call(self, kind: CallKind, dep: Deployment, body: dict[str, Any], stream: bool, trace: Attempt) -> Any:
        headers = trace.headers()  # the attempt span's traceparent; none while tracing is off
        if kind == "chat" and dep.direct is not None and body.get("web_search_options") is None:
            d: DirectChat = dep.direct
            return await chat_openai(d, body["messages"], self._memo.map(d.model, upstream_params(body)), stream,
                                     headers)
        kwargs = {**upstream_params(body), **dep.kwargs}  # configured arguments always win
        if headers:
            kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), **headers}
        if kind == "chat":
            return await litellm.acompletion(messages=body["messages"], stream=stream, **kwargs)
        if kind == "text":
            return await litellm.atext_completion(prompt=body["prompt"], stream=stream, **kwargs)
        return await litellm.aembedding(input=body["input"], **kwargs)

    def _fail(self, failures: list[Failure], exc: BaseException, dep: Deployment, trace: Attempt) -> Failure:
        failure = classify(dep.model, exc, dep.label)
        trace.failed(failure.kind, failure.message)
        failures.append(failure)
        if failure.client_error:  # the request's fault: not the upstream's, not the alert's business
            self.pool.finished(dep, None)
            log.info("upstream refused the request: %s", failure.message)
        else:
            metrics.UPSTREAM_ERRORS.labels(dep.model, failure.kind).inc()
            # the upstream's failure counts against the deployment (readiness, cooldown)
            self.pool.finished(dep, None if failure.kind == "status_4xx" else False)
            log.warning("upstream attempt failed: %s (%s)", failure.message, failure.kind)
        return failure

    @staticmethod
    def _give_up(failures: list[Failure]) -> GatewayError:
        """The caller's error after the last attempt: the last failure's status, or 429 (with the
        upstream's longest Retry-After) when every attempt was rate limited."""
        last = failures[-1] if failures else Failure("", "other", 502, False, "no configured model to try")
        tried = ",".join(dict.fromkeys(f.model for f in failures))
        if last.client_error:
            return GatewayError(last.status, last.message, code=error_code(last.kind))
        msg = last.message if len(failures) <= 1 else f"all upstream attempts failed ({tried}); last: {last.message}"
        headers = {"x-router-attempted": tried} if tried else {}
        if failures and all(f.kind == "rate_limit" for f in failures):
            waits = [f.retry_after for f in failures if f.retry_after]
            if waits:  # seconds (the longest) or an HTTP date (the last one)
                seconds = [w for w in waits if w.isdigit()]
                headers["retry-after"] = max(seconds, key=int) if seconds else waits[-1]
            return GatewayError(429, msg, code="rate_limit_exceeded", headers=headers or None)
        return GatewayError(last.status, msg, code=error_code(last.kind), headers=headers or None)

    async def _first_success(self, kind: CallKind, body: dict[str, Any], order: list[str],
                             attempt: Callable[[Deployment, Attempt], Awaitable[Outcome]], attempt_s: float | None
                             ) -> Outcome:
        """The retry/fallback loop: ``attempt`` each model in turn until one succeeds.

        All attempts together get ``limits.total_timeout_s``; each one at most ``attempt_s`` more
        (None: no limit of its own). Every failure is classified, counted and decides whether to go
        on; none escapes as a 500. Raises :class:`GatewayError` when no attempt succeeded. Each
        attempt is a span of its own (numbered from 1 across retries and fallbacks).
        """
        failures: list[Failure] = []
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout_s
        attempts = self._attempts(order)
        for number, dep in enumerate(attempts, 1):
            if failures and loop.time() >= deadline:
                break
            until = deadline if attempt_s is None else min(deadline, loop.time() + attempt_s)
            trace = self.tracing.attempt(kind, dep.model, dep.kwargs["model"], number, dep.model == attempts[0].model,
                                         body, dep.api_base)
            self.pool.started(dep)
            try:
                async with asyncio.timeout_at(until):
                    outcome = await attempt(dep, trace)
            except asyncio.CancelledError:
                self.pool.finished(dep, None)
                trace.failed("cancelled", "the request was cancelled")
                raise
            except Exception as exc:
                if not self._fail(failures, exc, dep, trace).retry:
                    break
                continue
            self.pool.finished(dep, True)
            outcome.deployment = dep
            outcome.trace = trace
            outcome.failures = failures
            outcome.upstream_s = time.perf_counter() - start
            return outcome
        raise self._give_up(failures)

    async def complete(self, kind: CallKind, body: dict[str, Any], order: list[str]) -> Outcome:
        """Non-streaming call with retries and fallbacks; raises GatewayError when all fail."""

        async def attempt(dep: Deployment, trace: Attempt) -> Outcome:
            response = await self._call(kind, dep, body, False, trace)
            if response is None:  # litellm has returned None for some upstream statuses (e.g. 422)
                raise APIError(502, "upstream returned no response", "openai", dep.model)
            trace.answered(response)
            return Outcome(dep.model, response=response)

        return await self._first_success(kind, body, order, attempt, None)

    async def open_stream(self, kind: CallKind, body: dict[str, Any], order: list[str]) -> Outcome:
        """Start a stream; fallbacks apply until a model's first chunk has arrived."""

        async def attempt(dep: Deployment, trace: Attempt) -> Outcome:
            stream = None
            try:
                stream = await self._call(kind, dep, body, True, trace)
                iterator = stream.__aiter__()
                first = await iterator.__anext__()
            except StopAsyncIteration:  # an empty stream is an answer
                trace.finish(None)
                return Outcome(dep.model)
            except BaseException:  # failed, timed out or cancelled: stop the upstream call
                await close_stream(stream)
                raise
            trace.answered(first, end=False)  # ends with the stream (gateway.proxy)
            return Outcome(dep.model, first=first, stream=iterator)

        first_chunk_s = self.limits.connect_timeout_s + self.limits.read_timeout_s
        return await self._first_success(kind, body, order, attempt, first_chunk_s)

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
