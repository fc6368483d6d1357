"""The router's own API: inspect and reset a task, add example prompts, dry-run a pick, feed back outcomes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from ..errors import GatewayError, bad_request
from ..explain import router_object
from ..proxy import knobs_of, task_id_of
from ..routing import check_task_id
from ..runtime import Runtime, get_runtime
from ..task_store import StoreUnavailable
from .schemas import ChatCompletionRequest, FeedbackItem, FeedbackRequest, RouteRequest, SamplesRequest

router = APIRouter(prefix="/v1/router", tags=["Router"])  # the key: gateway.auth.KeyFirst


def _unavailable(exc: StoreUnavailable) -> GatewayError:
    return GatewayError(503, f"task state is unavailable while Redis is down ({exc})", code="redis_unavailable")


def _task(task_id: str) -> str:
    checked = check_task_id(task_id)
    if checked is None:
        raise bad_request("task ID is empty", param="task_id")
    return checked


def _by_model(models: list[str], values: Any) -> dict[str, float] | None:
    return None if values is None else {m: round(float(v), 6) for m, v in zip(models, values)}


@router.get("/tasks", summary="Tasks by coverage, lowest first; ?needs_feedback=true: those below the threshold")
async def list_tasks(needs_feedback: bool = False, limit: int = Query(100, ge=1, le=10_000),
                     rt: Runtime = Depends(get_runtime)) -> Response:
    """Coverage (router_core.coverage) in [0, 1]: how far the router's prediction for a task can be
    trusted; a task below ``feedback.coverage_threshold`` gains most from labels or outcome feedback.
    Tasks are listed once their decision is final (and re-scored as feedback arrives)."""
    threshold = rt.config.feedback.coverage_threshold
    try:
        rows, count = await rt.feedback.needing(threshold if needs_feedback else None, limit)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"threshold": threshold, "count": count,
                         "tasks": [{"task_id": t, "coverage": round(c, 4)} for t, c in rows]})


@router.get("/tasks/{task_id}", summary="A task's running sums, its decision (final or provisional) and samples")
async def get_task(task_id: str, request: Request, model: str | None = None,
                   rt: Runtime = Depends(get_runtime)) -> Response:
    """``?model=<alias>`` (and ``x-router-*`` headers) show the decision under that alias's knobs."""
    task_id = _task(task_id)
    if model is not None and model not in rt.aliases:
        raise GatewayError(404, f"'{model}' is not an alias ({', '.join(rt.aliases)})", param="model",
                           code="model_not_found")
    knobs = knobs_of(rt, request, model)
    try:
        state = await rt.task_router.task_state(task_id, knobs)
        loop = await rt.feedback.task_view(task_id, knobs.variant(rt.task_router.default), state.decision)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    agg = state.aggregates
    if agg.n == 0 and not state.final and not state.labelled:
        raise GatewayError(404, f"task '{task_id}' is not known: no prompt or sample was routed for it "
                           f"under artifact {rt.learned.version}", param="task_id", code="task_not_found")
    models = list(rt.learned.models)
    aggregates = {"n": agg.n, "sum_u": agg.sum_u, "sum_g": _by_model(models, agg.sum_g),
                  "sum_gbar": _by_model(models, agg.sum_gbar)}
    if agg.sum_pl is not None:
        aggregates["sum_pl"] = _by_model(models, agg.sum_pl)
    return JSONResponse({
        "task_id": task_id, "artifact": rt.learned.version, "min_samples": rt.config.router.min_samples,
        "n": agg.n, "final": state.final, "labelled_samples": len(state.labelled) if state.labelled else 0,
        "knobs": knobs.describe(rt.learned, rt.task_router.costs),
        "aggregates": aggregates, "decision": state.decision.to_dict() if state.decision else None,
        **loop})


@router.delete("/tasks/{task_id}", summary="Forget a task (its sums, decision, samples and feedback)")
async def delete_task(task_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    """Its routing state first, then its outcomes, histories and coverage; feedback on its earlier
    request IDs is then 404, as for expired ones."""
    task_id = _task(task_id)
    try:
        deleted = await rt.store.reset(task_id, rt.task_router.variants)
        deleted += await rt.feedback.forget(task_id, rt.task_router.variants)
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
        added = await rt.task_router.add_samples(task_id, [s.prompt for s in body.samples],
                                                 [s.labels for s in body.samples])
        choice, folded, kept = added.choice, added.folded, added.kept
        if kept and choice is not None:  # new labels: final decisions made before them are weighed again
            revised = await rt.feedback.revise_on_labels(task_id, list(rt.task_router.aliases.values()),
                                                         added.labelled)
            if revised is not None:
                choice = replace(choice, decision=revised, source="revised")
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"task_id": task_id, "folded": folded, "labelled_samples": kept,
                         "router": router_object(choice, rt.learned.version, None, rt.task_router.details(choice))
                         if choice else None})


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
    alias = getattr(body, "model", None)
    if alias is not None and alias not in rt.aliases:
        raise GatewayError(404, f"'{alias}' is not an alias ({', '.join(rt.aliases)})", param="model",
                           code="model_not_found")
    choice = await rt.task_router.dry_run(task_id, text, knobs_of(rt, request, alias))
    return JSONResponse({"model": choice.decision.model,
                         "router": router_object(choice, rt.learned.version, None, rt.task_router.details(choice)),
                         "decision": choice.decision.to_dict()})



def _items(body: FeedbackRequest) -> tuple[list[FeedbackItem], bool]:
    """The outcomes a feedback body carries and whether it is a batch; 400 for a shape or score that
    cannot be counted."""
    single = body.request_id is not None or body.correct is not None
    if single == (body.feedback is not None):
        raise bad_request("give 'request_id' and 'correct', or a 'feedback' list of them", param="feedback",
                          code="missing_field")
    if single:
        if body.request_id is None or body.correct is None:
            missing = "request_id" if body.request_id is None else "correct"
            raise bad_request(f"missing required field '{missing}'", param=missing, code="missing_field")
        items, where = [FeedbackItem(request_id=body.request_id, correct=body.correct)], [""]
    else:
        items = list(body.feedback or [])
        where = [f"feedback.{i}." for i in range(len(items))]
    for item, at in zip(items, where):
        if not 0.0 <= float(item.correct) <= 1.0:
            raise bad_request(f"{at}correct: must be 0, 1 or a score within [0, 1], not {item.correct}",
                              param=f"{at}correct", code="invalid_score")
    return items, not single


@router.post("/feedback", summary="Feed back the outcome of routed answers (by x-router-request-id)")
async def feedback(body: FeedbackRequest, rt: Runtime = Depends(get_runtime)) -> Response:
    """Counted once per request ID (a repeat answers ``repeat``); may revise the task's decision.
    One outcome: 404 for an unknown or expired ID. A batch: each item's own status (``not_found`` there)."""
    items, batch = _items(body)
    results: list[dict[str, Any]] = []
    try:
        for item in items:
            try:
                result = await rt.feedback.submit(item.request_id, float(item.correct))
            except GatewayError as exc:
                if not batch or exc.status != 404:
                    raise
                results.append({"request_id": item.request_id, "status": "not_found", "revised": None})
                continue
            results.append(result.to_dict())
    except StoreUnavailable as exc:
        raise GatewayError(503, f"feedback cannot be counted while Redis is down ({exc})",
                           code="redis_unavailable") from None
    return JSONResponse({"results": results} if batch else results[0])
