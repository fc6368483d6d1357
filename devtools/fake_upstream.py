"""The fake upstream: a local OpenAI-compatible server for the demo, the tests and the benchmarks.

It serves chat completions, completions (both also streamed), embeddings and the model list for
any configured model name. Latency (fixed + per token) and failures (rate, status, hang, per
model) are settable at start, and at run time through ``POST /_control`` when it was started with
``control=True`` (``llm-router upstream --control``): that endpoint is unauthenticated, so it is
off unless asked for. Given a benchmark data folder,
each answer names the model and says whether the benchmark records that model as correct on
that prompt, so a demo shows what routing buys without calling a paid API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Behaviour:
    """What the server does; with the control endpoint on, ``POST /_control`` changes any field."""

    latency_ms: float = 0.0
    per_token_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    hang: bool = False
    fail_models: list[str] = field(default_factory=list)  # always fail with error_status
    answer_tokens: int = 8
    retry_after_s: int | None = None  # sent as Retry-After with injected failures
    die_after_chunks: int | None = None  # streams: drop the connection after this many chunks


class FakeUpstream:
    def __init__(self, models: list[str], behaviour: Behaviour | None = None,
                 records: dict[str, dict[str, float]] | None = None, control: bool = False) -> None:
        self.models = list(models)
        self.control_enabled = control
        self.behaviour = behaviour or Behaviour()
        self.records = records or {}
        self.calls: dict[str, int] = {}
        self.cancelled = 0  # plain calls whose caller hung up while this server waited (latency, hang)
        self.streams = {"started": 0, "finished": 0, "cancelled": 0}  # cancelled: the caller hung up
        self.traceparents: deque[str] = deque(maxlen=200)  # the W3C traceparent of recent calls that had one

    # -- helpers --------------------------------------------------------------------------
    def _failure(self, model: str) -> Response | None:
        b = self.behaviour
        if model in b.fail_models or (b.error_rate > 0 and random.random() < b.error_rate):
            headers = {"retry-after": str(b.retry_after_s)} if b.retry_after_s is not None else None
            return JSONResponse({"error": {"message": f"injected failure for {model}", "type": "server_error",
                                           "param": None, "code": "injected"}}, status_code=b.error_status,
                                headers=headers)
        return None

    async def _wait(self, request: Request, seconds: float) -> bool:
        """Sleep ``seconds``; False (and counted in ``cancelled``) as soon as the caller hangs up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            if await request.is_disconnected():
                self.cancelled += 1
                return False
            await asyncio.sleep(min(0.05, left))
        return True

    async def _gate(self, request: Request, body: dict[str, Any]) -> tuple[str, Response | None]:
        if traceparent := request.headers.get("traceparent"):
            self.traceparents.append(traceparent)
        model = str(body.get("model", ""))
        if model not in self.models:
            return model, JSONResponse({"error": {"message": f"model {model!r} not served here",
                                                  "type": "invalid_request_error", "param": "model",
                                                  "code": "model_not_found"}}, status_code=404)
        self.calls[model] = self.calls.get(model, 0) + 1
        gone = Response(status_code=499)  # nobody reads it: the caller left
        if self.behaviour.hang and not await self._wait(request, 3600):
            return model, gone
        failure = self._failure(model)
        if failure is not None:
            return model, failure
        if self.behaviour.latency_ms and not await self._wait(request, self.behaviour.latency_ms / 1000):
            return model, gone
        return model, None

    def answer(self, model: str, prompt: str) -> str:
        labels = self.records.get(prompt.strip())
        if labels is None:
            verdict = "no benchmark record for this prompt"
        elif model not in labels:
            verdict = "no benchmark label for this model"
        else:
            verdict = "the benchmark records it as correct" if labels[model] >= 0.5 else \
                "the benchmark records it as wrong"
        return f"[{model}] answered; {verdict}."

    @staticmethod
    def _usage(prompt: str, text: str) -> dict[str, int]:
        p, c = max(1, len(prompt.split())), max(1, len(text.split()))
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def _sse(self, chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        self.streams["started"] += 1
        finished = False
        try:
            for i, chunk in enumerate(chunks):
                if self.behaviour.die_after_chunks is not None and i >= self.behaviour.die_after_chunks:
                    raise ConnectionAbortedError("injected: the stream dies mid-way")  # uvicorn drops the connection
                if self.behaviour.per_token_ms:
                    await asyncio.sleep(self.behaviour.per_token_ms / 1000)
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            self.streams["finished" if finished else "cancelled"] += 1

    # -- endpoints ------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model, failure = await self._gate(request, body)
        if failure is not None:
            return failure
        messages = body.get("messages") or []
        prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        if not isinstance(prompt, str):
            prompt = " ".join(p.get("text", "") for p in prompt if isinstance(p, dict))
        text = self.answer(model, prompt)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.get("stream"):
            words = text.split(" ")
            base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
            chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                            "finish_reason": None}]}]
            chunks += [{**base, "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w},
                                             "finish_reason": None}]} for i, w in enumerate(words)]
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                           **({"usage": self._usage(prompt, text)}
                              if (body.get("stream_options") or {}).get("include_usage") else {})})
            return StreamingResponse(self._sse(chunks), media_type="text/event-stream")
        await self._token_delay(text)
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": self._usage(prompt, text)})

    async def _token_delay(self, text: str) -> None:
        if self.behaviour.per_token_ms:
            await asyncio.sleep(self.behaviour.per_token_ms * len(text.split()) / 1000)

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        model, failure = await self._gate(request, body)
        if failure is not None:
            return failure
        prompt = body.get("prompt") or ""
        prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        text = self.answer(model, prompt)
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.get("stream"):
            base = {"id": rid, "object": "text_completion", "created": created, "model": model}
            chunks = [{**base, "choices": [{"index": 0, "text": w if i == 0 else " " + w, "logprobs": None,
                                            "finish_reason": None}]} for i, w in enumerate(text.split(" "))]
            chunks.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]})
            return StreamingResponse(self._sse(chunks), media_type="text/event-stream")
        await self._token_delay(text)
        return JSONResponse({"id": rid, "object": "text_completion", "created": created, "model": model,
                             "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                             "usage": self._usage(prompt, text)})

    async def embeddings(self, request: Request) -> Response:
        body = await request.json()
        model, failure = await self._gate(request, body)
        if failure is not None:
            return failure
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).encode()).digest()
            data.append({"object": "embedding", "index": i, "embedding": [(b - 128) / 128 for b in digest[:8]]})
        n = sum(len(str(t).split()) for t in inputs)
        return JSONResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": n, "total_tokens": n}})

    async def list_models(self, _: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                         "owned_by": "llm-router-upstream"} for m in self.models]})

    async def control(self, request: Request) -> Response:
        if request.method == "POST":
            update = await request.json()
            for key, value in update.items():
                if not hasattr(self.behaviour, key):
                    return JSONResponse({"error": f"unknown setting {key!r}"}, status_code=400)
                setattr(self.behaviour, key, value)
        return JSONResponse({"behaviour": asdict(self.behaviour), "calls": self.calls, "streams": self.streams,
                             "cancelled": self.cancelled, "traceparents": list(self.traceparents)})

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
        ]
        if self.control_enabled:
            routes.append(Route("/_control", self.control, methods=["GET", "POST"]))
        return Starlette(routes=routes)


def benchmark_records(folder: str | Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Model names and prompt -> {model: correct} from a benchmark data folder."""
    from router_core import data as data_mod

    d = data_mod.load(folder)
    records: dict[str, dict[str, float]] = {}
    for text, row in zip(d.prompts, d.labels):
        records[text.strip()] = {m: float(v) for m, v in zip(d.models, row) if v == v}
    return list(d.models), records
