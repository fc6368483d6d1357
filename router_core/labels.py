"""A task's labelled prompts as a direct measurement of every model's accuracy on it.

The default's labels path (docs/results.md, "A sixth labels candidate"; docs/method.md, "Few labels from
the new task (alpha), and labels as evidence"): each model's accuracy on the task has a Gaussian prior
centred on its S3 with the spread S3 has between the models of one training task
(:attr:`reliability.ErrorModel.score_sd`); its labels measure it with binomial noise. The model with the
highest posterior mean replaces the current pick when it leads by the paper's eta in probability. Every
model is labelled on the same prompts, so the comparison is evidence against evidence; few labels keep
the current pick, many follow them. :func:`revise_decision` is what ``Router.decide`` (a task not yet
final) and ``Router.revise_on_labels`` (a final one, in the gateway) call, and what the evaluation
scores as ``S3_label_posterior``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from . import feedback as fb
from . import scores as sc
from .decision import Decision, RoutingParams
from .reliability import MIN_SD, ErrorModel

Array = NDArray[np.float64]


def accuracy_posterior(s3: Array, correct: Array, counted: Array, score_sd: float) -> tuple[Array, Array]:
    """Each model's accuracy on the task given its labels: (posterior mean, posterior sd).

    Prior N(S3, score_sd^2) per model; the labels' c/n measures the accuracy with the binomial
    variance a(1 - a)/n at the prior's accuracy a (clipped to [0.02, 0.98], so no measurement counts
    as exact). A model without labels keeps its prior.
    """
    s3 = np.asarray(s3, dtype=np.float64)
    n = np.asarray(counted, dtype=np.float64)
    prior_prec = 1.0 / max(score_sd, MIN_SD) ** 2
    seen = n > 0
    safe_n = np.where(seen, n, 1.0)
    obs_prec = np.where(seen, 1.0 / sc.binomial_var(s3, safe_n), 0.0)
    rate = np.where(seen, np.asarray(correct, dtype=np.float64) / safe_n, 0.0)
    prec = prior_prec + obs_prec
    return (s3 * prior_prec + rate * obs_prec) / prec, np.sqrt(1.0 / prec)


def revision(s3: Array, correct: Array, counted: Array, score_sd: float, current: int, eta: float = sc.ETA,
             costs: Array | None = None, epsilon: float | None = None, lam: float | None = None
             ) -> fb.Revision | None:
    """The labels' pick: the model with the highest posterior accuracy (:func:`accuracy_posterior`;
    under the cost knobs, as ``scores.cost_aware_choice`` picks). It replaces the current pick only when
    Phi((mu(pick) - mu(current)) / sqrt(tau(pick)^2 + tau(current)^2)) >= ``eta``; None where
    ``current`` stays."""
    mu, tau = accuracy_posterior(s3, correct, counted, score_sd)
    if np.isnan(mu[current]):
        return None
    pick = sc.cost_aware_choice(np.where(np.isnan(mu), -np.inf, mu), costs, epsilon, lam)
    if pick == current:
        return None
    z = (float(mu[pick]) - float(mu[current])) / math.sqrt(float(tau[pick]) ** 2 + float(tau[current]) ** 2)
    prob = sc.normal_cdf(z)
    if prob < eta:
        return None
    return fb.Revision(pick, current, prob, mu, np.asarray(counted, dtype=np.float64), rule="labels")


def revise_decision(decision: Decision, models: Sequence[str], errors: ErrorModel, correct: Array,
                    counted: Array, routing: RoutingParams, costs: Array | None = None) -> Decision:
    """A paper-method decision once the task's labels (``correct`` of ``counted`` per model, in
    ``models`` order) are weighed against it; the same record where they leave the pick. A revised
    decision has ``method="labels"`` and its ``evidence`` (rule ``labels``)."""
    if not decision.s3 or decision.model not in models:
        return decision
    models = list(models)
    s3 = np.array([decision.s3.get(m, np.nan) for m in models], dtype=np.float64)
    rev = revision(s3, correct, counted, errors.score_sd, models.index(decision.model), routing.eta, costs,
                   routing.epsilon, routing.lam)
    return decision if rev is None else fb.revised_by_labels(decision, rev, models)
