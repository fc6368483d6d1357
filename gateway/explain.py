"""Telling the caller what was chosen and why: ``x-router-*`` headers and the ``router`` object.

The same facts go in both places because SDKs often hide headers; the body object rides on the
response (and on the first SSE chunk), where the stock OpenAI SDK keeps unknown fields.
"""

from __future__ import annotations

from typing import Any

from .forward import Outcome
from .routing import Choice


def router_object(choice: Choice, artifact: str, outcome: Outcome | None = None,
                  details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``router`` body object; ``details`` (``TaskRouter.details``) adds the knobs and costs."""
    d = choice.decision
    out: dict[str, Any] = {"decision": choice.source, "method": d.method, "chosen_model": d.model,
                           "task_id": choice.task_id, "artifact": artifact, **(details or {})}
    if choice.request_id is not None:
        out["request_id"] = choice.request_id
    if choice.coverage is not None:
        out["coverage"] = round(choice.coverage, 4)
    if outcome is not None:
        out["served_model"] = outcome.served
        if outcome.failures:
            out["attempted"] = [{"model": f.model, "error": f.kind} for f in outcome.failures]
    if choice.source != "explicit":
        out["n"] = d.n
        out["scores"] = d.scores
        if d.p_hat:
            out["p_hat"] = d.p_hat
        out["ranking"] = list(d.ranking)
    return out


def headers(choice: Choice, artifact: str, served: str, cost_usd: float | None,
            outcome: Outcome | None = None) -> dict[str, str]:
    h = {"x-router-model": served, "x-router-decision": choice.source, "x-router-artifact": artifact,
         "x-router-method": choice.decision.method}
    if choice.task_id:
        h["x-router-task-id"] = choice.task_id
    if choice.request_id is not None:
        h["x-router-request-id"] = choice.request_id
    if choice.coverage is not None:
        h["x-router-coverage"] = f"{choice.coverage:.4f}"
    if cost_usd is not None:
        h["x-router-cost-usd"] = f"{cost_usd:.8f}"
    if outcome is not None and outcome.failures:
        h["x-router-attempted"] = ",".join(dict.fromkeys(f.model for f in outcome.failures))
    return h
