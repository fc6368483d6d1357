"""Leave-one-task-out evaluation, as in Table 1 of the paper.

Each benchmark task in turn is the "new" task: its prompts are scored by a router whose pool is
every other task (one exact masked search gives all of these at once, see :mod:`loto`); the
p_hat smoother and BMA see only the other tasks. Methods compared per held-out task:

* S1, S2, S3 (S3 after the eta fallback to BMA), S3 with the true predictor accuracy p;
* BMA (best model on average over the training tasks) and the Oracle (best model on the task).

With ``alpha > 0`` a random fraction of the held-out task's prompts (at most 50) and their labels
join the pool; scores are computed on the remaining prompts. ``repeats`` re-draws those samples
and the fallback's Monte-Carlo seed; method figures are averaged over repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from . import loto
from . import scores as sc
from .data import BenchmarkData
from .decision import RoutingParams, decide_task
from .state import TaskAggregates

METHODS = ("S1", "S2", "S3", "S3_local_p", "S3_true_p", "BMA", "Oracle")
MAX_LABELLED = 50


@dataclass
class HeldOut:
    """One held-out task's numbers for one repeat."""

    task: str
    n: int
    u: float
    true_accuracy: np.ndarray  # (M,)
    s1: np.ndarray
    s2: np.ndarray
    s3: np.ndarray
    p_hat: np.ndarray
    p_std: np.ndarray
    p_true: np.ndarray
    p_local: np.ndarray
    picks: dict[str, int]


def _labelled_rows(rows: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    if alpha <= 0:
        return np.array([], dtype=np.int64)
    m = min(MAX_LABELLED, int(round(alpha * len(rows))))
    m = min(m, len(rows) - 1)
    return np.sort(rng.choice(rows, m, replace=False)) if m > 0 else np.array([], dtype=np.int64)


def _with_labelled(table: loto.LotoTable, vectors: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                   lab_rows: np.ndarray, params: RoutingParams) -> tuple[np.ndarray, np.ndarray]:
    """g and u for ``rows`` when ``lab_rows`` of the same task join the pool."""
    width = max(params.k, params.u_k)
    ids, dists = table.ids[rows], table.dists[rows]
    d_lab = (1.0 - vectors[rows] @ vectors[lab_rows].T).astype(np.float32)
    all_ids = np.concatenate([ids, np.broadcast_to(lab_rows, d_lab.shape)], axis=1)
    all_d = np.concatenate([dists, d_lab], axis=1)
    order = np.argsort(all_d, axis=1, kind="stable")[:, :width]
    ids2, d2 = np.take_along_axis(all_ids, order, 1), np.take_along_axis(all_d, order, 1)
    g = sc.knn_correctness(ids2[:, : params.k], labels, loto.model_means(labels))
    return g, sc.prompt_distance(d2, params.u_k)


def held_out(d: int, table: loto.LotoTable, data: BenchmarkData, vectors: np.ndarray,
             params: RoutingParams, costs: np.ndarray | None, alpha: float, rng: np.random.Generator,
             seed: int) -> HeldOut:
    """Route task ``d`` with every other task as the training pool."""
    rows = table.rows(d)
    train = np.array([t for t in range(len(table.task_names)) if t != d])
    lab_rows = _labelled_rows(rows, alpha, rng)
    if len(lab_rows):
        rest = np.setdiff1d(rows, lab_rows)
        g, u = _with_labelled(table, vectors, data.labels, rest, lab_rows, params)
        eval_labels = data.labels[rest]
    else:
        g, u = table.g[rows], table.u_prompt[rows]
        eval_labels = data.labels[rows]
    agg = TaskAggregates.from_rows(g, u)
    u_train, p_train = table.u[train], table.p[train]
    bma = sc.best_on_average(table.accuracy[train])
    p_params = replace(params, seed=seed, p_estimator="nadaraya-watson")
    dec = decide_task(agg, data.models, u_train, p_train, bma, costs, p_params)
    # the local estimate of p: LOTO agreement around each prompt (neighbours from other tasks)
    rows_eval = np.setdiff1d(rows, lab_rows) if len(lab_rows) else rows
    p_nw = np.array([dec.p_hat[m] for m in data.models])
    p_loc = sc.local_predictor_accuracy(table.ids[rows_eval, : params.u_k], table.agree, p_nw).mean(axis=0)
    dec_loc = decide_task(agg, data.models, u_train, p_train, bma, costs, p_params, p_override=p_loc)
    p_true = sc.predictor_accuracy(g, eval_labels)
    p_true_filled = np.where(np.isnan(p_true), 0.5, p_true)
    true_acc = table.accuracy[d]
    idx = {m: i for i, m in enumerate(data.models)}
    s1v, s2v = agg.sum_g / agg.n, agg.sum_gbar / agg.n
    s3_true = sc.s3_from_s2(s2v, p_true_filled)
    picks = {
        "S1": sc.cost_aware_choice(s1v, costs, params.epsilon, params.lam),
        "S2": sc.cost_aware_choice(s2v, costs, params.epsilon, params.lam),
        "S3": idx[dec.model],
        "S3_local_p": idx[dec_loc.model],
        "S3_true_p": sc.cost_aware_choice(s3_true, costs, params.epsilon, params.lam),
        "BMA": bma,
        "Oracle": int(np.nanargmax(true_acc)),
    }

    def model_arr(dd: dict[str, float]) -> np.ndarray:
        return np.array([dd[m] for m in data.models])

    return HeldOut(table.task_names[d], int(len(rows)), float(agg.sum_u / agg.n), true_acc, s1v, s2v,
                   model_arr(dec.s3), model_arr(dec.p_hat), model_arr(dec.p_std), p_true, p_loc, picks)


def _corr(a: np.ndarray, b: np.ndarray, rank: bool) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return float("nan")
    if rank:
        a, b = a.argsort().argsort().astype(float), b.argsort().argsort().astype(float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _nanmean(xs: Sequence[float | None]) -> float | None:
    arr = np.array([x for x in xs if x is not None and not np.isnan(x)], dtype=float)
    return float(arr.mean()) if len(arr) else None


def summarise(runs: list[list[HeldOut]], models: Sequence[str], task_costs: np.ndarray | None,
              params_b: np.ndarray | None) -> dict[str, Any]:
    """Per-method figures averaged over tasks, then over repeats."""
    out: dict[str, Any] = {}
    for method in METHODS:
        acc, ratio, cost, size, is_bma, pear, spear = [], [], [], [], [], [], []
        for run in runs:
            a = [h.true_accuracy[h.picks[method]] for h in run]
            o = [h.true_accuracy[h.picks["Oracle"]] for h in run]
            acc.append(float(np.mean(a)))
            ratio.append(float(np.mean(a) / np.mean(o)) if np.mean(o) > 0 else float("nan"))
            is_bma.append(float(np.mean([h.picks[method] == h.picks["BMA"] for h in run])))
            if task_costs is not None:
                cost.append(float(np.nanmean([task_costs[i][h.picks[method]] for i, h in enumerate(run)])))
            if params_b is not None:  # only where every pick's size is known (closed models have none)
                sizes = [params_b[h.picks[method]] for h in run]
                size.append(None if any(np.isnan(x) for x in sizes) else float(np.mean(sizes)))
            score_of = {"S1": "s1", "S2": "s2", "S3": "s3"}.get(method)
            if score_of:
                pear.append(_nanmean([_corr(getattr(h, score_of), h.true_accuracy, False) for h in run]))
                spear.append(_nanmean([_corr(getattr(h, score_of), h.true_accuracy, True) for h in run]))
        entry: dict[str, Any] = {"accuracy": float(np.mean(acc)), "ratio_to_oracle": float(np.mean(ratio)),
                                 "mean_cost": float(np.mean(cost)) if cost else None,
                                 "picks_bma": float(np.mean(is_bma))}
        if size and all(s is not None for s in size):
            entry["mean_params_b"] = float(np.mean([s for s in size if s is not None]))
        if pear:
            entry["pearson"] = _nanmean(pear)
            entry["spearman"] = _nanmean(spear)
        out[method] = entry
    return out


def evaluate(data: BenchmarkData, vectors: np.ndarray, params: RoutingParams | None = None,
             alpha: float = 0.0, repeats: int = 1, seed: int = 0,
             table: loto.LotoTable | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The LOTO report (the JSON layout of ``llm-router eval``)."""
    params = params or RoutingParams()
    table = table or loto.compute(vectors, data.tasks, data.labels, params.k, params.u_k)
    costs = data.mean_cost()
    D = len(table.task_names)
    runs: list[list[HeldOut]] = []
    for r in range(max(1, repeats)):
        rng = np.random.default_rng(seed + r)
        runs.append([held_out(d, table, data, vectors, params, costs, alpha, rng, seed + r) for d in range(D)])
        if progress:
            progress(f"repeat {r + 1}/{repeats} done")
    task_costs = None
    if data.costs is not None:
        task_costs = np.vstack([np.nanmean(data.costs[table.task_of == d], axis=0) for d in range(D)])
    params_b = _params_b(data)
    first = runs[0]

    def named(arr: np.ndarray) -> dict[str, float | None]:
        return {m: _round(v) for m, v in zip(data.models, arr)}

    tasks = [{
        "task": h.task, "n": h.n, "u": _round(h.u), "true_accuracy": named(h.true_accuracy),
        "scores": {"S1": named(h.s1), "S2": named(h.s2), "S3": named(h.s3)},
        "p_hat": named(h.p_hat), "p_std": named(h.p_std), "p_true": named(h.p_true),
        "p_local": named(h.p_local),
        "picks": {k: data.models[v] for k, v in h.picks.items()},
    } for h in first]
    mae = [float(np.nanmean(np.abs(h.p_hat - h.p_true))) for run in runs for h in run]
    mae_loc = [float(np.nanmean(np.abs(h.p_local - h.p_true))) for run in runs for h in run]
    report: dict[str, Any] = {
        "dataset": data.name, "models": list(data.models), "n_tasks": D, "n_prompts": int(len(data)),
        "alpha": alpha, "repeats": max(1, repeats), "params": params.to_dict(),
        "tasks": tasks, "methods": summarise(runs, data.models, task_costs, params_b),
        "p_hat_mae": float(np.nanmean(mae)),
        "p_local_mae": float(np.nanmean(mae_loc)),
    }
    if costs is not None:
        report["cost_curve"] = cost_curve(data, vectors, table, params, costs)
    return report


def cost_curve(data: BenchmarkData, vectors: np.ndarray, table: loto.LotoTable, params: RoutingParams,
               costs: np.ndarray, points: int = 12) -> list[dict[str, float]]:
    """Accuracy and mean cost of the S3 pick over a sweep of the lambda knob (alpha = 0)."""
    assert data.costs is not None  # mean_cost() gave ``costs``
    spread = float(np.nanmax(costs) - np.nanmin(costs))
    if spread <= 0:
        return []
    # lambda * cost spans 0 .. ~2 accuracy points of score per cost spread, log-spaced
    lams = [0.0] + list(np.geomspace(0.01 / spread, 2.0 / spread, points - 1))
    task_costs = np.vstack([np.nanmean(data.costs[table.task_of == d], axis=0) for d in range(len(table.task_names))])
    out = []
    for lam in lams:
        p = replace(params, epsilon=None, lam=lam or None)
        rng = np.random.default_rng(0)
        hs = [held_out(d, table, data, vectors, p, costs, 0.0, rng, params.seed) for d in range(len(table.task_names))]
        out.append({"lambda": float(lam),
                    "accuracy": float(np.mean([h.true_accuracy[h.picks["S3"]] for h in hs])),
                    "mean_cost": float(np.mean([task_costs[i][h.picks["S3"]] for i, h in enumerate(hs)]))})
    return out


def _params_b(data: BenchmarkData) -> np.ndarray | None:
    by_name = {m.get("name"): m.get("params_b") for m in data.model_info}
    vals = [by_name.get(m) for m in data.models]
    if all(v is None for v in vals):
        return None
    return np.array([np.nan if v is None else float(v) for v in vals])


def _round(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 6)


def format_table(report: dict[str, Any]) -> str:
    """The methods table as text (what ``eval`` prints)."""
    cols = ["accuracy", "ratio_to_oracle", "picks_bma", "pearson", "spearman", "mean_cost", "mean_params_b"]
    lines = [f"{report['dataset']}: {report['n_tasks']} held-out tasks, {len(report['models'])} models, "
             f"alpha={report['alpha']}, repeats={report['repeats']}, p_hat MAE={report['p_hat_mae']:.3f}",
             f"{'method':<10}" + "".join(f"{c:>16}" for c in cols)]
    for m, e in report["methods"].items():
        cells = []
        for c in cols:
            v = e.get(c)
            cells.append(f"{'-':>16}" if v is None else (f"{v:>16.6f}" if c == "mean_cost" else f"{v:>16.3f}"))
        lines.append(f"{m:<10}" + "".join(cells))
    return "\n".join(lines)
