"""The router: a benchmark pool behind a neighbour index, and the decisions it makes.

A :class:`Router` answers three questions:

* ``predict(vectors)``: g (predicted correctness of every model) and u contributions per prompt;
* ``decide(aggregates)``: the task-level pick from a task's running sums;
* ``decide_instance(g_row)``: the per-prompt pick.

It is built by :func:`build_router` and persisted by :mod:`router_core.artifact`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import loto
from .data import BenchmarkData
from .calibration import Calibration
from .calibration import fit as fit_calibration
from .decision import (DEFAULT_METHOD, LABEL_EVIDENCE, LABELS_IN_POOL, METHODS, S3_METHODS, Decision,
                       RoutingParams, decide_calibrated, decide_instance, decide_task)
from .embed import Encoder
from . import feedback as fb
from . import labels as label_evidence
from . import reliability as rel
from .feedback import label_outcomes
from .index import ExactIndex, HnswIndex, NeighbourIndex
from .scores import best_on_average, knn_correctness, local_predictor_accuracy, prompt_distance
from .state import TaskAggregates

EXACT_BELOW = 2000  # pools smaller than this are searched exactly


@dataclass
class LabelledSamples:
    """A few labelled prompts of the task being routed (the paper's alpha), joining the pool."""

    vectors: np.ndarray  # (L, dim)
    labels: np.ndarray  # (L, M), NaN where unlabelled

    def __len__(self) -> int:
        return len(self.vectors)

    def outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        """(correct, counted) per model: the labels as a direct measurement of the task's accuracies."""
        return label_outcomes(self.labels)


@dataclass
class Observation:
    """Per-prompt predictions: g (n, M), u (n,), and local p rows (n, M) when kept."""

    g: np.ndarray
    u: np.ndarray
    p_local: np.ndarray | None = None

    def aggregates(self) -> TaskAggregates:
        return TaskAggregates.from_rows(self.g, self.u, self.p_local)


@dataclass
class Router:
    models: list[str]
    vectors: np.ndarray  # (N, dim) pool embeddings
    labels: np.ndarray  # (N, M)
    task_of: np.ndarray  # (N,) index into task_names
    task_names: list[str]
    u_train: np.ndarray  # (D,)
    p_train: np.ndarray  # (D, M)
    task_accuracy: np.ndarray  # (D, M)
    train_mean: np.ndarray  # (M,)
    bma: int
    costs: np.ndarray | None  # (M,) USD per query, from the data
    params: RoutingParams
    index: NeighbourIndex
    meta: dict[str, Any] = field(default_factory=dict)  # encoder, text field, datasets, version
    agree: np.ndarray | None = None  # (N, M) held-out agreement of gbar with y (the local p estimate)
    calibration: Calibration | None = None  # the calibrated method's fit (None: the paper's method only)
    errors: rel.ErrorModel = rel.DEFAULT_ERRORS  # how far p_hat misses on the pool's held-out tasks

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unsaved"))

    @property
    def bma_model(self) -> str:
        return self.models[self.bma]

    @property
    def keeps_local_p(self) -> bool:
        """Whether a task's sums include the local p estimate (its estimator or a feature needs it)."""
        return self.params.p_estimator == "local" or self.params.method == "calibrated"

    # -- prediction ---------------------------------------------------------------------------
    def neighbours(self, vectors: np.ndarray, labelled: LabelledSamples | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbour ids, distances and the label matrix the ids index into."""
        width = max(self.params.k, self.params.u_k)
        ids, dists = self.index.query(vectors, width)
        if labelled is None or len(labelled) == 0:
            return ids, dists, self.labels
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        extra_d = (1.0 - q @ labelled.vectors.T).astype(np.float32)
        extra_ids = np.arange(len(labelled))[None, :].repeat(len(q), 0) + len(self.labels)
        all_ids = np.concatenate([ids, extra_ids], axis=1)
        all_d = np.concatenate([dists, extra_d], axis=1)
        order = np.argsort(all_d, axis=1, kind="stable")[:, :width]
        return (np.take_along_axis(all_ids, order, 1), np.take_along_axis(all_d, order, 1),
                np.vstack([self.labels, labelled.labels.astype(np.float32)]))

    def predict(self, vectors: np.ndarray, labelled: LabelledSamples | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(g, u): (n, M) predicted correctness and (n,) distance contributions."""
        obs = self.observe(vectors, labelled)
        return obs.g, obs.u

    @property
    def labels_join_pool(self) -> bool:
        """Whether a task's labelled prompts join its neighbour pool (the paper's alpha): for the
        calibrated method, and for the paper's only where ``LABELS_IN_POOL`` (the router's own method
        decides, as a task's running sums are shared by every alias)."""
        return LABELS_IN_POOL or self.params.method == "calibrated"

    def observe(self, vectors: np.ndarray, labelled: LabelledSamples | None = None) -> "Observation":
        """Everything a task keeps of its prompts: g, u, and the local p rows when the router uses them."""
        if not self.labels_join_pool:
            labelled = None  # weighed as evidence by decide() instead
        ids, dists, labels = self.neighbours(vectors, labelled)
        g = knn_correctness(ids[:, : self.params.k], labels, self.train_mean)
        u = prompt_distance(dists, self.params.u_k)
        p_local = None
        if self.keeps_local_p and self.agree is not None:
            agree = self.agree
            if len(labels) > len(agree):  # a task's labelled samples carry no held-out agreement
                agree = np.vstack([agree, np.full((len(labels) - len(agree), agree.shape[1]), np.nan)])
            p_local = local_predictor_accuracy(ids[:, : self.params.u_k], agree, np.full(len(self.models), 0.5))
        return Observation(g, u, p_local)

    def aggregate(self, vectors: np.ndarray, labelled: LabelledSamples | None = None) -> TaskAggregates:
        return self.observe(vectors, labelled).aggregates()

    # -- decisions ----------------------------------------------------------------------------
    @property
    def sizes(self) -> np.ndarray | None:
        """Model size (billions of parameters) per model, from the data's models.json, closed models
        counted as the largest known size (``BenchmarkData.size_costs``); None where none is known."""
        vals = self.meta.get("params_b")
        return None if not vals else np.asarray(vals, dtype=np.float64)

    def cost_unit(self, costs: np.ndarray | None = None) -> str | None:
        """What the costs the router decides under are: given or the data's prices (``usd_per_query``),
        else model size standing in (``params_b``), else None (no knob can apply)."""
        if costs is not None or self.costs is not None:
            return "usd_per_query"
        return "params_b" if self.sizes is not None else None

    def effective_costs(self, costs: np.ndarray | None) -> np.ndarray | None:
        """The caller's prices, else the data's, else model size as the stand-in cost."""
        if costs is not None:
            return np.asarray(costs, dtype=np.float64)
        return self.costs if self.costs is not None else self.sizes

    def check_knobs(self, epsilon: float | None, lam: float | None, costs: np.ndarray | None = None) -> None:
        """ValueError for a cost knob that cannot apply: ``epsilon`` needs prices or model sizes,
        ``lam`` (USD per query) needs prices."""
        unit = self.cost_unit(costs)
        if epsilon and unit is None:
            raise ValueError("epsilon needs costs: give prices, or data with prices (cost) or model sizes "
                             "(params_b in models.json)")
        if lam and unit != "usd_per_query":
            raise ValueError("lambda is in USD per query and needs prices: the data has none "
                             f"({'only model sizes' if unit else 'no costs'}); use epsilon, or give prices")

    def resolve_method(self, method: str | None) -> str:
        """The task-level method a caller asks for: None is the router's own, ``default`` is
        ``DEFAULT_METHOD``; ValueError for an unknown one, or ``calibrated`` without a calibration."""
        if method is None:
            return self.params.method
        chosen = DEFAULT_METHOD if method == "default" else method
        if chosen not in METHODS:
            raise ValueError(f"method must be one of default, {', '.join(METHODS)}; not {method!r}")
        if chosen == "calibrated" and self.calibration is None:
            raise ValueError("the router artifact was built without a calibration, so the calibrated method "
                             "cannot be used; rebuild it with 'llm-router build'")
        return chosen

    def use_method(self, method: str | None) -> None:
        """Make ``method`` (see :meth:`resolve_method`) the router's own."""
        self.params = replace(self.params, method=self.resolve_method(method))

    def _params(self, epsilon: float | None, lam: float | None, method: str | None = None) -> RoutingParams:
        """The router's params with the caller's cost knobs and method, where given."""
        params = self.params.with_costs(self.params.epsilon if epsilon is None else epsilon,
                                        self.params.lam if lam is None else lam)
        return params if method is None else replace(params, method=self.resolve_method(method))

    def decide(self, agg: TaskAggregates, epsilon: float | None = None, lam: float | None = None,
               costs: np.ndarray | None = None, method: str | None = None,
               labelled: LabelledSamples | None = None) -> Decision:
        """The task's pick from its aggregates (knobs and method default to the router's own).

        The method decides: the calibrated one, or the paper's S3 + fallback (also used by artifacts
        that carry no calibration). ``labelled``: the task's labelled prompts, weighed as direct
        evidence of each model's accuracy: the calibrated method's posterior, and for the paper's, where
        ``LABEL_EVIDENCE`` is on, each model's posterior accuracy from its S3 and its labels
        (:func:`labels.revise_decision`; docs/results.md, "A sixth labels candidate"; they join
        the pool only where :attr:`labels_join_pool`).
        """
        params = self._params(epsilon, lam, method)
        self.check_knobs(params.epsilon, params.lam, costs)
        evidence = labelled.outcomes() if labelled is not None and len(labelled) else None
        if params.method == "calibrated" and self.calibration is not None:
            return decide_calibrated(agg, self.models, self.calibration, self.u_train, self.p_train, self.bma,
                                     self.effective_costs(costs), params, labelled=evidence)
        decision = decide_task(agg, self.models, self.u_train, self.p_train, self.bma,
                               self.effective_costs(costs), params, score_sd=self.errors.score_sd)
        if evidence is None or not LABEL_EVIDENCE:
            return decision
        return label_evidence.revise_decision(decision, self.models, self.errors, *evidence, params,
                                              self.effective_costs(costs))

    def revise_on_labels(self, decision: Decision, labelled: LabelledSamples, epsilon: float | None = None,
                         lam: float | None = None, costs: np.ndarray | None = None) -> Decision | None:
        """A task's final paper-method decision once labelled prompts arrive after it was made: each
        model's posterior accuracy from its S3 and the labels, against the current pick
        (:func:`labels.revise_decision`, the labels path :meth:`decide` takes for a task not yet
        final). None where the labels leave the pick where it is (or the decision has no S3)."""
        if not LABEL_EVIDENCE or not len(labelled) or not decision.s3 or decision.expected:
            return None  # the calibrated method's decisions weigh labels by their own posterior (decide)
        params = self._params(epsilon, lam, "paper")
        new = label_evidence.revise_decision(decision, self.models, self.errors, *labelled.outcomes(), params,
                                             self.effective_costs(costs))
        return None if new.model == decision.model else new

    def revise_on_reliability(self, decision: Decision, correct: np.ndarray, counted: np.ndarray,
                              params: fb.FeedbackParams, epsilon: float | None = None, lam: float | None = None,
                              costs: np.ndarray | None = None, agree: np.ndarray | None = None,
                              judged: np.ndarray | None = None) -> fb.Revision | None:
        """An S3-method task decision re-made once its outcomes (per model, in :attr:`models` order)
        measured the predictors' accuracy p (:func:`reliability.revise_decision`, under the decision's
        cost knobs and ``params.policy``, with the router's own test: ``paper`` or ``uncertain``, the
        paper's for a router whose own method is ``calibrated``; ``agree`` of ``judged``: the outcomes'
        agreement with their prompts' predictions); None where the evidence leaves the pick where it is."""
        routing = self._params(epsilon, lam)  # the router's own S3 method re-makes it (else the paper's)
        if routing.method not in S3_METHODS:
            routing = replace(routing, method="paper")
        return rel.revise_decision(decision, self.models, self.errors, correct, counted, params, routing,
                                   self.effective_costs(costs), agree, judged)

    def measured_p(self, decision: Decision, correct: np.ndarray, counted: np.ndarray, agree: np.ndarray,
                   judged: np.ndarray) -> float | None:
        """The decision's model's predictor accuracy on the task as its judged outcomes (per model, in
        :attr:`models` order) measure it (:func:`reliability.measured_p`); None without them."""
        return rel.measured_p(decision, self.models, self.errors, correct, counted, agree, judged)

    def decide_instance(self, g_row: np.ndarray, epsilon: float | None = None, lam: float | None = None,
                        costs: np.ndarray | None = None) -> Decision:
        params = self._params(epsilon, lam)
        self.check_knobs(params.epsilon, params.lam, costs)
        return decide_instance(np.asarray(g_row).ravel(), self.models, self.train_mean,
                               self.effective_costs(costs), params)

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "models": list(self.models), "prompts": int(len(self.labels)),
                "tasks": len(self.task_names), "bma": self.bma_model,
                "has_costs": self.costs is not None, "cost_unit": self.cost_unit(), "params": self.params.to_dict(),
                **{k: v for k, v in self.meta.items() if k != "version"}}


def make_index(vectors: np.ndarray) -> NeighbourIndex:
    """hnswlib for real pools, exact search for tiny ones (where hnsw recall is no better)."""
    if len(vectors) < EXACT_BELOW:
        return ExactIndex(vectors)
    return HnswIndex.build(vectors)


def build_from_vectors(data: BenchmarkData, vectors: np.ndarray, params: RoutingParams | None = None,
                       meta: dict[str, Any] | None = None, table: loto.LotoTable | None = None) -> Router:
    """A router over already embedded prompts (LOTO targets computed here unless given)."""
    params = params or RoutingParams()
    table = table or loto.compute(vectors, data.tasks, data.labels, params.k, params.u_k)
    costs = data.mean_cost()
    meta = dict(meta or {})
    sizes = data.size_costs()
    if sizes is not None:  # the stand-in cost where the data has no prices (Router.sizes)
        meta["params_b"] = [float(v) for v in sizes]
    # fitted whatever the method, so one artifact serves both (`route --method`, `router.method`)
    feats = loto.features_of(table, data.labels, params.u_k)
    calibration = fit_calibration({f: feats.get(f) for f in params.features}, feats.accuracy, params.features)
    errors = rel.fit_error_model(feats.u, feats.p, feats.s2, feats.accuracy,
                                 np.ones(len(table.task_names), dtype=bool), params.bandwidth)
    return Router(
        models=list(data.models), vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        labels=data.labels.astype(np.float32), task_of=table.task_of, task_names=table.task_names,
        u_train=table.u, p_train=table.p, task_accuracy=table.accuracy,
        train_mean=loto.model_means(data.labels), bma=best_on_average(table.accuracy), costs=costs,
        params=params, index=make_index(vectors), meta=meta, agree=table.agree,
        calibration=calibration, errors=errors)


def build_router(data: BenchmarkData, encoder: Encoder, params: RoutingParams | None = None,
                 progress: bool = False, text_field: str = "auto") -> Router:
    """Embed the benchmark prompts, compute the LOTO targets, index the pool."""
    vectors = encoder.encode(data.prompts, progress=progress)
    meta = {"encoder": encoder.name, "datasets": data.name, "text_field": text_field}
    return build_from_vectors(data, vectors, params, meta)
