"""The decision record, and the two ways to reach one: per task (S3 + BMA fallback) and per prompt.

:class:`Decision` is the one shape every caller sees: the CLI prints it, the gateway caches it and
explains it in headers and bodies, the evaluation reads its picks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

import numpy as np

from . import scores as sc
from .state import TaskAggregates


P_ESTIMATORS = ("nadaraya-watson", "local")
# how a decision was reached: the task-level S3 pick, its fallback to the best model on average,
# the per-prompt argmax; and two a gateway makes without scores: the best model on average for a
# prompt without a task ("BMA"), and a model the caller named ("explicit")
Method = Literal["S3", "BMA-fallback", "instance", "BMA", "explicit"]


@dataclass(frozen=True)
class RoutingParams:
    """The method's knobs; defaults are the paper's (see docs/method.md)."""

    k: int = sc.K_NEIGHBOURS
    u_k: int = sc.U_NEIGHBOURS
    bandwidth: float = sc.BANDWIDTH
    eta: float = sc.ETA
    draws: int = sc.DRAWS
    seed: int = 0
    epsilon: float | None = None  # cost knob: cheapest within epsilon of the best score
    lam: float | None = None  # cost knob: maximise score - lam * USD per query
    fallback: bool = True  # the eta test against BMA
    # how p (the predictors' accuracy on the task) is estimated: the paper's Nadaraya-Watson
    # smoother over u, or "local": held-out agreement around the task's prompts (docs/method.md)
    p_estimator: str = "nadaraya-watson"

    def __post_init__(self) -> None:
        if self.p_estimator not in P_ESTIMATORS:
            raise ValueError(f"p_estimator must be one of {', '.join(P_ESTIMATORS)}, not {self.p_estimator!r}")

    def with_costs(self, epsilon: float | None, lam: float | None) -> "RoutingParams":
        return replace(self, epsilon=epsilon, lam=lam)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Decision:
    """Which model serves, why, and the numbers behind it."""

    model: str
    method: Method
    models: Sequence[str]
    ranking: list[str]  # every model, best first: the fallback order for forwarding
    n: int = 1
    u: float | None = None
    s1: dict[str, float] = field(default_factory=dict)
    s2: dict[str, float] = field(default_factory=dict)
    s3: dict[str, float] = field(default_factory=dict)
    p_hat: dict[str, float] = field(default_factory=dict)
    p_std: dict[str, float] = field(default_factory=dict)
    g: dict[str, float] = field(default_factory=dict)  # per-instance decisions only
    argmax_model: str | None = None  # the score's pick before the fallback
    bma: str | None = None
    prob_beats_bma: float | None = None

    @property
    def scores(self) -> dict[str, float]:
        """The score the pick was made on (S3 for tasks, g for single prompts)."""
        return self.s3 if self.method != "instance" else self.g

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "method": self.method, "n": self.n,
                               "ranking": list(self.ranking)}
        for key in ("u", "argmax_model", "bma", "prob_beats_bma"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        for key in ("s1", "s2", "s3", "p_hat", "p_std", "g"):
            val = getattr(self, key)
            if val:
                out[key] = val
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Decision":
        return cls(model=d["model"], method=d["method"], models=list(d.get("ranking", [])),
                   ranking=list(d.get("ranking", [])), n=int(d.get("n", 1)), u=d.get("u"),
                   s1=d.get("s1", {}), s2=d.get("s2", {}), s3=d.get("s3", {}),
                   p_hat=d.get("p_hat", {}), p_std=d.get("p_std", {}), g=d.get("g", {}),
                   argmax_model=d.get("argmax_model"), bma=d.get("bma"),
                   prob_beats_bma=d.get("prob_beats_bma"))


def _named(models: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {m: round(float(v), 6) for m, v in zip(models, values)}


def _ranking(models: Sequence[str], first: int, values: np.ndarray) -> list[str]:
    order = [int(i) for i in np.argsort(-values, kind="stable") if int(i) != first]
    return [models[first]] + [models[i] for i in order]


def decide_task(agg: TaskAggregates, models: Sequence[str], u_train: np.ndarray, p_train: np.ndarray,
                bma: int, costs: np.ndarray | None, params: RoutingParams,
                p_override: np.ndarray | None = None) -> Decision:
    """The task-level pick: argmax S3 (under the cost knobs), then the eta test against BMA.

    ``p_override`` replaces p_hat (the evaluation's "S3 with true p").
    """
    ts = sc.task_scores(agg.n, agg.sum_g, agg.sum_gbar, agg.sum_u, u_train, p_train, params.bandwidth)
    if p_override is None and params.p_estimator == "local" and agg.sum_pl is not None:
        p_override = agg.sum_pl / agg.n
    p = ts.p_hat if p_override is None else np.asarray(p_override, dtype=np.float64)
    s3 = ts.s3 if p_override is None else sc.s3_from_s2(ts.s2, p)
    pick = sc.cost_aware_choice(s3, costs, params.epsilon, params.lam)
    argmax_pick = pick
    method: Method = "S3"
    prob = None
    if params.fallback and pick != bma:
        margin = sc.fallback_margin(agg.n, pick, bma, costs, params.epsilon, params.lam)
        prob = sc.prob_beats(agg.n, ts.n_pos[pick], p[pick], ts.n_pos[bma], p[bma], -margin,
                             params.draws, params.seed)
        if prob < params.eta:
            pick, method = bma, "BMA-fallback"
    return Decision(model=models[pick], method=method, models=list(models),
                    ranking=_ranking(models, pick, s3), n=agg.n, u=round(ts.u, 6),
                    s1=_named(models, ts.s1), s2=_named(models, ts.s2), s3=_named(models, s3),
                    p_hat=_named(models, p), p_std=_named(models, ts.p_std),
                    argmax_model=models[argmax_pick], bma=models[bma], prob_beats_bma=prob)


def decide_instance(g_row: np.ndarray, models: Sequence[str], train_mean: np.ndarray,
                    costs: np.ndarray | None, params: RoutingParams) -> Decision:
    """The per-prompt pick: argmax g with the 0.01 x training-mean tie-break."""
    pick = sc.instance_choice(g_row, train_mean, costs, params.epsilon, params.lam)
    keyed = np.asarray(g_row) + sc.TIE_BREAK * np.nan_to_num(train_mean)
    return Decision(model=models[pick], method="instance", models=list(models),
                    ranking=_ranking(models, pick, keyed), g=_named(models, g_row))
