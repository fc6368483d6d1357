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
decision, then the outcome rule), ``reliability_to_bma`` (the same, revising only back to BMA) and
``agreement_to_bma`` (that, with p measured by the fed-back answers' agreement with their prompts'
predictions: every fed-back answer here carries its prompt's prediction).

By default the static decision is the one made from all the task's prompts (the evaluation's
decision), served from the first prompt on. With ``min_samples`` the gateway's phases are replayed
instead: each of the stream's first ``min_samples`` prompts is served by the paper's decision from the
prompts so far (provisional; the gateway's ``router.min_samples``), the decision made at
``min_samples`` prompts is final and is what feedback may revise (the outcome rule's prior is its S3,
as the gateway's); "static" is that same sequence without feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from . import evaluate as ev
from . import feedback as fb
from . import loto
from . import reliability as rel
from . import scores as sc
from .data import BenchmarkData
from .decision import S3_METHODS, Decision, RoutingParams, decide_task
from .state import TaskAggregates


#: a reviser: (served model, correct and counted outcomes per model, revisions so far, and per model the
#: outcomes' agreement with their prompts' predictions and how many had one) -> a revision or None
Reviser = Callable[[int, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray], "fb.Revision | None"]


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
    def revise(served: int, correct: np.ndarray, counted: np.ndarray, revisions: int, agree: np.ndarray,
               judged: np.ndarray) -> fb.Revision | None:
        return fb.revise(belief, served, correct, counted, revisions, fparams)
    return revise


def reliability_reviser(n: int, s2: np.ndarray, p_hat: np.ndarray, bma: int, errors: rel.ErrorModel,
                        belief: fb.Belief, fparams: fb.FeedbackParams, params: RoutingParams,
                        costs: np.ndarray | None) -> Reviser:
    """The paper's decision (from ``n`` prompts: ``s2``, ``p_hat``) re-made with p measured by the
    outcomes (under ``fparams.policy``), then the outcome rule."""
    def revise(served: int, correct: np.ndarray, counted: np.ndarray, revisions: int, agree: np.ndarray,
               judged: np.ndarray) -> fb.Revision | None:
        return (rel.revise(n, s2, p_hat, bma, served, errors, correct, counted, revisions, fparams, params, costs,
                           agree, judged)
                or fb.revise(belief, served, correct, counted, revisions, fparams))
    return revise


def staged(rows: np.ndarray, table: loto.LotoTable, models: list[str], train: np.ndarray, bma: int,
           costs: np.ndarray | None, params: RoutingParams, min_samples: int,
           score_sd: float | None = None) -> tuple[list[int], Decision]:
    """The gateway's decisions on a stream of pool ``rows`` (in serving order): the pick each of its
    first ``min_samples`` prompts is served by (the paper's decision from the prompts so far, the
    prompt itself included) and the final decision, made at ``min_samples`` prompts."""
    picks: list[int] = []
    decision: Decision | None = None
    for k in range(1, min(min_samples, len(rows)) + 1):
        agg = TaskAggregates.from_rows(table.g[rows[:k]], table.u_prompt[rows[:k]])
        decision = decide_task(agg, models, table.u[train], table.p[train], bma, costs, params, score_sd=score_sd)
        picks.append(models.index(decision.model))
    assert decision is not None  # a task has at least one prompt
    return picks, decision


def replay_task(labels: np.ndarray, belief: fb.Belief, static: int, bma: int, oracle: int, rate: float,
                fparams: fb.FeedbackParams, rng: np.random.Generator, models: list[str], task: str,
                reviser: Reviser | None = None, order: np.ndarray | None = None,
                provisional: Sequence[int] = (), g: np.ndarray | None = None) -> TaskReplay:
    """Serve ``labels``' rows (N, M) in a random order (or ``order``) with feedback; score every policy
    on that stream. ``provisional``: the picks that serve the stream's first prompts before ``static``
    is final (outcomes of those answers count; only a final decision is revised or explored). ``g``:
    the rows' predictions (N, M), whose agreement with each fed-back outcome is counted too."""
    reviser = reviser or outcome_reviser(belief, fparams)
    order = rng.permutation(len(labels)) if order is None else order
    M = labels.shape[1]
    correct, counted = np.zeros(M), np.zeros(M)
    agree, judged = np.zeros(M), np.zeros(M)
    served, revisions, explored = static, 0, 0
    right = answered = 0.0
    history: list[dict[str, Any]] = []
    for step, i in enumerate(order):
        final = step >= len(provisional)
        model = served if final else provisional[step]
        if final and fparams.explore > 0 and rng.random() < fparams.explore:
            pick = fb.explore_pick(belief, served, correct, counted, fparams)
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
        if g is not None:
            agree[model] += float(sc.agreement(g[i, model], y))
            judged[model] += 1
        rev = reviser(served, correct, counted, revisions, agree, judged) if final else None
        if rev is not None:
            history.append({"at": step, **rev.evidence(models)})
            served, revisions = rev.model, revisions + 1

    def fixed(m: int) -> float:
        with np.errstate(invalid="ignore"):
            return float(np.nanmean(labels[:, m]))

    # the static policy on this stream: the provisional picks, then the final decision
    by_step = np.full(len(order), static)
    by_step[:len(provisional)] = list(provisional)[:len(order)]
    static_served = labels[order, by_step]
    with np.errstate(invalid="ignore"):
        static_acc = float(np.nanmean(static_served))
    acc = {"static": static_acc, "feedback": right / answered if answered else float("nan"),
           "BMA": fixed(bma), "Oracle": fixed(oracle)}
    return TaskReplay(task, len(labels), static, bma, oracle, served, acc, revisions, explored, history)


def replay(prep: Prepared, rate: float, explore: float = 0.0, repeats: int = 1, seed: int = 0,
           fparams: fb.FeedbackParams | None = None, policy: str | None = None,
           min_samples: int | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The replay report (the JSON layout of ``llm-router replay``); ``policy`` overrides ``fparams``'.
    ``min_samples``: replay the gateway's provisional phase (module docstring; the S3 methods only)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"feedback rate must be in [0, 1], not {rate}")
    if min_samples is not None and (min_samples < 1 or prep.params.method not in S3_METHODS):
        raise ValueError(f"min_samples must be >= 1, with an S3 method ({', '.join(S3_METHODS)})")
    base = fparams or fb.FeedbackParams()
    fparams = replace(base, explore=explore, policy=policy or base.policy)
    policy = fparams.policy
    data, table = prep.data, prep.table
    costs = data.mean_cost()
    runs: list[list[TaskReplay]] = []
    for r in range(max(1, repeats)):
        rng = np.random.default_rng(seed + r)
        run = []
        for d in range(len(table.task_names)):
            h = ev.held_out(d, table, data, prep.vectors, prep.params, costs, 0.0, rng, seed + r, prep.nested[d])
            params = replace(prep.params, seed=seed + r)
            calibration = prep.nested[d].calibrations["calibrated"]
            rows, bma, models = table.rows(d), h.picks["BMA"], list(data.models)
            order, provisional, static = None, [], h.picks["default"]
            n, s2, p_hat, prior = h.n, h.s2, h.p_hat, h.expected
            if min_samples is not None:  # the gateway's phases, on the stream's own first prompts
                order = rng.permutation(len(rows))
                train = np.array([t for t in range(len(table.task_names)) if t != d])
                picks, final = staged(rows[order], table, models, train, bma, costs, params, min_samples,
                                      prep.nested[d].errors.score_sd)
                provisional, static = picks[:-1], picks[-1]
                n = final.n
                s2, p_hat, prior = (np.array([v[m] for m in models]) for v in (final.s2, final.p_hat, final.s3))
            belief = fb.Belief.of_expected(prior, calibration)
            reviser = outcome_reviser(belief, fparams) if policy == "outcome" else reliability_reviser(
                n, s2, p_hat, bma, prep.nested[d].errors, belief, fparams, params, costs)
            run.append(replay_task(data.labels[rows], belief, static, bma, h.picks["Oracle"], rate, fparams, rng,
                                   models, h.task, reviser, order, provisional, table.g[rows]))
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
            "policy": policy, "min_samples": min_samples,
            "feedback_params": {"confidence": fparams.confidence, "margin": fparams.margin,
                                "min_outcomes": fparams.min_outcomes, "max_revisions": fparams.max_revisions,
                                "explore_resolved": fparams.explore_resolved},
            "methods": methods, "tasks": tasks}


def format_line(report: dict[str, Any]) -> str:
    """One line per replay: what ``replay`` prints."""
    m = report["methods"]
    return (f"{report['dataset']}: {report.get('policy', fb.DEFAULT_POLICY)} F={report['feedback_rate']:g} "
            f"E={report['explore']:g}  "
            f"static {m['static']['accuracy']:.4f}  feedback {m['feedback']['accuracy']:.4f}  "
            f"BMA {m['BMA']['accuracy']:.4f}  Oracle {m['Oracle']['accuracy']:.4f}  "
            f"revisions/task {m['feedback']['revisions_per_task']:.3f}  "
            f"explore share {m['feedback']['explore_share']:.3f}")
