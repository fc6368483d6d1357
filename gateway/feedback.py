"""The closed loop in the gateway: request IDs, outcome feedback, revision and exploration.

Every routed request gets an ID (``x-router-request-id``). A request of a task (an alias with a
task ID, or a configured model named with one) is recorded for ``feedback.ttl_s``, so that
``POST /v1/router/feedback`` can count its outcome for the model that served it. After a new
outcome, router_core's rules say (``feedback.policy``: first
:meth:`router_core.router.Router.revise_on_reliability`, the outcomes as a measure of the predictors'
accuracy that may undo a departure from BMA; then :func:`router_core.feedback.revise`, the router's
prediction as a prior and the outcomes as evidence; both with hysteresis and a cap) whether another model is
better with stated confidence; if so the task's final decision is replaced by a compare-and-set
(:class:`gateway.feedback_store.FeedbackStore`), so every gateway process agrees on one revision.
With ``feedback.explore`` > 0 that share of a task's requests, once its decision is final, goes
to the model most likely to overturn it (:func:`router_core.feedback.explore_pick`), which is how
a revision can reach a model that never served the task. Labelled samples posted after a task's
decision is final revise it the same way (:meth:`Feedback.revise_on_labels`, router_core's
:meth:`~router_core.router.Router.revise_on_labels` deciding).

All maths is router_core's; this module only sequences the calls.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from router_core import coverage as cov
from router_core import feedback as fb
from router_core.decision import Decision
from router_core.router import LabelledSamples, Router

from . import metrics
from .config import FeedbackSettings
from .errors import GatewayError
from .feedback_store import Counted, FeedbackStore, Outcomes, predicted_right
from .knobs import Knobs
from .routing import READ_BACK, Choice
from .task_store import RedisTaskStore, StoreUnavailable

log = logging.getLogger("gateway.feedback")

# <32 hex>.<task ID>: the task part names the Redis slot the record lives in; a request without a
# task ID gets the bare hex (nothing is recorded for it: there is no task to learn for)
REQUEST_ID = re.compile(r"([0-9a-f]{32})\.(.+)")
COVERAGE_MEMO = 4096  # final decisions read back whose zero-outcome coverage is kept (cleared when full)


def new_request_id(task_id: str | None) -> str:
    rid = uuid.uuid4().hex
    return f"{rid}.{task_id}" if task_id else rid


def parse_request_id(request_id: str) -> tuple[str, str] | None:
    """(random part, task) of a recordable request ID; None for anything else."""
    match = REQUEST_ID.fullmatch(request_id)
    return (match.group(1), match.group(2)) if match else None


def params_of(settings: FeedbackSettings) -> fb.FeedbackParams:
    return fb.FeedbackParams(settings.confidence, settings.margin, settings.min_outcomes, settings.max_revisions,
                             settings.explore, settings.policy)


def not_found(request_id: str, why: str) -> GatewayError:
    return GatewayError(404, f"request '{request_id}' {why}", param="request_id", code="request_not_found")


@dataclass(frozen=True)
class Result:
    """One fed-back outcome: ``counted`` or ``repeat`` (already counted: not again)."""

    request_id: str
    status: str
    task_id: str
    model: str
    revised: Decision | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": self.request_id, "status": self.status, "task_id": self.task_id,
                               "model": self.model, "revised": None}
        if self.revised is not None:
            out["revised"] = {"model": self.revised.model, "revision": self.revised.revision}
        return out


#: a prompt's predictions, one per model column (the task router's embedding and kNN)
Predict = Callable[[str], Awaitable[np.ndarray]]


class Feedback:
    """Request records, feedback and revisions for one router artifact."""

    def __init__(self, learned: Router, store: RedisTaskStore, settings: FeedbackSettings, default: Knobs,
                 costs: np.ndarray | None = None, rng: random.Random | None = None,
                 predict: Predict | None = None) -> None:
        self.learned = learned
        self.costs = learned.effective_costs(costs)  # what the cost knobs weigh (TaskRouter.costs, else the artifact's)
        self.default = default  # the router section's knobs: a choice's variant is named against them
        self.models = list(learned.models)
        self.settings = settings
        self.params = params_of(settings)
        self.store = FeedbackStore(store, settings.ttl_s)
        self.rng = rng or random.Random()
        # policy agreement_to_bma weighs each outcome's agreement with its prompt's prediction; a request
        # served after its task's decision was final was not embedded, so its kept prompt is, on feedback
        self.predict = predict if self.params.weighs_agreement and settings.store_prompts else None
        self._coverages: dict[int, tuple[Decision, float | None]] = {}  # see _coverage_value

    # -- the request path -------------------------------------------------------------------
    async def begin(self, choice: Choice, task_id: str | None) -> Choice:
        """The request's choice with its request ID (and, opted in, exploration); ``task_id`` is the
        request's even where the choice has none (a model named explicitly)."""
        choice = await self.explore(choice)
        choice.request_id = new_request_id(task_id if self.settings.enabled else None)
        if choice.task_id is not None and choice.source != "explore":
            choice.coverage = self._coverage_value(choice.decision, remember=choice.source in READ_BACK)
        return choice

    def _coverage_value(self, decision: Decision, remember: bool) -> float | None:
        """The coverage of a decision without outcomes. A final decision read back (``remember``) is the same
        object for each of its task's cached requests (``RedisTaskStore._decode_final``), so its coverage is
        computed on the first of them only; a task's not yet final decisions are new per prompt, not kept."""
        seen = self._coverages.get(id(decision))
        if seen is not None and seen[0] is decision:
            return seen[1]
        found = self.coverage_of(decision)
        value = found.coverage if found is not None else None
        if not remember:
            return value
        if len(self._coverages) >= COVERAGE_MEMO:
            self._coverages.clear()
        self._coverages[id(decision)] = (decision, value)  # the object is kept, so its id is not reused
        return value

    async def record(self, choice: Choice, served: str, prompt: str) -> None:
        """Keep the request's record once ``served`` answered; a Redis failure only costs this request
        its feedback."""
        parsed = parse_request_id(choice.request_id or "")
        if parsed is None or served not in self.models:
            return
        rid, task = parsed
        knobs = choice.knobs or self.default  # a model named explicitly: learnt for the default knobs
        try:
            await self.store.record(task, rid, self.models.index(served), knobs.variant(self.default), knobs.epsilon,
                                    knobs.lam, choice.predictions, prompt if self.settings.store_prompts else None)
            if choice.source == "final" and choice.coverage is not None:  # this request made it final
                await self._keep_coverage(task, choice.coverage)
        except StoreUnavailable as exc:
            log.debug("request %s not recorded for feedback: %s", choice.request_id, exc)

    async def explore(self, choice: Choice) -> Choice:
        """With probability ``feedback.explore``, a task's final decision gives way for this request
        to the model whose outcomes could overturn it soonest (source ``explore``); only a decision read
        back is diverted, not the request that made it final."""
        if (self.params.explore <= 0 or choice.task_id is None or choice.source not in READ_BACK
                or self.rng.random() >= self.params.explore):
            return choice
        decision = choice.decision
        if decision.model not in self.models or not (decision.expected or decision.s3):
            return choice
        try:
            outcomes = await self.store.outcomes(choice.task_id)
        except StoreUnavailable:
            return choice
        pick = fb.explore_pick(self._belief(decision), self.models.index(decision.model), outcomes.correct,
                               outcomes.counted, self.params)
        if pick is None:
            return choice
        model = self.models[pick]
        explored = replace(decision, model=model, ranking=[model, *(m for m in decision.ranking if m != model)])
        return replace(choice, decision=explored, source="explore")

    # -- feedback ----------------------------------------------------------------------------
    async def submit(self, request_id: str, score: float) -> Result:
        """Count one outcome (once per request ID) and revise the task's decision if the evidence
        says so. GatewayError 404 for an unknown or expired ID; StoreUnavailable while Redis is down."""
        parsed = parse_request_id(request_id)
        if parsed is None:
            metrics.FEEDBACK.labels("unknown").inc()
            raise not_found(request_id, "is not a request ID of a task (only requests with a task ID "
                                        "can be fed back)")
        rid, task = parsed
        counted = await self.store.add(task, rid, score, await self._predicted(task, rid))
        metrics.FEEDBACK.labels(counted.status).inc()
        if counted.status == "unknown" or counted.outcomes is None:
            raise not_found(request_id, f"is unknown or expired (records are kept {self.settings.ttl_s} s) "
                                        "or its task was deleted")
        revised = None
        if counted.status == "counted":
            revised = await self.revise(task, counted, counted.outcomes)
        return Result(request_id, counted.status, task, self.models[counted.model], revised)

    async def _predicted(self, task: str, rid: str) -> int | None:
        """The served model's thresholded prediction for a request recorded without one, from its kept
        prompt (policy ``agreement_to_bma`` with ``store_prompts``); None where there is none to make or
        the encoder fails (the outcome still counts, without its agreement)."""
        if self.predict is None:
            return None
        found = await self.store.unjudged_prompt(task, rid)
        if found is None:
            return None
        model, prompt = found
        try:
            g = await self.predict(prompt)
        except Exception as exc:  # an embedding failure must not lose the outcome
            log.warning("request %s.%s: its prompt could not be embedded for feedback: %s", rid, task, exc)
            return None
        return predicted_right(g, model)

    # -- coverage -----------------------------------------------------------------------------
    def coverage_of(self, decision: Decision, outcomes: Outcomes | None = None) -> cov.Coverage | None:
        """router_core's coverage of a task decision (with the served model's feedback agreement when
        ``outcomes`` has some, and its predictor's accuracy as measured by its judged outcomes where it
        has them); None for a decision without task scores."""
        if decision.u is None or decision.model not in decision.p_hat or decision.model not in self.models:
            return None
        agree, p = None, decision.p_hat[decision.model]
        served = self.models.index(decision.model)
        if outcomes is not None and outcomes.counted[served] > 0 and (decision.expected or decision.s3):
            belief = self._belief(decision)
            agree = cov.agreement(float(belief.mean[served]), float(outcomes.correct[served]),
                                  float(outcomes.counted[served]), float(np.hypot(belief.sigma, belief.level_sd)))
            measured = self.learned.measured_p(decision, outcomes.correct, outcomes.counted, outcomes.agree,
                                               outcomes.judged)
            p = p if measured is None else measured
        return cov.coverage(p, decision.u, self.learned.u_train, agree)

    async def _keep_coverage(self, task: str, value: float) -> None:
        below = await self.store.set_coverage(task, value, self.settings.coverage_threshold,
                                              self.settings.max_listed_tasks)
        metrics.TASKS_NEEDING_FEEDBACK.set(below)

    async def needing(self, below: float | None, limit: int) -> tuple[list[tuple[str, float]], int]:
        """Tasks (with their coverage) lowest first, under ``below`` when given; how many are."""
        rows, count = await self.store.covered(below, limit)
        if below == self.settings.coverage_threshold:
            metrics.TASKS_NEEDING_FEEDBACK.set(count)
        return rows, count

    def _belief(self, decision: Decision) -> fb.Belief:
        # a stored decision lists its models in ranking order; the prior is per model column
        return fb.Belief.of_decision(replace(decision, models=self.models), self.learned.calibration)

    async def revise(self, task: str, knobs: Counted, outcomes: Outcomes) -> Decision | None:
        """The task's revised decision under the knobs of the fed-back request if this call revised it
        (router_core decides, under the same cost knobs), else None."""
        variant = knobs.variant
        record = await self.store.final_record(task, variant)
        if record is None:
            return None
        current = Decision.from_dict(record["decision"])
        if current.model not in self.models or not (current.expected or current.s3):
            return None
        served = self.models.index(current.model)
        # first the outcomes as a measure of the predictors (feedback.policy), then as a posterior over accuracies
        rev = self.learned.revise_on_reliability(current, outcomes.correct, outcomes.counted, self.params,
                                                 knobs.epsilon, knobs.lam, self.costs, outcomes.agree,
                                                 outcomes.judged)
        if rev is None:
            extra = fb.cost_margins(self.costs, served, knobs.epsilon, knobs.lam)
            belief = self._belief(current)
            rev = fb.revise(belief, served, outcomes.correct, outcomes.counted, current.revision, self.params, extra)
            if rev is None:  # under the quality floor, a cheaper model whose own record clears it
                rev = fb.revise_to_cheaper(belief, served, outcomes.correct, outcomes.counted, current.revision,
                                           self.params, self.costs, knobs.epsilon)
        if rev is None:
            await self._update_coverage(task, current, outcomes)
            return None
        new_model = self.models[rev.model]
        rest = [self.models[int(i)] for i in np.argsort(-rev.mean, kind="stable") if int(i) != rev.model]
        new = await self._commit(task, variant, record, current, replace(current, model=new_model,
                                                                         ranking=[new_model, *rest]),
                                 rev.evidence(self.models), f"on its outcomes ({rev.rule} rule, P={rev.prob:.3f})")
        if new is not None:
            await self._update_coverage(task, new, outcomes)
        return new

    async def revise_on_labels(self, task: str, knobs: Sequence[Knobs] = (),
                               labelled: LabelledSamples | None = None) -> Decision | None:
        """The task's final decisions, the router section's and those of ``knobs`` (the aliases'),
        revised by its labelled samples when they arrive after a decision was made and another model now
        clearly leads under that decision's knobs (router_core decides: ``Router.revise_on_labels``). Each
        is replaced by compare-and-set and entered in its history, like an outcome revision. Returns the
        router section's revised decision, None where it did not change (or another process revised it).
        ``labelled``: the task's labelled samples where the caller has just read them."""
        if labelled is None:
            labelled = await self.store.store.labelled(task)
        if labelled is None:
            return None
        by_variant = {k.variant(self.default): k for k in (*knobs, self.default)}
        revised = {v: await self._revise_on_labels(task, v, k, labelled) for v, k in sorted(by_variant.items())}
        return revised.get("")

    async def _revise_on_labels(self, task: str, variant: str, knobs: Knobs,
                                labelled: LabelledSamples) -> Decision | None:
        record = await self.store.final_record(task, variant)
        if record is None:
            return None
        current = Decision.from_dict(record["decision"])
        new = self.learned.revise_on_labels(current, labelled, knobs.epsilon, knobs.lam, self.costs)
        if new is None:
            return None
        return await self._commit(task, variant, record, current, new, new.evidence, "by its labelled samples")

    async def _commit(self, task: str, variant: str, record: dict[str, Any], current: Decision, new: Decision,
                      evidence: dict[str, Any], why: str) -> Decision | None:
        """Replace the final ``record`` of ``variant`` (``current``, decoded) by ``new`` with its revision
        count one up, unless another process revised it first (then None); count and log it, and return
        what was stored."""
        new = replace(new, revision=current.revision + 1)
        if not await self.store.revise(task, variant, record, new, evidence):
            return None
        metrics.REVISIONS.labels(current.model, new.model).inc()
        log.info("task %s: decision%s revised from %s to %s %s", task, f" ({variant})" if variant else "",
                 current.model, new.model, why)
        return new

    async def _update_coverage(self, task: str, decision: Decision, outcomes: Outcomes) -> None:
        found = self.coverage_of(decision, outcomes)
        if found is not None:
            await self._keep_coverage(task, found.coverage)

    async def task_view(self, task: str, variant: str, decision: Decision | None) -> dict[str, Any]:
        """The task's outcomes per model, its decision history and its coverage (the tasks API)."""
        outcomes = await self.store.outcomes(task)
        found = self.coverage_of(decision, outcomes) if decision is not None else None
        return {"outcomes": outcomes.by_model(self.models), "history": await self.store.history(task, variant),
                "coverage": found.to_dict() if found is not None else None}

    async def forget(self, task: str, variants: list[str]) -> int:
        """Forget the task's outcomes, histories, request records and coverage (after its routing
        state: :meth:`FeedbackStore.forget`); how many keys went."""
        gone, below = await self.store.forget(task, variants, self.settings.coverage_threshold)
        metrics.TASKS_NEEDING_FEEDBACK.set(below)
        return gone
