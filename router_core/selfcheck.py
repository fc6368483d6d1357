"""The paper's fallback threshold, checked on the training tasks before it is trusted.

S3 departs from the best model on average (BMA) when P(its pick beats BMA) >= eta. How far that
probability can be trusted depends on the benchmark pool: on some pools p_hat overrates the
predictors and departures lose. A pool's own tasks say which: decide each training task as the paper
would (p_hat from the other training tasks, BMA over them) and see, for each candidate eta, how
accurate the decisions would have been. :func:`inner_eta` picks the threshold with the highest mean
true accuracy over those tasks (ties to the more cautious one). Only training tasks are used: the
evaluation calls it in a pool with the held-out task removed everywhere (``loto.Worlds``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from . import scores as sc
from .loto import TaskFeatures

#: candidate thresholds: the paper's 0.6, stricter ones, and 1.01 (never depart: a probability is <= 1)
ETAS: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.01)
TIE = 1e-9


def departures(feats: TaskFeatures, sizes: NDArray[np.int64], usable: NDArray[np.bool_],
               bandwidth: float = sc.BANDWIDTH, draws: int = sc.DRAWS, seed: int = 0
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """For each usable task decided from the other usable tasks: P(S3 pick beats BMA) (1 where the
    pick is BMA), the pick's true accuracy and BMA's."""
    tasks = np.flatnonzero(usable)
    prob = np.ones(len(tasks))
    acc_pick = np.zeros(len(tasks))
    acc_bma = np.zeros(len(tasks))
    for i, d in enumerate(tasks):
        others = usable.copy()
        others[d] = False
        p_hat, _ = sc.nadaraya_watson(float(feats.u[d]), feats.u[others], feats.p[others], bandwidth)
        s2 = np.nan_to_num(feats.s2[d])
        pick = int(np.argmax(sc.s3_from_s2(s2, p_hat)))
        bma = sc.best_on_average(feats.accuracy[others])
        n = int(sizes[d])
        if pick != bma:
            prob[i] = sc.prob_beats(n, s2[pick] * n, p_hat[pick], s2[bma] * n, p_hat[bma], 0.0, draws, seed)
        acc_pick[i] = np.nan_to_num(feats.accuracy[d, pick])
        acc_bma[i] = np.nan_to_num(feats.accuracy[d, bma])
    return prob, acc_pick, acc_bma


def inner_eta(feats: TaskFeatures, sizes: NDArray[np.int64], usable: NDArray[np.bool_],
              bandwidth: float = sc.BANDWIDTH, draws: int = sc.DRAWS, seed: int = 0,
              etas: tuple[float, ...] = ETAS) -> float:
    """The threshold in ``etas`` whose decisions were most accurate on the usable tasks (ties: larger)."""
    if usable.sum() < 3:  # too few tasks to learn anything: the paper's
        return etas[0]
    prob, acc_pick, acc_bma = departures(feats, sizes, usable, bandwidth, draws, seed)
    scores = [float(np.mean(np.where(prob >= eta, acc_pick, acc_bma))) for eta in etas]
    best = max(scores)
    return max(eta for eta, s in zip(etas, scores) if s >= best - TIE)


def pick(argmax: int, bma: int, prob: float | None, eta: float) -> int:
    """The S3 pick under threshold ``eta`` (``prob``: P(argmax beats BMA); None when argmax is BMA)."""
    if argmax == bma or (prob is not None and prob >= eta):
        return argmax
    return bma
