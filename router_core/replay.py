"""Replay evaluation of the closed loop: does outcome feedback improve a task's decision?

Leave-one-task-out, like :mod:`router_core.evaluate` and with its machinery (the held-out task's
decision and the calibration behind its prior come from pools without that task,
``evaluate.default_calibrations``). Each held-out task is replayed as a stream of its prompts in a
random order; each prompt is served with the task's decision at that moment (the static default
decision, then any revision), and the served model's true label is fed back with probability
``feedback_rate``. With ``explore`` > 0 that share of requests goes to the model most likely to
overturn the decision (:func:`feedback.explore_pick`). Accuracy is the mean over tasks of the share
of the task's served answers that were correct; the static default, BMA and the Oracle's best fixed
model per task are scored on the same streams.

``policy`` says how outcomes revise a decision (docs/results.md, "Feedback that measures the
predictors"): ``outcome`` (:func:`feedback.revise`: the posterior over accuracies), ``reliability``
(:func:`reliability.revise`: the outcomes measure the predictors' accuracy p and re-make the paper's
decision, then the outcome rule) and ``reliability_to_bma`` (the same, revising only back to BMA).

Simplification: the static decision is the one made from all the task's prompts (the evaluation's
decision), served from the first prompt on; the gateway's provisional phase is not replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from . import evaluate as ev
from . import feedback as fb
from . import loto
from . import reliability as rel
from . import scores as sc
from .data import BenchmarkData
from .decision import RoutingParams


POLICIES, DEFAULT_POLICY = fb.POLICIES, fb.DEFAULT_POLICY

#: a reviser: (served model, correct and counted outcomes per model, revisions so far) -> a revision or None
Reviser = Callable[[int, np.ndarray, np.ndarray, int], "fb.Revision | None"]


@dataclass
class Prepared:
    """A dataset's leave-one-task-out machinery, computed once for any number of replays."""

    data: BenchmarkData
    vectors: np.ndarray
    params: RoutingParams
    table: loto.LotoTable
    nested: list[ev.Nested]


def prepare(data: BenchmarkData, vectors: np.ndarray, params: RoutingParams | None = None) -> Prepared:
    params = params or RoutingParams()
    table = loto.compute(vectors, data.tasks, data.labels, params.k, params.u_k)
    return Prepared(data, vectors, params, table, ev.default_calibrations(data, vectors, params, table))


@dataclass
class TaskReplay:
    """One held-out task's stream."""

    task: str
    n: int
    static: int
    bma: int
    oracle: int
    final: int
    accuracy: dict[str, float]
    revisions: int
    explored: int
    history: list[dict[str, Any]]


def outcome_reviser(belief: fb.Belief, fparams: fb.FeedbackParams) -> Reviser:
    """The outcome rule alone (:func:`feedback.revise`)."""
    def revise(served: int, correct: np.ndarray, counted: np.ndarray, revisions: int) -> fb.Revision | None:
        return fb.revise(belief, served, correct, counted, revisions, fparams)
    return revise


def reliability_reviser(h: ev.HeldOut, errors: rel.ErrorModel, belief: fb.Belief, fparams: fb.FeedbackParams,
                        params: RoutingParams, costs: np.ndarray | None, to_bma_only: bool) -> Reviser:
    """The paper's decision re-made with p measured by the outcomes, then the outcome rule."""
    bma = h.picks["BMA"]

    def revise(served: int, correct: np.ndarray, counted: np.ndarray, revisions: int) -> fb.Revision | None:
        out = rel.revise(h.n, h.s2, h.p_hat, bma, served, errors, correct, counted, revisions,
                         fparams.min_outcomes, fparams.max_revisions, params, costs, to_bma_only)
        if out is None:
            return fb.revise(belief, served, correct, counted, revisions, fparams)
        pick, p, prob = out
        return fb.Revision(pick, served, prob, sc.s3_from_s2(h.s2, p), np.asarray(counted, dtype=np.float64),
                           "reliability")
    return revise


def replay_task(labels: np.ndarray, belief: fb.Belief, static: int, bma: int, oracle: int, rate: float,
                fparams: fb.FeedbackParams, rng: np.random.Generator, models: list[str], task: str,
                reviser: Reviser | None = None) -> TaskReplay:
    """Serve ``labels``' rows (N, M) in a random order with feedback; score every policy on that stream."""
    reviser = reviser or outcome_reviser(belief, fparams)
    order = rng.permutation(len(labels))
    M = labels.shape[1]
    correct, counted = np.zeros(M), np.zeros(M)
    served, revisions, explored = static, 0, 0
    right = answered = 0.0
    history: list[dict[str, Any]] = []
    for step, i in enumerate(order):
        model = served
        if fparams.explore > 0 and rng.random() < fparams.explore:
            pick = fb.explore_pick(belief, served, correct, counted)
            if pick is not None:
                model, explored = pick, explored + 1
        y = labels[i, model]
        if np.isnan(y):
            continue
        right += float(y)
        answered += 1
        if rng.random() >= rate:
            continue
        correct[model] += float(y)
        counted[model] += 1
        rev = reviser(served, correct, counted, revisions)
        if rev is not None:
            history.append({"at": step, **rev.evidence(models)})
            served, revisions = rev.model, revisions + 1

    def fixed(m: int) -> float:
        with np.errstate(invalid="ignore"):
            return float(np.nanmean(labels[:, m]))

    acc = {"static": fixed(static), "feedback": right / answered if answered else float("nan"),
           "BMA": fixed(bma), "Oracle": fixed(oracle)}
    return TaskReplay(task, len(labels), static, bma, oracle, served, acc, revisions, explored, history)


def replay(prep: Prepared, rate: float, explore: float = 0.0, repeats: int = 1, seed: int = 0,
           fparams: fb.FeedbackParams | None = None, policy: str | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The replay report (the JSON layout of ``llm-router replay``); ``policy`` overrides ``fparams``'."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"feedback rate must be in [0, 1], not {rate}")
    fparams = replace(fparams or fb.FeedbackParams(), explore=explore)
    fparams = replace(fparams, policy=policy or fparams.policy)
    policy = fparams.policy
    data, table = prep.data, prep.table
    costs = data.mean_cost()
    runs: list[list[TaskReplay]] = []
    for r in range(max(1, repeats)):
        rng = np.random.default_rng(seed + r)
        run = []
        for d in range(len(table.task_names)):
            h = ev.held_out(d, table, data, prep.vectors, prep.params, costs, 0.0, rng, seed + r, prep.nested[d])
            belief = fb.Belief.of_expected(h.expected, prep.nested[d].calibrations["calibrated"])
            reviser = outcome_reviser(belief, fparams) if policy == "outcome" else reliability_reviser(
                h, prep.nested[d].errors, belief, fparams, replace(prep.params, seed=seed + r), costs,
                policy == "reliability_to_bma")
            run.append(replay_task(data.labels[table.rows(d)], belief, h.picks["default"], h.picks["BMA"],
                                   h.picks["Oracle"], rate, fparams, rng, list(data.models), h.task, reviser))
        runs.append(run)
        if progress:
            progress(f"repeat {r + 1}/{repeats} done")

    def mean_acc(key: str) -> float:
        return float(np.mean([np.nanmean([t.accuracy[key] for t in run]) for run in runs]))

    requests = sum(t.n for run in runs for t in run)
    methods = {"static": {"accuracy": mean_acc("static")},
               "feedback": {"accuracy": mean_acc("feedback"),
                            "revisions_per_task": float(np.mean([t.revisions for run in runs for t in run])),
                            "explore_share": sum(t.explored for run in runs for t in run) / max(requests, 1)},
               "BMA": {"accuracy": mean_acc("BMA")}, "Oracle": {"accuracy": mean_acc("Oracle")}}
    models = list(data.models)
    tasks = [{"task": t.task, "n": t.n, "static_model": models[t.static], "final_model": models[t.final],
              "bma": models[t.bma], "oracle": models[t.oracle], "revisions": t.revisions, "explored": t.explored,
              "accuracy": {k: round(v, 6) for k, v in t.accuracy.items()}, "history": t.history}
             for t in runs[0]]
    return {"dataset": data.name, "feedback_rate": rate, "explore": explore, "repeats": max(1, repeats),
            "policy": policy,
            "feedback_params": {"confidence": fparams.confidence, "margin": fparams.margin,
                                "min_outcomes": fparams.min_outcomes, "max_revisions": fparams.max_revisions},
            "methods": methods, "tasks": tasks}


def format_line(report: dict[str, Any]) -> str:
    """One line per replay: what ``replay`` prints."""
    m = report["methods"]
    return (f"{report['dataset']}: {report.get('policy', DEFAULT_POLICY)} F={report['feedback_rate']:g} "
            f"E={report['explore']:g}  "
            f"static {m['static']['accuracy']:.4f}  feedback {m['feedback']['accuracy']:.4f}  "
            f"BMA {m['BMA']['accuracy']:.4f}  Oracle {m['Oracle']['accuracy']:.4f}  "
            f"revisions/task {m['feedback']['revisions_per_task']:.3f}  "
            f"explore share {m['feedback']['explore_share']:.3f}")
