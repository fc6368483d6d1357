"""Closed-loop routing: a task's own outcomes revise its decision, and only on evidence.

A task's decision is a guess from benchmark neighbours. Once the task runs, outcomes arrive for the
model that serves it (feedback on answers, labelled samples). This module turns the router's
prediction into a prior on the task's per-model accuracies, updates it with the task's outcomes
(:func:`router_core.calibration.posterior`) and decides whether the evidence says, with stated
confidence, that another model is better.

Why the rule looks the way it does: the gaps between models are small (0.02-0.05 of accuracy) and a
task's accuracies share a task-wide level (a hard task is hard for every model). A served model's
poor record is mostly news about that level, so it must not be read as "every other model, whose
prediction we never tested, is better". The prior therefore carries a shift shared by all models
(``level_sd``) next to each model's own uncertainty (``sigma``); a revision needs the posterior
probability that the other model beats the served one by ``margin`` to reach ``confidence``, the
served model to have ``min_outcomes`` outcomes, and the task to be under ``max_revisions``
(hysteresis and a cap: no bouncing between models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from . import calibration as cal
from . import scores as sc
from .decision import Decision

Array = NDArray[np.float64]

DEFAULT_SIGMA = 0.05  # per-model prior std where a decision comes without a calibration
# how outcomes revise a decision (docs/results.md, "Feedback that measures the predictors"): "outcome"
# (revise, below: the posterior over accuracies alone), "reliability_to_bma" (the outcomes first
# measure the predictors' accuracy p and re-make the paper's decision, router_core.reliability, which
# may only undo a departure from BMA; then the outcome rule), "reliability" (the same, in either
# direction), "agreement_to_bma" (reliability_to_bma with p measured by how often the served prompts'
# own predictions agreed with their outcomes, where those predictions are known); the default is the
# one the rule chose
POLICIES = ("outcome", "reliability_to_bma", "reliability", "agreement_to_bma")
DEFAULT_POLICY = "reliability_to_bma"


@dataclass(frozen=True)
class FeedbackParams:
    """The revision rule's knobs (docs/method.md, "Closed-loop revision")."""

    confidence: float = 0.9  # P(other beats served by margin) needed to revise
    margin: float = 0.01  # accuracy the other model must be ahead by, under that probability
    min_outcomes: int = 20  # outcomes of the served model before it can be replaced
    max_revisions: int = 2  # per task
    explore: float = 0.0  # share of requests sent to the model most likely to overturn the decision
    policy: str = DEFAULT_POLICY  # one of POLICIES
    # explore only while another model could still beat the served one by margin with probability
    # >= 1 - confidence (docs/results.md, "Exploration that stops once the evidence has ruled the others
    # out": the rule chose it over exploring for as long as the task runs, False here)
    explore_resolved: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), not {self.confidence}")
        if self.margin < 0 or self.min_outcomes < 1 or self.max_revisions < 0:
            raise ValueError("margin >= 0, min_outcomes >= 1 and max_revisions >= 0 are required")
        if not 0.0 <= self.explore < 1.0:
            raise ValueError(f"explore must be in [0, 1), not {self.explore}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")

    @property
    def to_bma_only(self) -> bool:
        """Whether the policy's p step may only undo a departure from BMA."""
        return self.policy in ("reliability_to_bma", "agreement_to_bma")

    @property
    def weighs_agreement(self) -> bool:
        """Whether the policy measures p by the outcomes' agreement with their prompts' predictions."""
        return self.policy == "agreement_to_bma"


@dataclass(frozen=True)
class Belief:
    """The prior on one task's per-model accuracies: the router's prediction and its uncertainty."""

    mean: Array  # (M,) expected accuracy per model
    sigma: float  # each model's own prior std
    level_sd: float  # std of the task-wide level all models share

    @classmethod
    def of_decision(cls, decision: Decision, calibration: cal.Calibration | None) -> "Belief":
        """From a decision record: its calibrated expected accuracies where it has them, else its S3
        (the paper's estimate of each model's accuracy); the spread from the router's calibration."""
        values = decision.expected or decision.s3
        if not values:
            raise ValueError("a per-task decision (with expected accuracies or S3) is needed")
        mean = np.array([values[m] for m in decision.models], dtype=np.float64)
        return cls.of_expected(mean, calibration)

    @classmethod
    def of_expected(cls, mean: Array, calibration: cal.Calibration | None) -> "Belief":
        if calibration is None:
            return cls(np.asarray(mean, dtype=np.float64), DEFAULT_SIGMA, cal.LEVEL_SD)
        return cls(np.asarray(mean, dtype=np.float64), max(calibration.sigma, 1e-3), calibration.level_sd)

    def posterior(self, correct: Array, counted: Array) -> tuple[Array, Array]:
        return cal.posterior(self.mean, self.sigma, correct, counted, self.level_sd)


def prob_better(mean: Array, cov: Array, other: int, current: int, margin: float = 0.0) -> float:
    """P(acc_other - acc_current > margin) under the joint normal posterior."""
    var = cov[other, other] + cov[current, current] - 2.0 * cov[other, current]
    diff = mean[other] - mean[current] - margin
    if var <= 1e-12:
        return 1.0 if diff > 0 else 0.0
    return sc.normal_cdf(diff / math.sqrt(var))


@dataclass(frozen=True)
class Revision:
    """A revised decision: the new model and the evidence behind it."""

    model: int
    previous: int
    prob: float  # P(new beats previous by margin)
    mean: Array  # posterior expected accuracy per model
    counted: Array  # outcomes per model behind it
    rule: str = "outcome"  # which rule revised it: "outcome" (revise) or "reliability" (router_core.reliability)

    def evidence(self, models: list[str]) -> dict[str, Any]:
        return {"rule": self.rule, "from": models[self.previous], "to": models[self.model],
                "prob_better": round(self.prob, 4),
                "posterior": {m: round(float(v), 4) for m, v in zip(models, self.mean)},
                "outcomes": {m: int(c) for m, c in zip(models, self.counted) if c > 0}}


def cost_margins(costs: Array | None, served: int, epsilon: float | None = None,
                 lam: float | None = None) -> Array | None:
    """Per model, the accuracy it must lead ``served`` by (on top of ``margin``) under the cost knobs
    the decision was made with: ``lam`` times its extra cost per query (a cheaper model needs less),
    and ``epsilon`` for any model (the floor let ``served`` trail the best by that much). None
    without knobs or costs: accuracy alone decides."""
    if costs is None or not (epsilon or lam):
        return None
    costs = np.asarray(costs, dtype=np.float64)
    extra = np.full(len(costs), float(epsilon or 0.0))
    if lam:
        extra += lam * (costs - costs[served])
    return extra


def revise(belief: Belief, served: int, correct: Array, counted: Array, revisions: int,
           params: FeedbackParams, extra: Array | None = None) -> Revision | None:
    """The revised pick, or None when the evidence does not say with ``confidence`` that another
    model is better than ``served`` (or the served model has too few outcomes, or the cap is hit).

    ``extra`` (:func:`cost_margins`): per model, what it must lead by besides ``margin`` when the
    decision was made under a cost knob, so a revision never undoes the knob's trade."""
    counted = np.asarray(counted, dtype=np.float64)
    if revisions >= params.max_revisions or counted[served] < params.min_outcomes:
        return None
    mean, cov = belief.posterior(np.asarray(correct, dtype=np.float64), counted)
    others = [m for m in range(len(mean)) if m != served]
    if not others:
        return None
    lead = np.zeros(len(mean)) if extra is None else np.asarray(extra, dtype=np.float64)
    best = max(others, key=lambda m: (mean[m] - lead[m], -m))
    prob = prob_better(mean, cov, best, served, params.margin + float(lead[best]))
    if prob < params.confidence:
        return None
    return Revision(best, served, prob, mean, counted)


def revise_to_cheaper(belief: Belief, served: int, correct: Array, counted: Array, revisions: int,
                      params: FeedbackParams, costs: Array | None, epsilon: float | None) -> Revision | None:
    """Under the quality floor (the ``epsilon`` knob: the cheapest model within epsilon of the best),
    the cheaper model that the task's evidence says clears it: the cheapest model, cheaper than
    ``served`` and with ``min_outcomes`` outcomes of its own, whose accuracy exceeds the best recorded
    model's (the highest posterior mean among those with ``min_outcomes`` outcomes, ``served``
    included) less ``epsilon`` plus ``margin`` with probability ``confidence``.

    The other direction of :func:`revise` (which, under the floor, asks a model to *lead* by epsilon):
    the product's promise of a smaller model when it is as good, kept once the evidence shows it. Both
    sides of the comparison are records, never a bare prediction: a model never served on the task
    neither qualifies nor sets the floor.
    """
    counted = np.asarray(counted, dtype=np.float64)
    if (not epsilon or costs is None or revisions >= params.max_revisions
            or counted[served] < params.min_outcomes):
        return None
    costs = np.nan_to_num(np.asarray(costs, dtype=np.float64), nan=np.inf)
    mean, cov = belief.posterior(np.asarray(correct, dtype=np.float64), counted)
    recorded = [m for m in range(len(mean)) if counted[m] >= params.min_outcomes]
    best = max(recorded, key=lambda m: (mean[m], -m))
    slack = params.margin - float(epsilon)  # the candidate may trail the best by epsilon - margin

    def clears(m: int) -> float:
        return 1.0 if m == best else prob_better(mean, cov, m, best, slack)

    cheaper = [m for m in range(len(mean)) if costs[m] < costs[served] and counted[m] >= params.min_outcomes]
    ok = [m for m in cheaper if clears(m) >= params.confidence]
    if not ok:
        return None
    pick = min(ok, key=lambda m: (costs[m], -mean[m], m))
    return Revision(pick, served, clears(pick), mean, counted)


def label_outcomes(labels: Array) -> tuple[Array, Array]:
    """(correct, counted) per model from a task's labelled prompts ((L, M), NaN where unlabelled)."""
    labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
    return np.nansum(labels, axis=0), (~np.isnan(labels)).sum(axis=0).astype(np.float64)


def with_label_evidence(decision: Decision, calibration: cal.Calibration | None, correct: Array,
                        counted: Array, params: FeedbackParams = FeedbackParams()) -> Decision:
    """The decision once a task's labelled prompts are weighed as what they are: a direct
    measurement of every model's accuracy on this task (issue 11, item 0).

    Labels measure every model on the same prompts, so the evidence is the same for all of them (no
    observed record is compared with a bare prediction). They go through the same rule as outcome
    feedback (:func:`revise`, with its confidence, margin and minimum count): with few labels the
    decision stays the zero-evidence one, with many it follows them. A revised decision says so
    (``method="labels"``, ``evidence``).
    """
    if not decision.s3 and not decision.expected:
        return decision
    served = list(decision.models).index(decision.model)
    rev = revise(Belief.of_decision(decision, calibration), served, correct, counted, 0, params)
    return decision if rev is None else revised_by_labels(decision, rev, decision.models)


def revised_by_labels(decision: Decision, rev: Revision, models: Sequence[str]) -> Decision:
    """``decision`` with the pick a task's labels revised it to (``rev``, over ``models``' columns):
    ``method="labels"``, the new model first in the ranking, the evidence kept."""
    models = list(models)
    new = models[rev.model]
    return replace(decision, model=new, method="labels", ranking=[new, *(m for m in decision.ranking if m != new)],
                   evidence=rev.evidence(models))


def explore_pick(belief: Belief, served: int, correct: Array, counted: Array,
                 params: FeedbackParams | None = None) -> int | None:
    """The model whose outcomes could overturn the decision soonest: the highest probability of
    beating the served model (None with a single model). With ``params.explore_resolved``, None once
    no other model beats the served one by ``params.margin`` with probability >= 1 - ``confidence``
    (the evidence has ruled them all out at the revision rule's own confidence)."""
    mean, cov = belief.posterior(np.asarray(correct, dtype=np.float64), np.asarray(counted, dtype=np.float64))
    others = [m for m in range(len(mean)) if m != served]
    if not others:
        return None
    if params is not None and params.explore_resolved and max(
            prob_better(mean, cov, m, served, params.margin) for m in others) < 1.0 - params.confidence:
        return None
    return max(others, key=lambda m: (prob_better(mean, cov, m, served), -m))
