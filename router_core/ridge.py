"""A learned linear head: each model's correctness predicted from the prompt embedding by ridge regression.

The paper's kNN predictor looks at five neighbours; this head fits one linear map from the embedding
(and an intercept) to every model's 0/1 label over the whole pool, in one solve. Being linear, a task's
score R(b, m) (the mean prediction over its prompts) is the head applied to the task's mean embedding,
so serving needs only O(models) running sums of per-prompt predictions, like S1.

Its two constants, the ridge penalty and the margin over the best model on average (BMA) a pick needs,
are chosen by leave-one-task-out over the training tasks only (:func:`inner_scores`). Each task's
sufficient statistics (X'X, X'Y, its mean embedding) are kept apart (:class:`Grams`), so a fit without
any set of tasks is a subtraction and one solve. docs/results.md, "Tenth and eleventh candidates".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import scores as sc

#: the ridge penalties and fallback margins the inner leave-one-task-out chooses from (fixed in the rule)
LAMBDAS: tuple[float, ...] = (1.0, 10.0, 100.0)
TAUS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, math.inf)
TIE = 1e-9
CHUNK = 32
MIN_TRAIN = 3  # fewer training tasks measure nothing: the most cautious constants

Array = NDArray[np.float64]


def with_intercept(vectors: NDArray[np.floating]) -> Array:
    """(N, d + 1): the embeddings and a constant 1, the head's inputs."""
    return np.hstack([np.asarray(vectors, dtype=np.float64), np.ones((len(vectors), 1))])


@dataclass
class Grams:
    """Per-task sufficient statistics of the head's least-squares fit."""

    xtx: Array  # (D, d+1, d+1)
    xty: Array  # (D, d+1, M)
    mean_x: Array  # (D, d+1) each task's mean input (zeros for a task without prompts)

    @classmethod
    def of_pool(cls, vectors: NDArray[np.floating], task_of: NDArray[np.int64], labels: Array,
                n_tasks: int) -> "Grams":
        """Statistics of every task; a missing label counts as the model's mean over the pool."""
        x = with_intercept(vectors)
        with np.errstate(invalid="ignore"):
            means = np.nan_to_num(np.nanmean(labels, axis=0), nan=0.0)
        y = np.where(np.isnan(labels), means[None, :], labels)
        dim, m = x.shape[1], y.shape[1]
        xtx, xty, mean_x = np.zeros((n_tasks, dim, dim)), np.zeros((n_tasks, dim, m)), np.zeros((n_tasks, dim))
        for d in range(n_tasks):
            rows = task_of == d
            if rows.any():
                xd = x[rows]
                xtx[d], xty[d], mean_x[d] = xd.T @ xd, xd.T @ y[rows], xd.mean(axis=0)
        return cls(xtx, xty, mean_x)

    def weights(self, tasks: NDArray[np.int64] | list[int], lam: float) -> Array:
        """(d+1, M) head fitted on ``tasks``, the intercept unpenalised."""
        a = self.xtx[tasks].sum(axis=0)
        return solve(a, self.xty[tasks].sum(axis=0), lam)


def penalty(dim: int, lam: float) -> Array:
    """lam on every input but the intercept (the last)."""
    p = np.full(dim, lam)
    p[-1] = 0.0
    return np.diag(p)


def solve(xtx: Array, xty: Array, lam: float) -> Array:
    """Ridge weights from summed statistics (stacked arrays solve in one call)."""
    return np.asarray(np.linalg.solve(xtx + penalty(xtx.shape[-1], lam), xty), dtype=np.float64)


def pick(r: Array, bma: int, tau: float) -> int:
    """argmax of the scores, kept when it leads BMA's score by more than ``tau``; else BMA."""
    best = int(np.argmax(r))
    return best if best == bma or r[best] - r[bma] > tau else bma


def inner_scores(grams: Grams, accuracy: Array, train: NDArray[np.int64], lambdas: tuple[float, ...] = LAMBDAS,
                 taus: tuple[float, ...] = TAUS) -> dict[tuple[float, float], float]:
    """For each (lambda, tau): the mean true accuracy of the decisions on the ``train`` tasks, each task
    decided by a head and a BMA from the other ``train`` tasks. The heads are solved ``CHUNK`` tasks at a
    time, which bounds the solves' stacked temporaries; the statistics themselves (and their sum over
    ``train``, which copies them once) grow with the number of tasks. Fewer than ``MIN_TRAIN`` tasks
    measure nothing: no scores."""
    train = np.asarray(train, dtype=np.int64)
    if len(train) < MIN_TRAIN:
        return {}
    total_xtx, total_xty = grams.xtx[train].sum(axis=0), grams.xty[train].sum(axis=0)
    bmas = [sc.best_on_average(accuracy[np.setdiff1d(train, [t])]) for t in train]
    score: dict[tuple[float, float], float] = {}
    for lam in lambdas:
        r = np.empty((len(train), total_xty.shape[1]))
        for start in range(0, len(train), CHUNK):
            part = train[start:start + CHUNK]
            w = solve(total_xtx[None] - grams.xtx[part], total_xty[None] - grams.xty[part], lam)  # (T, d+1, M)
            r[start:start + CHUNK] = np.einsum("td,tdm->tm", grams.mean_x[part], w)
        for tau in taus:
            accs = [np.nan_to_num(accuracy[t, pick(r[i], bmas[i], tau)]) for i, t in enumerate(train)]
            score[(lam, tau)] = float(np.mean(accs))
    return score


def best_pair(score: dict[tuple[float, float], float], taus: tuple[float, ...],
              lambdas: tuple[float, ...] = LAMBDAS) -> tuple[float, float]:
    """The most accurate (lambda, tau) with tau in ``taus`` (ties: the larger tau, then the larger lambda);
    without scores, the most cautious pair."""
    allowed = {key: s for key, s in score.items() if key[1] in taus}
    if not allowed:
        return lambdas[-1], taus[-1]
    best = max(allowed.values())
    return max((key for key, s in allowed.items() if s >= best - TIE), key=lambda key: (key[1], key[0]))


#: the two candidates and the margins each may choose from
CANDIDATE_TAUS: dict[str, tuple[float, ...]] = {"ridge": (0.0,), "ridge_selfcheck": TAUS}


def held_out_picks(grams: Grams, accuracy: Array, b: int, usable: NDArray[np.bool_]) -> dict[str, int]:
    """The two candidates' picks for held-out task ``b`` from the ``usable`` tasks other than b:
    ``ridge`` (tau 0, lambda by inner leave-one-task-out) and ``ridge_selfcheck`` (both chosen), from
    one inner leave-one-task-out."""
    train = np.flatnonzero(usable & (np.arange(len(usable)) != b))
    bma = sc.best_on_average(accuracy[train])
    score = inner_scores(grams, accuracy, train)
    out = {}
    for name, taus in CANDIDATE_TAUS.items():
        lam, tau = best_pair(score, taus)
        r = grams.mean_x[b] @ grams.weights(train, lam)
        out[name] = pick(r, bma, tau)
    return out
