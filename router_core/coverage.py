"""How far the router's prediction for a task can be trusted: one number in [0, 1] per task.

The paper's task score already carries two warnings, and outcome feedback adds a third:

- ``reliability``: the estimated accuracy p of the chosen model's kNN correctness predictor on this
  task (``Decision.p_hat``; once fed-back answers of that model were judged against their prompts'
  predictions, the p they measure, ``reliability.measured_p``), rescaled so that a coin (0.5) is 0 and
  an always-right predictor 1;
- ``closeness``: how the task's mean distance to its benchmark neighbours (``Decision.u``) compares
  with the benchmark tasks' own (the router's ``u_train``): the share of benchmark tasks at least as
  far from their neighbours, so 1 is "closer than any benchmark task", 0 "farther than all of them";
- ``agreement`` (only once outcomes of the served model arrived): how well its observed accuracy
  agrees with the prediction, the two-sided normal tail of the difference in units of its standard
  deviation (the prior's spread plus the binomial noise of the observation, :func:`calibration.observed`).

Coverage is their geometric mean: any one signal near 0 pulls it down, and it is 1 only when all
are. It says where labels or feedback would help most; it does not change a decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import calibration as cal

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Coverage:
    """The coverage of one task and the signals behind it."""

    coverage: float
    reliability: float
    closeness: float
    agreement: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if v is None else round(float(v), 4)) for k, v in self.__dict__.items()}


def reliability(p_hat: float) -> float:
    return float(np.clip(2.0 * (p_hat - 0.5), 0.0, 1.0))


def closeness(u: float, u_train: Array) -> float:
    """Share of the benchmark tasks at least as far from their neighbours as this task (``u``)."""
    u_train = np.asarray(u_train, dtype=np.float64)
    u_train = u_train[~np.isnan(u_train)]
    if len(u_train) == 0:
        return 0.0
    return float(np.mean(u_train >= u))


def agreement(expected: float, correct: float, counted: float, prior_sd: float) -> float | None:
    """P(|N(0, 1)| >= z) for the gap between the observed and the predicted accuracy of one model;
    None without outcomes."""
    if counted <= 0:
        return None
    a, var = cal.observed(np.array([expected]), np.array([correct]), np.array([counted]))
    z = abs(float(a[0]) - expected) / math.sqrt(prior_sd ** 2 + float(var[0]))
    return math.erfc(z / math.sqrt(2.0))


def coverage(p_hat: float, u: float, u_train: Array, agree: float | None = None) -> Coverage:
    r, c = reliability(p_hat), closeness(u, u_train)
    signals = [r, c] + ([agree] if agree is not None else [])
    value = float(np.prod(signals) ** (1.0 / len(signals)))
    return Coverage(value, r, c, agree)
