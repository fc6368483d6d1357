"""The router's own API: inspect and reset a task, add example prompts, dry-run a pick."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from ..errors import GatewayError, bad_request
from ..explain import router_object
from ..proxy import task_id_of
from ..routing import check_task_id
from ..runtime import Runtime, get_runtime
from ..task_store import StoreUnavailable
from .schemas import ChatCompletionRequest, RouteRequest, SamplesRequest

router = APIRouter(prefix="/v1/router", tags=["Router"])  # the key: gateway.auth.KeyFirst


def _unavailable(exc: StoreUnavailable) -> GatewayError:
    return GatewayError(503, f"task state is unavailable while Redis is down ({exc})", code="redis_unavailable")


def _task(task_id: str) -> str:
    checked = check_task_id(task_id)
    if checked is None:
        raise bad_request("task ID is empty", param="task_id")
    return checked


@router.get("/tasks/{task_id}", summary="A task's running sums, its decision (final or provisional) and samples")
async def get_task(task_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    task_id = _task(task_id)
    try:
        state = await rt.task_router.task_state(task_id)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    agg = state.aggregates
    return JSONResponse({
        "task_id": task_id, "artifact": rt.learned.version, "min_samples": rt.config.router.min_samples,
        "n": agg.n, "final": state.final, "labelled_samples": len(state.labelled) if state.labelled else 0,
        "aggregates": agg.to_dict(), "decision": state.decision.to_dict() if state.decision else None})


@router.delete("/tasks/{task_id}", summary="Forget a task (its sums, decision and samples)")
async def delete_task(task_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    task_id = _task(task_id)
    try:
        deleted = await rt.store.reset(task_id)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"task_id": task_id, "deleted": deleted > 0})


@router.post("/tasks/{task_id}/samples", summary="Add example prompts, optionally with per-model labels")
async def add_samples(task_id: str, body: SamplesRequest, rt: Runtime = Depends(get_runtime)) -> Response:
    task_id = _task(task_id)
    known = set(rt.learned.models)
    for i, sample in enumerate(body.samples):
        for model, value in (sample.labels or {}).items():
            if model not in known:
                raise bad_request(f"samples[{i}].labels: unknown model '{model}'", param=f"samples.{i}.labels")
            if not 0.0 <= value <= 1.0:
                raise bad_request(f"samples[{i}].labels.{model}: must be within [0, 1]",
                                  param=f"samples.{i}.labels")
    try:
        choice, folded, kept = await rt.task_router.add_samples(
            task_id, [s.prompt for s in body.samples], [s.labels for s in body.samples])
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"task_id": task_id, "folded": folded, "labelled_samples": kept,
                         "router": router_object(choice, rt.learned.version) if choice else None})


@router.post("/route", summary="Dry run: the model a request would be routed to and why (no upstream call)")
async def route(body: RouteRequest, request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    if body.messages:
        text = ChatCompletionRequest(model="router", messages=body.messages).routing_text(
            rt.config.router.prompt_field)
    elif body.prompt:
        text = body.prompt
    else:
        raise bad_request("give 'messages' or 'prompt'", param="messages", code="missing_field")
    task_id = check_task_id(body.task_id) if body.task_id else task_id_of(request, body.metadata)
    choice = await rt.task_router.dry_run(task_id, text)
    return JSONResponse({"model": choice.decision.model, "router": router_object(choice, rt.learned.version),
                         "decision": choice.decision.to_dict()})

