"""The decision record, and the ways to reach one: per task (the calibrated default, or the paper's
S3 + BMA fallback) and per prompt.

:class:`Decision` is the one shape every caller sees: the CLI prints it, the gateway caches it and
explains it in headers and bodies, the evaluation reads its picks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

import numpy as np

from . import calibration as cal
from . import scores as sc
from .state import TaskAggregates


P_ESTIMATORS = ("nadaraya-watson", "local")
# the task-level methods: "uncertain" (the default: the paper's S3 pick, its fallback test on the error
# S3 makes between the models of the pool's own held-out tasks, scores.measured_prob_beats), "paper" (S3
# with the eta fallback, exactly as Shnitzer et al.) and "calibrated" (expected accuracy from scores
# calibrated on the pool's held-out tasks, router_core.calibration)
METHODS = ("uncertain", "paper", "calibrated")
S3_METHODS = ("uncertain", "paper")  # the methods that pick by S3 (decide_task) and differ in the fallback test
# chosen by the resampled-pools rule in docs/results.md ("Resampled model pools": S3_uncertain won; the
# four-report rule before it had kept the paper's method, S3_nested); its pick also passes the paper's
# binomial test since "The ten-prompt shortfall on more streams" (RoutingParams.binomial_guard)
DEFAULT_METHOD = "uncertain"
# how the paper's method uses a task's labelled prompts, chosen by the rules in docs/results.md ("Labels
# as evidence", then "A sixth labels candidate": S3_label_posterior won): they are weighed as direct
# evidence of each model's accuracy (a posterior per model, S3 with its measured spread as the prior:
# router_core.labels.revise_decision) and do not join the neighbour pool (the paper's alpha,
# which moved S3 below its zero-label pick on routerbench-subset). The calibrated method keeps both.
LABEL_EVIDENCE = True
LABELS_IN_POOL = False
# the scores the calibrated method reads, chosen by the rule in docs/results.md
DEFAULT_FEATURES: tuple[str, ...] = ("s1",)
FEATURES = ("s1", "s2", "s3_local")
# how a decision was reached: the task-level S3 pick, its fallback to the best model on average,
# the per-prompt argmax; and two a gateway makes without scores: the best model on average for a
# prompt without a task ("BMA"), and a model the caller named ("explicit"); "labels": the task's own
# labelled prompts revised the pick (router_core.labels.revise_decision)
Method = Literal["calibrated", "S3", "BMA-fallback", "labels", "instance", "BMA", "explicit"]


@dataclass(frozen=True)
class RoutingParams:
    """The method's knobs (see docs/method.md); the paper's defaults for k, u_k, h and eta."""

    method: str = DEFAULT_METHOD  # one of METHODS
    features: tuple[str, ...] = DEFAULT_FEATURES  # scores the calibrated method reads
    k: int = sc.K_NEIGHBOURS
    u_k: int = sc.U_NEIGHBOURS
    bandwidth: float = sc.BANDWIDTH
    eta: float = sc.ETA
    draws: int = sc.DRAWS
    seed: int = 0
    epsilon: float | None = None  # cost knob: cheapest within epsilon of the best score
    lam: float | None = None  # cost knob: maximise score - lam * USD per query
    fallback: bool = True  # the eta test against BMA
    # the uncertain test also counts the lead's sampling variance from the n prompts seen (candidate
    # S3_uncertain_n, docs/results.md "A correction to test: the lead's sampling error")
    lead_sampling: bool = False
    # the uncertain test's pick must also pass the paper's binomial test on the n prompts seen: the shipped
    # default since the rule in docs/results.md "The ten-prompt shortfall on more streams" chose it
    # (candidate S3_uncertain_guard); False gives the test without it (the evaluation's S3_uncertain)
    binomial_guard: bool = True
    # how p (the predictors' accuracy on the task) is estimated: the paper's Nadaraya-Watson
    # smoother over u, or "local": held-out agreement around the task's prompts (docs/method.md)
    p_estimator: str = "nadaraya-watson"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        object.__setattr__(self, "features", tuple(self.features))  # a JSON list reads back as a tuple
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise ValueError(f"features must be a non-empty subset of {', '.join(FEATURES)}, not {list(self.features)}")
        if self.p_estimator not in P_ESTIMATORS:
            raise ValueError(f"p_estimator must be one of {', '.join(P_ESTIMATORS)}, not {self.p_estimator!r}")

    def with_costs(self, epsilon: float | None, lam: float | None) -> "RoutingParams":
        return replace(self, epsilon=epsilon, lam=lam)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["features"] = list(self.features)
        return out


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
    expected: dict[str, float] = field(default_factory=dict)  # calibrated: expected accuracy per model
    g: dict[str, float] = field(default_factory=dict)  # per-instance decisions only
    argmax_model: str | None = None  # the score's pick before the fallback
    bma: str | None = None
    prob_beats_bma: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # what revised the pick (method "labels")
    revision: int = 0  # how many times a task's outcomes revised it (router_core.feedback; 0: never)

    @property
    def scores(self) -> dict[str, float]:
        """The score the pick was made on (expected accuracy, S3, or g for single prompts)."""
        if self.method == "calibrated" or (self.method == "labels" and self.expected):
            return self.expected
        return self.s3 if self.method != "instance" else self.g

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "method": self.method, "n": self.n,
                               "ranking": list(self.ranking)}
        if self.revision:
            out["revision"] = self.revision
        for key in ("u", "argmax_model", "bma", "prob_beats_bma"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        for key in ("expected", "s1", "s2", "s3", "p_hat", "p_std", "g", "evidence"):
            val = getattr(self, key)
            if val:
                out[key] = val
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Decision":
        return cls(model=d["model"], method=d["method"], models=list(d.get("ranking", [])),
                   ranking=list(d.get("ranking", [])), n=int(d.get("n", 1)), u=d.get("u"),
                   s1=d.get("s1", {}), s2=d.get("s2", {}), s3=d.get("s3", {}),
                   p_hat=d.get("p_hat", {}), p_std=d.get("p_std", {}), expected=d.get("expected", {}),
                   g=d.get("g", {}),
                   argmax_model=d.get("argmax_model"), bma=d.get("bma"),
                   prob_beats_bma=d.get("prob_beats_bma"), evidence=d.get("evidence", {}),
                   revision=int(d.get("revision", 0)))


def _named(models: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {m: round(float(v), 6) for m, v in zip(models, values)}


def _ranking(models: Sequence[str], first: int, values: np.ndarray) -> list[str]:
    order = [int(i) for i in np.argsort(-values, kind="stable") if int(i) != first]
    return [models[first]] + [models[i] for i in order]


def decide_task(agg: TaskAggregates, models: Sequence[str], u_train: np.ndarray, p_train: np.ndarray,
                bma: int, costs: np.ndarray | None, params: RoutingParams,
                p_override: np.ndarray | None = None, score_sd: float | None = None) -> Decision:
    """The task-level pick: argmax S3 (under the cost knobs), then the method's test against BMA (the
    paper's binomial one, or for ``uncertain`` the one on ``score_sd``: :func:`beats_bma`).

    ``p_override`` replaces p_hat (the evaluation's "S3 with true p").
    """
    ts = sc.task_scores(agg.n, agg.sum_g, agg.sum_gbar, agg.sum_u, u_train, p_train, params.bandwidth)
    if p_override is None and params.p_estimator == "local" and agg.sum_pl is not None:
        p_override = agg.sum_pl / agg.n
    p = ts.p_hat if p_override is None else np.asarray(p_override, dtype=np.float64)
    s3 = ts.s3 if p_override is None else sc.s3_from_s2(ts.s2, p)
    pick, argmax_pick, prob = paper_pick(agg.n, ts.n_pos, s3, p, bma, costs, params, score_sd)
    method: Method = "S3" if pick == argmax_pick else "BMA-fallback"
    return Decision(model=models[pick], method=method, models=list(models),
                    ranking=_ranking(models, pick, s3), n=agg.n, u=round(ts.u, 6),
                    s1=_named(models, ts.s1), s2=_named(models, ts.s2), s3=_named(models, s3),
                    p_hat=_named(models, p), p_std=_named(models, ts.p_std),
                    argmax_model=models[argmax_pick], bma=models[bma], prob_beats_bma=prob)


def paper_pick(n: int, n_pos: np.ndarray, s3: np.ndarray, p: np.ndarray, bma: int, costs: np.ndarray | None,
               params: RoutingParams, score_sd: float | None = None) -> tuple[int, int, float | None]:
    """The S3 methods' pick from a task's scores: argmax S3 (under the cost knobs), then the eta test
    against BMA (:func:`beats_bma`). Returns (pick, the argmax before the test, P(argmax beats BMA) or
    None)."""
    pick = sc.cost_aware_choice(s3, costs, params.epsilon, params.lam)
    argmax_pick, prob = pick, None
    if params.fallback and pick != bma:
        prob = beats_bma(n, n_pos, s3, p, pick, bma, costs, params, score_sd)
        if prob < params.eta:
            pick = bma
    return pick, argmax_pick, prob


def beats_bma(n: int, n_pos: np.ndarray, s3: np.ndarray, p: np.ndarray, pick: int, bma: int,
              costs: np.ndarray | None, params: RoutingParams, score_sd: float | None = None) -> float:
    """P(``pick`` beats BMA), by the method's test: the paper's (each model's count of correct answers
    drawn as if p and S2 were exact) or, for ``uncertain``, S3's lead read against the error S3 makes
    between the models of training tasks (``score_sd``; ``scores.DEFAULT_SCORE_SD`` where not measured),
    and with ``binomial_guard`` (the default) the lesser of that and the paper's: the measured test knows
    S3's systematic error, the binomial one what a handful of prompts can show.
    Under the cost knobs BMA must lead by ``scores.fallback_margin`` (answers; per prompt for the
    measured test)."""
    margin = sc.fallback_margin(n, pick, bma, costs, params.epsilon, params.lam)

    def binomial() -> float:
        return sc.prob_beats(n, n_pos[pick], p[pick], n_pos[bma], p[bma], -margin, params.draws, params.seed)

    if params.method != "uncertain":
        return binomial()
    sd = sc.DEFAULT_SCORE_SD if score_sd is None else score_sd
    extra = sc.lead_sampling_var(n, n_pos, p, pick, bma) if params.lead_sampling else 0.0
    measured = sc.measured_prob_beats(float(s3[pick]) - float(s3[bma]) + margin / max(n, 1), sd, extra)
    return min(measured, binomial()) if params.binomial_guard else measured


def task_features(agg: TaskAggregates, p_local: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The calibrated method's scores of one task from its running sums (router_core.loto.TaskFeatures)."""
    s2 = agg.sum_gbar / agg.n
    if p_local is None:
        p_local = agg.sum_pl / agg.n if agg.sum_pl is not None else np.full(len(s2), np.nan)
    return {"s1": agg.sum_g / agg.n, "s2": s2, "s3_local": sc.s3_from_s2(s2, p_local)}


def decide_calibrated(agg: TaskAggregates, models: Sequence[str], calibration: cal.Calibration,
                      u_train: np.ndarray, p_train: np.ndarray, bma: int, costs: np.ndarray | None,
                      params: RoutingParams, labelled: tuple[np.ndarray, np.ndarray] | None = None) -> Decision:
    """The default task-level pick: the highest expected accuracy (under the cost knobs).

    ``labelled``: (correct, counted) per model from labelled prompts of this task, which update
    the expected accuracies as direct evidence (calibration.with_labels).
    """
    if agg.n <= 0:
        raise ValueError("a task needs at least one prompt")
    ts = sc.task_scores(agg.n, agg.sum_g, agg.sum_gbar, agg.sum_u, u_train, p_train, params.bandwidth)
    feats = task_features(agg)
    x = np.stack([feats[f] for f in calibration.features])
    expected = cal.expected_accuracy(calibration, x)
    if labelled is not None:
        expected = cal.with_labels(expected, calibration.sigma, labelled[0], labelled[1])
    pick = sc.cost_aware_choice(expected, costs, params.epsilon, params.lam)
    # its reliability estimate: the local one where the sums keep it, else the paper's
    p = agg.sum_pl / agg.n if agg.sum_pl is not None else ts.p_hat
    return Decision(model=models[pick], method="calibrated", models=list(models),
                    ranking=_ranking(models, pick, expected), n=agg.n, u=round(ts.u, 6),
                    s1=_named(models, ts.s1), s2=_named(models, ts.s2), s3=_named(models, ts.s3),
                    p_hat=_named(models, p), p_std=_named(models, ts.p_std),
                    expected=_named(models, expected), argmax_model=models[cal.best(expected)],
                    bma=models[bma])


def decide_instance(g_row: np.ndarray, models: Sequence[str], train_mean: np.ndarray,
                    costs: np.ndarray | None, params: RoutingParams) -> Decision:
    """The per-prompt pick: argmax g with the 0.01 x training-mean tie-break."""
    pick = sc.instance_choice(g_row, train_mean, costs, params.epsilon, params.lam)
    keyed = np.asarray(g_row) + sc.TIE_BREAK * np.nan_to_num(train_mean)
    return Decision(model=models[pick], method="instance", models=list(models),
                    ranking=_ranking(models, pick, keyed), g=_named(models, g_row))
