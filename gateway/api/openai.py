"""OpenAI-compatible routes: chat and text completions, models, embeddings."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from ..errors import GatewayError
from ..proxy import handle
from ..runtime import Runtime, get_runtime
from .schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])  # the key: gateway.auth.KeyFirst

# the 200 of the completion routes; every error status is documented by gateway.openapi_doc
EXPLAINED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The upstream's response, with `model` set to the model that answered and a "
                         "`router` object (decision, chosen model, scores, p_hat). Headers: x-router-model, "
                         "x-router-decision, x-router-task-id, x-router-request-id (for POST /v1/router/feedback), "
                         "x-router-artifact, x-router-cost-usd. "
                         "With `stream: true`, server-sent events; the first chunk carries `router`."},
}


@router.post("/chat/completions", responses=EXPLAINED, summary="Chat completion (routed for aliases)")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           rt: Runtime = Depends(get_runtime)) -> Response:
    text = body.routing_text(rt.config.router.prompt_field)
    return await handle(rt, request, "chat", body.model, body.metadata, text, body.upstream_body(), body.stream)


@router.post("/completions", responses=EXPLAINED, summary="Text completion (routed for aliases)")
async def completions(body: CompletionRequest, request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    text = body.routing_text()
    return await handle(rt, request, "text", body.model, body.metadata, text, body.upstream_body(), body.stream)


@router.get("/models", summary="Configured models and routing aliases")
async def list_models(rt: Runtime = Depends(get_runtime)) -> Response:
    now = int(time.time())
    data = [{"id": a, "object": "model", "created": now, "owned_by": "llm-router"} for a in rt.aliases]
    data += [{"id": m, "object": "model", "created": now, "owned_by": "llm-router-upstream"}
             for m in rt.config.models_by_name]
    return JSONResponse({"object": "list", "data": data})


@router.post("/embeddings",
             summary="Embeddings (passed through to a configured model)")
async def embeddings(body: EmbeddingRequest, rt: Runtime = Depends(get_runtime)) -> Response:
    if body.model not in rt.config.models_by_name:
        raise GatewayError(404, f"model '{body.model}' is not configured (embeddings are not routed)",
                           param="model", code="model_not_found")
    outcome = await rt.forwarder.complete("embed", body.model_dump(exclude_none=True), [body.model])
    data = outcome.response.model_dump()
    data["model"] = outcome.served
    return JSONResponse(data, headers={"x-router-model": outcome.served, "x-router-decision": "explicit"})
