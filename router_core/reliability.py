"""A task's outcomes as a measurement of its predictors' accuracy p, re-making the paper's decision.

The paper's S3 rests on p(m), how often model m's thresholded kNN predictor is right on the task:
S3(m) = p S2(m) + (1 - p)(1 - S2(m)). p is estimated from the task's distance to the benchmark pool
(Nadaraya-Watson over training tasks), and where that estimate is off S3 departs from the best model
on average (BMA) and loses (issue 7). Outcomes of a served model measure p directly: its observed
accuracy c/n is (1 - S2) + (2 S2 - 1) p plus noise. Because p_hat's errors are partly shared by all
models (a task far from the pool misleads every predictor), one model's outcomes also move the
others' p, through the shared part of the prior.

:class:`ErrorModel` holds the spreads of that Gaussian model, each measured on the training tasks only
(:func:`fit_error_model`); :func:`posterior_p` is the linear-Gaussian update; :func:`revise` re-makes the
paper's decision (argmax S3, then the eta test against BMA) with the posterior p, and
:func:`revise_decision` / :func:`with_label_evidence` apply it to a decision record (outcome feedback,
labelled samples; the latter was a labels candidate, not shipped). :func:`uncertain_pick` is the fallback
test on S3's measured error (the evaluation's candidate ``S3_uncertain``, not shipped); :func:`record_prior`
and :func:`posterior_pick` make the candidate ``S3_posterior``, :func:`measured_score_sd` and
:func:`combination_weight` the candidates ``S3_local_uncertain`` / ``S3_combined_uncertain`` (none
shipped). The shipped labels path is :mod:`router_core.labels`. Docs: docs/method.md, "Feedback that
measures the predictors".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from . import calibration as cal
from . import feedback as fb
from . import scores as sc
from .decision import Decision, RoutingParams, beats_bma, paper_pick

Array = NDArray[np.float64]

MIN_SD = sc.MIN_SD
DEFAULT_SCORE_SD = sc.DEFAULT_SCORE_SD


@dataclass(frozen=True)
class ErrorModel:
    """How far p_hat and the S3 identity miss, measured on training tasks (accuracy units)."""

    shared_sd: float  # the part of p_hat's error that all models of a task share (RMS)
    own_sd: float  # each model's own part
    identity_sd: float  # true accuracy minus S3 computed with the true p: the identity's own miss
    # true accuracy minus S3 with p_hat, its spread between models of one task: how far a difference of
    # S3 between two models can be trusted (the shared part moves no choice)
    score_sd: float = DEFAULT_SCORE_SD

    def to_dict(self) -> dict[str, float]:
        return {"shared_sd": self.shared_sd, "own_sd": self.own_sd, "identity_sd": self.identity_sd,
                "score_sd": self.score_sd}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ErrorModel":
        return cls(float(d["shared_sd"]), float(d["own_sd"]), float(d["identity_sd"]),
                   float(d.get("score_sd", DEFAULT_SCORE_SD)))


#: where a pool has too few tasks to measure anything (or an artifact predates the measurement)
DEFAULT_ERRORS = ErrorModel(shared_sd=0.05, own_sd=0.05, identity_sd=0.03, score_sd=DEFAULT_SCORE_SD)


def fit_error_model(u: Array, p: Array, s2: Array, accuracy: Array, usable: NDArray[np.bool_],
                    bandwidth: float = sc.BANDWIDTH, p_hats: Array | None = None) -> ErrorModel:
    """The spreads, from the usable tasks' held-out scores ((D,) u, (D, M) p, S2 and accuracy).

    Each usable task's p_hat comes from the *other* usable tasks (as a new task's would); its error
    r(d, m) = p(d, m) - p_hat(d, m) is split into the task's mean over models (shared: its RMS over
    tasks, less what the own part contributes to a mean of M) and the rest (own, with the M/(M-1)
    correction of a variance about a sample mean). ``p_hats``: :func:`held_out_p_hat` of the same
    arguments, where the caller has it already.
    """
    tasks = np.flatnonzero(usable)
    if len(tasks) < 3:
        return DEFAULT_ERRORS
    p_hats = (held_out_p_hat(u, p, usable, bandwidth) if p_hats is None else p_hats)[tasks]
    score_sd = measured_score_sd(sc.s3_from_s2(s2[tasks], p_hats), accuracy[tasks])
    r = np.asarray(p[tasks], dtype=np.float64) - p_hats  # (T, M), NaN where a model has no labels on a task
    count = (~np.isnan(r)).sum(axis=1)
    rows = count >= 2
    own_var = _within_task_var(r)
    if rows.sum() < 2 or own_var is None:
        return DEFAULT_ERRORS
    r, count = r[rows], count[rows]
    shared = np.nansum(r, axis=1) / count
    shared_var = max(float(np.mean(shared ** 2)) - own_var * float(np.mean(1.0 / count)), 0.0)
    miss = accuracy[tasks] - sc.s3_from_s2(s2[tasks], p[tasks])
    identity_var = float(np.nanmean(miss ** 2)) if np.any(~np.isnan(miss)) else DEFAULT_ERRORS.identity_sd ** 2
    return ErrorModel(max(float(np.sqrt(shared_var)), MIN_SD), max(float(np.sqrt(own_var)), MIN_SD),
                      max(float(np.sqrt(identity_var)), MIN_SD), score_sd)


def held_out_p_hat(u: Array, p: Array, usable: NDArray[np.bool_], bandwidth: float = sc.BANDWIDTH) -> Array:
    """(D, M): each usable task's p_hat from the *other* usable tasks, as a new task's would be (NaN rows
    for the unusable ones)."""
    out = np.full(np.shape(p), np.nan)
    for d in np.flatnonzero(usable):
        others = usable.copy()
        others[d] = False
        out[d], _ = sc.nadaraya_watson(float(u[d]), u[others], p[others], bandwidth)
    return out


def measured_score_sd(s3_hat: Array, accuracy: Array) -> float:
    """How far a difference of estimated S3 between two models of one task can be trusted: the spread
    over models of accuracy - S3_hat on training tasks ((T, M) each), M/(M-1) corrected and averaged over
    tasks (the part shared by all models of a task moves no choice). ``DEFAULT_SCORE_SD`` when nothing
    can be measured."""
    var = _within_task_var(np.asarray(accuracy, dtype=np.float64) - np.asarray(s3_hat, dtype=np.float64))
    return DEFAULT_SCORE_SD if var is None else max(float(np.sqrt(var)), MIN_SD)


def combination_weight(err_hat: Array, err_local: Array) -> float:
    """The weight w on p_hat in w p_hat + (1 - w) p_local that minimises the combined squared error on
    training tasks, from both estimates' errors there ((T, M), NaN-aware): (V_loc - C) / (V_hat + V_loc
    - 2C), clipped to [0, 1]; 0.5 where the two errors cannot be told apart (or nothing was measured)."""
    a, b = np.asarray(err_hat, dtype=np.float64), np.asarray(err_local, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if not ok.any():
        return 0.5
    a, b = a[ok], b[ok]
    v_hat, v_loc, c = float(np.mean(a * a)), float(np.mean(b * b)), float(np.mean(a * b))
    denom = v_hat + v_loc - 2.0 * c
    if denom <= 1e-12:
        return 0.5
    return float(min(1.0, max(0.0, (v_loc - c) / denom)))


def _within_task_var(x: Array) -> float | None:
    """The mean over rows (tasks) of each row's variance over its non-NaN columns (models), M/(M-1)
    corrected; rows with fewer than two values are skipped (None if none is left)."""
    have = ~np.isnan(x)
    count = have.sum(axis=1)
    rows = count >= 2
    if not rows.any():
        return None
    x, have, count = x[rows], have[rows], count[rows]
    mean = np.nansum(x, axis=1) / count
    dev = np.where(have, x - mean[:, None], 0.0)
    return float(np.mean((dev ** 2).sum(axis=1) / (count - 1)))


def uncertain_pick(s3: Array, argmax: int, bma: int, score_sd: float, eta: float = sc.ETA
                   ) -> tuple[int, float | None]:
    """The fallback test on the scores' measured error: ``argmax`` stays when
    Phi((S3[argmax] - S3[bma]) / (sqrt(2) score_sd)) >= eta, else BMA. Returns (pick, that probability;
    None when ``argmax`` is BMA)."""
    if argmax == bma:
        return bma, None
    prob = sc.measured_prob_beats(float(s3[argmax]) - float(s3[bma]), score_sd)
    return (argmax if prob >= eta else bma), prob


def record_prior(accuracy: Array) -> tuple[Array, float] | None:
    """Each model's accuracy relative to a task's mean over models, as the training tasks ((T, M),
    NaN-aware) record it: (its mean per model, the between-task sd pooled over models, T/(T-1)
    corrected). None where fewer than two tasks record any model twice."""
    acc = np.asarray(accuracy, dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and columns
        rel_acc = acc - np.nanmean(acc, axis=1, keepdims=True)
        mean = np.nanmean(rel_acc, axis=0)
    count = (~np.isnan(rel_acc)).sum(axis=0)
    ok = count >= 2
    if not ok.any():
        return None
    dev = np.where(np.isnan(rel_acc), 0.0, rel_acc - mean)
    var = (dev[:, ok] ** 2).sum(axis=0) / (count[ok] - 1)
    return mean, max(float(np.sqrt(np.mean(var))), MIN_SD)


def posterior_pick(s3: Array, prior_mean: Array, prior_sd: float, score_sd: float, bma: int,
                   eta: float = sc.ETA) -> int:
    """The model with the highest posterior relative accuracy, from the training record's prior
    (``prior_mean``, ``prior_sd``: :func:`record_prior`) and S3's deviation from its mean over models
    measured with error ``score_sd``; BMA unless Phi((mu(pick) - mu(BMA)) / (sqrt(2) tau)) >= ``eta``
    (tau: the posterior sd, the same for every model). Models without a prior mean or an S3 are skipped."""
    s3 = np.asarray(s3, dtype=np.float64)
    prior_mean = np.asarray(prior_mean, dtype=np.float64)
    w_prior, w_s3 = 1.0 / max(prior_sd, MIN_SD) ** 2, 1.0 / max(score_sd, MIN_SD) ** 2
    mu = (prior_mean * w_prior + (s3 - np.nanmean(s3)) * w_s3) / (w_prior + w_s3)
    if np.isnan(mu[bma]) or np.all(np.isnan(mu)):
        return bma
    pick = int(np.nanargmax(mu))
    tau = math.sqrt(1.0 / (w_prior + w_s3))
    z = (float(mu[pick]) - float(mu[bma])) / (math.sqrt(2.0) * tau)
    return pick if sc.normal_cdf(z) >= eta else bma


def posterior_p(p_hat: Array, s2: Array, errors: ErrorModel, correct: Array,
                counted: Array, agree: Array | None = None, judged: Array | None = None) -> tuple[Array, Array]:
    """The task's p per model given outcomes (``correct`` of ``counted`` per model): mean and covariance.

    Prior: p ~ N(p_hat, shared_sd^2 11' + own_sd^2 I). Each model j with outcomes gives one
    observation c_j/n_j - (1 - S2_j) = (2 S2_j - 1) p_j + e_j, with var(e_j) the binomial variance of
    c_j/n_j (at the prior's predicted accuracy) plus identity_sd^2. A model whose S2 is 0.5 says
    nothing about p (its accuracy does not depend on it), and the update knows that.

    ``agree`` of ``judged`` (per model; policy ``agreement_to_bma``): outcomes whose prompt's thresholded
    prediction is known, and how far each agreed with it (y where gbar = 1, 1 - y where gbar = 0). That is
    p measured by its definition: a model with judged outcomes is observed as agree/judged = p + e,
    var(e) the binomial variance at p_hat (clipped to [0.02, 0.98]), no identity term; the others keep
    the accuracy observation.
    """
    p_hat = np.asarray(p_hat, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    counted = np.asarray(counted, dtype=np.float64)
    M = len(p_hat)
    prior_cov = errors.shared_sd ** 2 * np.ones((M, M)) + errors.own_sd ** 2 * np.eye(M)
    obs = np.flatnonzero(counted > 0)
    if not len(obs):
        return p_hat.copy(), prior_cov
    slope = 2.0 * s2[obs] - 1.0
    noise = sc.binomial_var((1.0 - s2[obs]) + slope * p_hat[obs], counted[obs]) + errors.identity_sd ** 2
    innovation = correct[obs] / counted[obs] - (1.0 - s2[obs]) - slope * p_hat[obs]
    if agree is not None and judged is not None:  # p observed directly where predictions are known
        k = np.asarray(judged, dtype=np.float64)[obs]
        direct = k > 0
        k_safe = np.where(direct, k, 1.0)
        slope = np.where(direct, 1.0, slope)
        noise = np.where(direct, sc.binomial_var(p_hat[obs], k_safe), noise)
        innovation = np.where(direct, np.asarray(agree, dtype=np.float64)[obs] / k_safe - p_hat[obs], innovation)
    H = np.zeros((len(obs), M))
    H[np.arange(len(obs)), obs] = slope
    S = H @ prior_cov @ H.T + np.diag(noise)
    gain = np.linalg.solve(S, H @ prior_cov).T  # prior_cov H' S^-1 (S and prior_cov symmetric)
    mean = np.clip(p_hat + gain @ innovation, 0.0, 1.0)
    return mean, prior_cov - gain @ H @ prior_cov


def revise(n: int, s2: Array, p_hat: Array, bma: int, served: int, errors: ErrorModel, correct: Array,
           counted: Array, revisions: int, fparams: fb.FeedbackParams, params: RoutingParams | None = None,
           costs: Array | None = None, agree: Array | None = None, judged: Array | None = None
           ) -> fb.Revision | None:
    """The S3 method's decision (:func:`decision.paper_pick`, under ``params``' method, cost knobs and eta) re-made
    with the posterior p, when it differs from ``served``.

    Only the paper's own decision is re-made (``revisions`` 0): once a task's decision was revised, by
    this rule or on direct evidence of accuracy (:func:`feedback.revise`), that evidence outranks
    the paper's scores, and re-making the paper's decision would undo it.

    Returns the revision (rule ``reliability``; ``mean``: S3 under the posterior p; ``prob``: P(new pick
    beats BMA), or for a return to BMA P(the served model does not)), or None: a decision already
    revised, too few outcomes of the served model (``fparams.min_outcomes``), no revision allowed
    (``max_revisions`` 0), the same pick, or a pick other than BMA under a policy that only returns to
    it. ``agree`` / ``judged`` (:func:`posterior_p`'s) count only under a policy that weighs them.
    """
    params = params or RoutingParams(method="paper")
    counted = np.asarray(counted, dtype=np.float64)
    if revisions > 0 or fparams.max_revisions < 1 or counted[served] < fparams.min_outcomes:
        return None
    if not fparams.weighs_agreement:
        agree = judged = None
    p, _ = posterior_p(p_hat, s2, errors, correct, counted, agree, judged)
    s2 = np.asarray(s2, dtype=np.float64)
    n_pos = s2 * n
    s3 = sc.s3_from_s2(s2, p)
    pick, _, prob = paper_pick(n, n_pos, s3, p, bma, costs, params, errors.score_sd)
    if pick == served or (fparams.to_bma_only and pick != bma):
        return None
    if pick == bma:  # how sure the test is that the served model does not beat BMA
        prob = 1.0 - beats_bma(n, n_pos, s3, p, served, bma, costs, params, errors.score_sd)
    return fb.Revision(pick, served, 1.0 if prob is None else prob, s3, counted, "reliability")


def revise_decision(decision: Decision, models: Sequence[str], errors: ErrorModel, correct: Array, counted: Array,
                    fparams: fb.FeedbackParams, routing: RoutingParams, costs: Array | None = None,
                    agree: Array | None = None, judged: Array | None = None) -> fb.Revision | None:
    """:func:`revise` on a decision record (outcomes per model in ``models`` order) under the policy of
    ``fparams``; None for the ``outcome`` policy, a decision that is not the paper's S3 (or its
    fallback) or was already revised, or evidence that leaves the pick where it is. ``agree`` /
    ``judged``: the outcomes' agreement with their predictions (:func:`revise`)."""
    if fparams.policy == "outcome" or decision.method not in ("S3", "BMA-fallback") or decision.bma is None:
        return None
    models = list(models)
    scores = _scores_of(decision, models)
    if scores is None or decision.bma not in models:
        return None
    return revise(decision.n, *scores, models.index(decision.bma), models.index(decision.model), errors, correct,
                  counted, decision.revision, fparams, routing, costs, agree, judged)


def _scores_of(decision: Decision, models: list[str]) -> tuple[Array, Array] | None:
    """(S2, p_hat) per model of ``models`` from a decision record; None where it lacks one of them or
    its model is not among them."""
    if decision.model not in models or any(m not in decision.s2 or m not in decision.p_hat for m in models):
        return None
    return np.array([decision.s2[m] for m in models]), np.array([decision.p_hat[m] for m in models])


def measured_p(decision: Decision, models: Sequence[str], errors: ErrorModel, correct: Array, counted: Array,
               agree: Array, judged: Array) -> float | None:
    """The decision's model's predictor accuracy p on the task as its judged outcomes (answers whose
    prompt's prediction is known, ``agree`` of ``judged`` per model in ``models`` order) measure it: the
    posterior mean of :func:`posterior_p`. None where that model has no judged outcome or the decision
    lacks a model's S2 or p_hat."""
    models = list(models)
    scores = _scores_of(decision, models)
    if scores is None or np.asarray(judged, dtype=np.float64)[models.index(decision.model)] <= 0:
        return None
    s2, p_hat = scores
    p, _ = posterior_p(p_hat, s2, errors, correct, counted, agree, judged)
    return float(p[models.index(decision.model)])


def with_label_evidence(decision: Decision, models: Sequence[str], errors: ErrorModel,
                        calibration: cal.Calibration | None, correct: Array, counted: Array, routing: RoutingParams,
                        costs: Array | None = None, fparams: fb.FeedbackParams = fb.FeedbackParams()) -> Decision:
    """A task's labelled prompts weighed as both things they measure: first the predictors' accuracy p
    (:func:`revise_decision` under the shipped feedback policy), then, where that leaves the pick, each
    model's accuracy (:func:`feedback.with_label_evidence`). A revised decision has ``method="labels"``
    and its ``evidence``."""
    rev = revise_decision(decision, models, errors, correct, counted, fparams, routing, costs)
    if rev is None:
        return fb.with_label_evidence(decision, calibration, correct, counted, fparams)
    return fb.revised_by_labels(decision, rev, models)
