"""The default decision's maths: each model's expected accuracy on a new task.

The paper's S3 ranks models by a score and then tests the top one against the best model on
average (BMA) with a reliability estimate that is often wrong out of distribution. Here the
router instead *learns from its own pool how much its scores are worth*:

* prior: each model's mean accuracy over the training tasks (its argmax is BMA);
* signal: the task's kNN scores (e.g. S1) centred per model (``score - its mean over training
  tasks``) and per task (minus the mean over models, which no pick depends on);
* calibration: a least-squares weight ``beta`` mapping the centred scores of the pool's *held-out*
  tasks to their centred true accuracies (every training task's scores come from a pool without
  that task, :mod:`router_core.loto`), so ``beta`` says how far a score difference moves accuracy;
* strength: a multiplier of ``beta`` chosen from :data:`STRENGTHS` by an inner leave-one-task-out
  over the training tasks (the strength whose picks were most accurate on tasks the fit did not
  see; ties go to the smaller strength, 0 meaning "always BMA"). A pool whose scores do not predict
  held-out accuracy therefore routes to BMA by construction.

expected_m = prior_m + strength * sum_f beta_f * centred_f,m is the posterior mean of model m's
accuracy on the task under a Gaussian model whose residual spread ``sigma`` is measured on the
same held-out fits; labelled prompts of the task itself update it (:func:`with_labels`).
Everything here is a pure function over arrays (shapes: D tasks, M models, F features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

STRENGTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
LEVEL_SD = 0.1  # the task-wide shift's std where an artifact predates its measurement


@dataclass(frozen=True)
class Calibration:
    """What a router learned about its own scores (stored in the artifact)."""

    features: tuple[str, ...]  # task-level scores used, e.g. ("s1",)
    prior: Array  # (M,) mean accuracy over the training tasks
    centre: Array  # (F, M) mean of each score over the training tasks
    beta: Array  # (F,) accuracy per unit of centred score
    strength: float  # chosen multiplier of beta (0: always the prior's argmax, BMA)
    sigma: float  # residual std of the held-out fit, accuracy units
    inner: dict[str, float] = field(default_factory=dict)  # inner-LOTO accuracy per strength
    # std over the training tasks of a task's mean accuracy over models: the task-wide shift that
    # the centred fit cannot see and that all models share (artifacts without it: LEVEL_SD)
    level_sd: float = LEVEL_SD

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "prior": [float(x) for x in self.prior],
                "centre": [[float(x) for x in row] for row in self.centre],
                "beta": [float(x) for x in self.beta], "strength": self.strength, "sigma": self.sigma,
                "inner": dict(self.inner), "level_sd": self.level_sd}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        return cls(features=tuple(d["features"]), prior=np.asarray(d["prior"], dtype=np.float64),
                   centre=np.asarray(d["centre"], dtype=np.float64).reshape(len(d["features"]), -1),
                   beta=np.asarray(d["beta"], dtype=np.float64), strength=float(d["strength"]),
                   sigma=float(d["sigma"]), inner={str(k): float(v) for k, v in d.get("inner", {}).items()},
                   level_sd=float(d.get("level_sd", LEVEL_SD)))


def _task_means(x: Array, rows: NDArray[np.bool_]) -> Array:
    with np.errstate(invalid="ignore"):
        out: Array = np.nanmean(x[rows], axis=0)
    return out


def centred(x: Array, centre: Array) -> Array:
    """Scores minus each model's training mean, minus the mean over models (per task row)."""
    xc = x - centre
    with np.errstate(invalid="ignore"):
        row: Array = np.nanmean(xc, axis=-1, keepdims=True)
    out: Array = xc - row
    return out


def _fit(features: Sequence[Array], accuracy: Array, rows: NDArray[np.bool_]
         ) -> tuple[Array, Array, Array, float]:
    """prior, centre, beta and residual sigma from the tasks in ``rows``."""
    prior = np.nan_to_num(_task_means(accuracy, rows))
    centre = np.vstack([_task_means(f, rows) for f in features])
    y = centred(accuracy[rows], prior).ravel()
    cols = [centred(f[rows], c).ravel() for f, c in zip(features, centre)]
    X = np.stack(cols, axis=1)
    ok = ~np.isnan(y) & ~np.isnan(X).any(axis=1)
    if ok.sum() <= X.shape[1]:
        return prior, centre, np.zeros(X.shape[1]), 0.0
    beta = np.linalg.lstsq(X[ok], y[ok], rcond=None)[0]
    sigma = float(np.sqrt(np.mean((y[ok] - X[ok] @ beta) ** 2)))
    return prior, centre, np.asarray(beta, dtype=np.float64), sigma


def predict(prior: Array, centre: Array, beta: Array, strength: float, x: Array) -> Array:
    """Expected accuracy of every model from one task's scores ``x`` (F, M)."""
    adj = np.zeros_like(prior)
    for f in range(len(beta)):
        adj = adj + beta[f] * np.nan_to_num(centred(np.asarray(x[f], dtype=np.float64), centre[f]))
    out: Array = prior + strength * adj
    return out


def best(expected: Array) -> int:
    """argmax, first index on ties (so the prior's order decides between equals)."""
    return int(np.nanargmax(expected))


def fit(features: Mapping[str, Array], accuracy: Array, names: Sequence[str],
        strengths: Sequence[float] = STRENGTHS, rows: NDArray[np.bool_] | None = None) -> Calibration:
    """Fit the calibration on the tasks in ``rows`` (default all) of (D, M) held-out scores.

    ``features[name][d]`` must be task d's scores computed by a pool *without* task d.
    The strength is chosen by leave-one-task-out over those tasks: for each task c, the fit on the
    others predicts c's pick at every strength; the strength with the highest mean accuracy of
    those picks wins, ties to the smaller one.
    """
    accuracy = np.asarray(accuracy, dtype=np.float64)
    D = accuracy.shape[0]
    rows = np.ones(D, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    feats = [np.asarray(features[n], dtype=np.float64) for n in names]
    tasks = np.flatnonzero(rows)
    totals = np.zeros(len(strengths))
    for c in tasks:
        inner = rows.copy()
        inner[c] = False
        if inner.sum() < 2:
            continue
        prior, centre, beta, _ = _fit(feats, accuracy, inner)
        for i, s in enumerate(strengths):
            pick = best(predict(prior, centre, beta, s, np.stack([f[c] for f in feats])))
            totals[i] += np.nan_to_num(accuracy[c, pick])
    if len(tasks) < 3:  # nothing to validate a fit on: trust the prior alone
        totals = np.where(np.asarray(strengths) == min(strengths), 1.0, 0.0)
    scores = np.round(totals / max(len(tasks), 1), 9)
    chosen = min(range(len(strengths)), key=lambda i: (-scores[i], strengths[i]))
    prior, centre, beta, sigma = _fit(feats, accuracy, rows)
    with np.errstate(invalid="ignore"):
        levels = np.nanmean(accuracy[rows], axis=1)
    levels = levels[~np.isnan(levels)]
    level_sd = float(levels.std()) if len(levels) >= 2 else LEVEL_SD
    return Calibration(features=tuple(names), prior=prior, centre=centre, beta=beta,
                       strength=float(strengths[chosen]), sigma=sigma,
                       inner={f"{s:g}": float(v) for s, v in zip(strengths, scores)}, level_sd=level_sd)


def expected_accuracy(cal: Calibration, x: Array) -> Array:
    """The calibrated expected accuracy of every model for one task's scores ``x`` (F, M)."""
    return predict(cal.prior, cal.centre, cal.beta, cal.strength, np.asarray(x, dtype=np.float64))


def with_labels(expected: Array, sigma: float, correct: Array, counted: Array) -> Array:
    """Posterior mean after ``counted[m]`` labelled prompts of the task, ``correct[m]`` of them right.

    A normal prior N(expected_m, sigma^2), independent per model, meets the observed accuracy with
    its binomial variance (:func:`posterior` with no shared shift). With few labels the prior
    dominates, with many the labels do.
    """
    return posterior(expected, sigma, correct, counted)[0]


def observed(expected: Array, correct: Array, counted: Array) -> tuple[Array, Array]:
    """Observed accuracy per model and its variance a(1-a)/count.

    The accuracy is shrunk a quarter of a count toward the prior mean so that 0/n and n/n do not
    claim zero variance; models without a count get NaN.
    """
    counted = np.asarray(counted, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (np.asarray(correct, dtype=np.float64) + 0.25 * expected) / (counted + 0.25)
        var = np.maximum(a * (1.0 - a), 0.01) / counted
    ok = counted > 0
    return np.where(ok, a, np.nan), np.where(ok, var, np.nan)


def posterior(expected: Array, sigma: float, correct: Array, counted: Array,
              level_sd: float = 0.0) -> tuple[Array, Array]:
    """Posterior mean (M,) and covariance (M, M) of a task's per-model accuracies given outcomes.

    Prior: accuracy = expected + a task-wide shift shared by every model (std ``level_sd``) + a
    per-model residual (std ``sigma``), i.e. covariance level_sd^2 * 11' + sigma^2 * I. Outcomes
    (``correct[m]`` of ``counted[m]``, fractional scores allowed) are observations with binomial
    variance (:func:`observed`). Gaussian conditioning; with ``level_sd = 0`` each model is updated
    on its own evidence only. With a shared shift, one model's record moves every model's level but
    hardly their differences: a model that was never observed is compared on its prior, not as if
    the observed model's shortfall were a fact about it alone.
    """
    mu = np.asarray(expected, dtype=np.float64)
    M = len(mu)
    prior_cov = (max(sigma, 1e-3) ** 2) * np.eye(M) + (level_sd ** 2) * np.ones((M, M))
    a, var = observed(mu, correct, counted)
    k = np.flatnonzero(~np.isnan(a))
    if len(k) == 0:
        return mu.copy(), prior_cov
    gain = np.linalg.solve(prior_cov[np.ix_(k, k)] + np.diag(var[k]), prior_cov[k, :]).T  # (M, K)
    mean: Array = mu + gain @ (a[k] - mu[k])
    cov: Array = prior_cov - gain @ prior_cov[k, :]
    return mean, cov
