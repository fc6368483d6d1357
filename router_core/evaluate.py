"""Leave-one-task-out evaluation, as in Table 1 of the paper.

Each benchmark task in turn is the "new" task: its prompts are scored by a router whose pool is
every other task (one exact masked search gives all of these at once, see :mod:`loto`); the
p_hat smoother and BMA see only the other tasks. Methods compared per held-out task:

* default: the shipped decision (router_core.calibration: expected accuracy from scores calibrated on
  the training tasks; fitted per held-out task on a pool from which that task is removed
  everywhere, :class:`loto.Worlds`, so its labels reach neither the scores nor the fit);
* S1, S2, S3 (S3 after the eta fallback to BMA), S3 with the true predictor accuracy p;
* BMA (best model on average over the training tasks) and the Oracle (best model on the task).

With ``alpha > 0`` a random fraction of the held-out task's prompts (at most 50) and their labels
join the pool; scores are computed on the remaining prompts. ``repeats`` re-draws those samples
and the fallback's Monte-Carlo seed; method figures are averaged over repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from . import calibration as cal
from . import feedback as fb
from . import labels as label_evidence
from . import loto
from . import reliability as rel
from . import ridge
from . import scores as sc
from . import selfcheck
from .data import BenchmarkData
from .decision import LABEL_EVIDENCE, LABELS_IN_POOL, Decision, RoutingParams, decide_calibrated, decide_task
from .state import TaskAggregates

METHODS = ("default", "calibrated", "calibrated_full", "S3_nested", "S3_selfcheck", "S3_uncertain", "S3_uncertain_n",
           "S3_uncertain_guard",
           "S3_local_uncertain", "S3_combined_uncertain", "S3_posterior", "ridge", "ridge_selfcheck", "S3_evidence",
           "S3_evidence_only", "S3_evidence_reliable", "S3_label_posterior", "S3_uncertain_labels",
           "S1", "S2", "S3", "S3_local_p", "S3_true_p", "BMA", "Oracle")
# the candidates for the default (docs/results.md, "How the default is chosen"), all scored without the
# held-out task's labels anywhere: the paper's S3 with its p_hat targets from the nested pool
# (S3_nested), the calibrated expected accuracy with its strength chosen by inner leave-one-task-out,
# and the same at full strength; S3_selfcheck: S3_nested with its fallback threshold chosen by inner
# leave-one-task-out on the training tasks (router_core.selfcheck); S3_uncertain: the fallback test on
# S3's error measured on the training tasks, without the binomial guard the default adds (S3_uncertain_guard,
# the shipped default; S3_uncertain_n: with the lead's sampling variance); S3_local_uncertain /
# S3_combined_uncertain: the same test for S3 with the nested local p / with p_hat and the local p combined by
# their measured errors; S3_posterior: each model's relative accuracy from the training record (prior) and S3
# (measurement); ridge / ridge_selfcheck: a ridge head on the embeddings instead of the kNN predictor, its
# constants chosen by inner leave-one-task-out (router_core.ridge)
CANDIDATES = ("S3_nested", "S3_selfcheck", "S3_uncertain", "S3_local_uncertain", "S3_combined_uncertain",
              "S3_posterior", "ridge", "ridge_selfcheck", "calibrated", "calibrated_full", "S3_uncertain_n",
              "S3_uncertain_guard")
PICK_OF_METHOD = {"uncertain": "S3_uncertain_guard", "paper": "S3", "calibrated": "calibrated"}
# the variants of the S3 fallback test the candidates differ in, as RoutingParams fields: the paper's
# (S3_nested), the measured test alone (S3_uncertain), with the lead's sampling variance (S3_uncertain_n),
# and with the binomial guard (S3_uncertain_guard, the shipped default); benchmarks/ten_prompts.py reads them
FALLBACK_TESTS: dict[str, dict[str, Any]] = {
    "paper": {"method": "paper", "lead_sampling": False, "binomial_guard": False},
    "uncertain": {"method": "uncertain", "lead_sampling": False, "binomial_guard": False},
    "uncertain_n": {"method": "uncertain", "lead_sampling": True, "binomial_guard": False},
    "uncertain_guard": {"method": "uncertain", "lead_sampling": False, "binomial_guard": True},
}
# with labelled prompts (alpha > 0), the candidates for weighing them (docs/results.md, "Labels as
# evidence" and the two labels candidates after it): the paper's (labels join the neighbour pool), the
# same then revised by the labels through the feedback rule (feedback.with_label_evidence), revised by it
# without joining the pool, the calibrated method's labels posterior, the labels first measuring the
# predictors (reliability.with_label_evidence), and a posterior per model (router_core.labels: shipped)
LABEL_CANDIDATES = ("S3", "S3_evidence", "S3_evidence_only", "calibrated", "S3_evidence_reliable", "S3_label_posterior")
CANDIDATE_METHOD = {"S3_nested": "paper", "S3_selfcheck": "paper, eta by inner LOTO (not a method yet)",
                    "S3_uncertain": "uncertain without its binomial guard (the default until the ten-prompt "
                                    "rule)",
                    "S3_uncertain_n": "uncertain with the lead's sampling variance (not a method yet)",
                    "S3_uncertain_guard": "uncertain",
                    "S3_local_uncertain": "S3 with the local p, the fallback test on its measured error "
                                          "(not a method yet)",
                    "S3_combined_uncertain": "S3 with the combined p, the fallback test on its measured error "
                                             "(not a method yet)",
                    "S3_posterior": "a posterior per model: the training record as the prior, S3 as the "
                                    "measurement (not a method yet)",
                    "ridge": "a ridge head on the embeddings, lambda by inner LOTO, no fallback (not a method yet)",
                    "ridge_selfcheck": "a ridge head on the embeddings, lambda and the margin over BMA by inner "
                                       "LOTO (not a method yet)",
                    "calibrated": "calibrated", "calibrated_full": "calibrated"}


def default_pick(method: str, alpha: float) -> str:
    """Which evaluated pick is the shipped decision: the method's own, and with labelled prompts
    (alpha > 0) the paper's revised by them as evidence (router_core.labels) where ``LABEL_EVIDENCE`` is
    on, as Router.observe and Router.decide do (``LABELS_IN_POOL``, off, would put them in the pool too)."""
    if method == "paper" and alpha > 0 and LABEL_EVIDENCE:
        return "S3_evidence" if LABELS_IN_POOL else "S3_label_posterior"
    if method == "uncertain" and alpha > 0 and LABEL_EVIDENCE:
        return "S3_uncertain_labels"
    return PICK_OF_METHOD[method]


@dataclass
class Nested:
    """What the held-out task's own evaluation may use: fits and targets from a pool without it."""

    calibrations: dict[str, cal.Calibration]
    u: np.ndarray  # (D,) task descriptors in that pool (the held-out row unused)
    p: np.ndarray  # (D, M) p(d, m) targets in that pool
    eta: float = sc.ETA  # the fallback threshold the training tasks chose (router_core.selfcheck)
    errors: rel.ErrorModel = rel.DEFAULT_ERRORS  # p_hat's error spreads on the training tasks
    # the held-out task's p estimates from that pool, and the spread of the S3 each gives on the training
    # tasks (docs/results.md, "Seventh and eighth candidates"): the local estimate, and p_hat and it combined
    p_local: np.ndarray | None = None  # (M,)
    local_sd: float = rel.DEFAULT_SCORE_SD
    p_combined: np.ndarray | None = None  # (M,)
    combined_sd: float = rel.DEFAULT_SCORE_SD
    combined_w: float = 0.5  # the weight on p_hat
    # the training record's prior on each model's relative accuracy (reliability.record_prior)
    prior: tuple[np.ndarray, float] | None = None
    # the ridge head's picks for the held-out task (router_core.ridge.held_out_picks)
    ridge: dict[str, int] = field(default_factory=dict)
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
    expected: np.ndarray  # the default's expected accuracy per model
    p_local_nested: np.ndarray | None = None  # the local p estimate from the pool without this task
    p_combined: np.ndarray | None = None  # p_hat and that local estimate combined (Nested.p_combined)


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


def default_calibrations(data: BenchmarkData, vectors: np.ndarray, params: RoutingParams,
                         table: loto.LotoTable) -> list[Nested]:
    """The calibrated method's fits for each held-out task, on a pool without that task anywhere:
    ``calibrated`` (strength by inner leave-one-task-out) and ``calibrated_full`` (strength 1)."""
    worlds = loto.Worlds(vectors, data.tasks, data.labels, params.k, params.u_k)
    if worlds.names != table.task_names:
        raise AssertionError("task order differs between the LOTO table and its nested worlds")
    sizes = np.bincount(worlds.task_of, minlength=len(worlds.names))
    grams = ridge.Grams.of_pool(vectors, worlds.task_of, data.labels, len(worlds.names))
    out = []
    for b in range(len(table.task_names)):
        feats = worlds.features(b)
        rows = np.ones(len(table.task_names), dtype=bool)
        rows[b] = False
        x = {f: feats.get(f) for f in params.features}
        fits = {"calibrated": cal.fit(x, feats.accuracy, params.features, rows=rows),
                "calibrated_full": cal.fit(x, feats.accuracy, params.features, strengths=(1.0,), rows=rows)}
        usable = rows & (sizes > 0)
        eta = selfcheck.inner_eta(feats, sizes, usable, params.bandwidth, params.draws, params.seed)
        hats = rel.held_out_p_hat(feats.u, feats.p, usable, params.bandwidth)  # each training task's p_hat
        errors = rel.fit_error_model(feats.u, feats.p, feats.s2, feats.accuracy, usable, params.bandwidth, hats)
        out.append(Nested(fits, feats.u, feats.p, eta, errors, **_measured(feats, b, usable, hats, params.bandwidth),
                          ridge=ridge.held_out_picks(grams, feats.accuracy, b, usable)))
    return out


def _measured(feats: loto.TaskFeatures, b: int, usable: np.ndarray, hats: np.ndarray,
              bandwidth: float) -> dict[str, Any]:
    """What the later candidates read in a pool without b, measured on its usable training tasks (at
    least three, else nothing: the candidates then take the paper's decision): b's local and combined p
    estimates, each with the spread over models of accuracy - S3 it gives (``rel.measured_score_sd``),
    and the training record's prior (``rel.record_prior``). ``hats``: each training task's p_hat."""
    t = np.flatnonzero(usable)
    if len(t) < 3:
        return {}
    hat_train = hats[t]
    loc_train = feats.p_local[t]
    w = rel.combination_weight(feats.p[t] - hat_train, feats.p[t] - loc_train)
    comb_train = w * hat_train + (1.0 - w) * loc_train
    hat_b, _ = sc.nadaraya_watson(float(feats.u[b]), feats.u[usable], feats.p[usable], bandwidth)
    acc, s2 = feats.accuracy[t], feats.s2[t]
    return {"p_local": feats.p_local[b].copy(),
            "local_sd": rel.measured_score_sd(sc.s3_from_s2(s2, loc_train), acc),
            "p_combined": w * hat_b + (1.0 - w) * feats.p_local[b],
            "combined_sd": rel.measured_score_sd(sc.s3_from_s2(s2, comb_train), acc),
            "combined_w": w, "prior": rel.record_prior(feats.accuracy[t])}


def held_out(d: int, table: loto.LotoTable, data: BenchmarkData, vectors: np.ndarray,
             params: RoutingParams, costs: np.ndarray | None, alpha: float, rng: np.random.Generator,
             seed: int, nested: Nested | None = None) -> HeldOut:
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
    p_params = replace(params, method="paper", seed=seed, p_estimator="nadaraya-watson")  # the S3 columns
    dec = decide_task(agg, data.models, u_train, p_train, bma, costs, p_params)
    # the local estimate of p: LOTO agreement around each prompt (neighbours from other tasks)
    rows_eval = np.setdiff1d(rows, lab_rows) if len(lab_rows) else rows
    p_nw = np.array([dec.p_hat[m] for m in data.models])
    p_loc = sc.local_predictor_accuracy(table.ids[rows_eval, : params.u_k], table.agree, p_nw).mean(axis=0)
    dec_loc = decide_task(agg, data.models, u_train, p_train, bma, costs, p_params, p_override=p_loc)
    labelled = None
    if len(lab_rows):
        labelled = fb.label_outcomes(data.labels[lab_rows])
    calibrated = {}
    agg_loc = TaskAggregates(agg.n, agg.sum_g, agg.sum_gbar, agg.sum_u, p_loc * agg.n)
    for name, fit in (nested.calibrations if nested else {}).items():
        calibrated[name] = decide_calibrated(agg_loc, data.models, fit, u_train, p_train, bma, costs,
                                             replace(params, seed=seed), labelled=labelled)
    p_true = sc.predictor_accuracy(g, eval_labels)
    p_true_filled = np.where(np.isnan(p_true), 0.5, p_true)
    true_acc = table.accuracy[d]
    idx = {m: i for i, m in enumerate(data.models)}
    s1v, s2v = agg.sum_g / agg.n, agg.sum_gbar / agg.n
    s3_true = sc.s3_from_s2(s2v, p_true_filled)
    if nested is not None:
        def in_nested(a: TaskAggregates, test: str) -> Decision:
            """An S3 decision with one of FALLBACK_TESTS, from the pool without this task (its p_hat
            targets and score_sd)."""
            return decide_task(a, data.models, nested.u[train], nested.p[train], bma, costs,
                               replace(p_params, **FALLBACK_TESTS[test]), score_sd=nested.errors.score_sd)

        dec_nested = in_nested(agg, "paper")
        calibrated["S3_nested"] = dec_nested
        argmax = idx[dec_nested.argmax_model or dec_nested.model]
        self_pick = selfcheck.pick(argmax, bma, dec_nested.prob_beats_bma, nested.eta)
        s3_nested = np.array([dec_nested.s3[m] for m in data.models])
        # the default method's decision (as Router.decide makes it, with the pool's measured score_sd),
        # and its test without the binomial guard (S3_uncertain) or with the lead's sampling variance
        uncertain_guard = idx[in_nested(agg, "uncertain_guard").model]
        uncertain = idx[in_nested(agg, "uncertain").model]
        uncertain_n = idx[in_nested(agg, "uncertain_n").model]
        paper = idx[dec_nested.model]  # where too few training tasks measure anything
        better = {"S3_posterior": paper if nested.prior is None
                  else rel.posterior_pick(s3_nested, *nested.prior, nested.errors.score_sd, bma, params.eta),
                  **nested.ridge}
        for name, p_x, sd in (("S3_local_uncertain", nested.p_local, nested.local_sd),
                              ("S3_combined_uncertain", nested.p_combined, nested.combined_sd)):
            if p_x is None:
                better[name] = paper
                continue
            s3_x = sc.s3_from_s2(s2v, p_x)
            better[name], _ = rel.uncertain_pick(s3_x, sc.cost_aware_choice(s3_x, costs, params.epsilon, params.lam),
                                                 bma, sd, params.eta)
    if labelled is not None:  # the labels as direct evidence, with the pool's sigma (no held-out label in its fit)
        sigma_fit = nested.calibrations.get("calibrated") if nested else None
        calibrated["S3_evidence"] = fb.with_label_evidence(dec, sigma_fit, *labelled)
        agg0 = TaskAggregates.from_rows(table.g[rows_eval], table.u_prompt[rows_eval])  # labels not in the pool
        dec0 = decide_task(agg0, data.models, u_train, p_train, bma, costs, p_params)
        calibrated["S3_evidence_only"] = fb.with_label_evidence(dec0, sigma_fit, *labelled)
        errors = nested.errors if nested else rel.DEFAULT_ERRORS
        calibrated["S3_evidence_reliable"] = rel.with_label_evidence(dec0, data.models, errors, sigma_fit, *labelled,
                                                                     p_params, costs)
        calibrated["S3_label_posterior"] = label_evidence.revise_decision(dec0, data.models, errors, *labelled,
                                                                          params, costs)
        if nested is not None:  # the same labels path from the uncertain method's zero-label decision
            calibrated["S3_uncertain_labels"] = label_evidence.revise_decision(
                in_nested(agg0, "uncertain_guard"), data.models, errors, *labelled, params, costs)
    elif alpha > 0:  # a task too small for any label at this alpha: the zero-label decision
        for name in ("S3_evidence", "S3_evidence_only", "S3_evidence_reliable", "S3_label_posterior"):
            calibrated[name] = dec
    picks = {
        **{name: idx[d.model] for name, d in calibrated.items()},
        **({"S3_selfcheck": self_pick, "S3_uncertain": uncertain, "S3_uncertain_n": uncertain_n,
            "S3_uncertain_guard": uncertain_guard, **better}
           if nested is not None else {}),
        **({"S3_uncertain_labels": uncertain_guard} if nested is not None and alpha > 0 and labelled is None else {}),
        "S1": sc.cost_aware_choice(s1v, costs, params.epsilon, params.lam),
        "S2": sc.cost_aware_choice(s2v, costs, params.epsilon, params.lam),
        "S3": idx[dec.model],
        "S3_local_p": idx[dec_loc.model],
        "S3_true_p": sc.cost_aware_choice(s3_true, costs, params.epsilon, params.lam),
        "BMA": bma,
        "Oracle": int(np.nanargmax(true_acc)),
    }
    picks["default"] = picks[default_pick(params.method, alpha)]
    picks = {m: picks[m] for m in METHODS if m in picks}

    def model_arr(dd: dict[str, float]) -> np.ndarray:
        return np.array([dd[m] for m in data.models])

    expected = model_arr(calibrated["calibrated"].expected) if "calibrated" in calibrated else model_arr(dec.s3)
    calibrated.pop("S3_nested", None)
    return HeldOut(table.task_names[d], int(len(rows)), float(agg.sum_u / agg.n), true_acc, s1v, s2v,
                   model_arr(dec.s3), model_arr(dec.p_hat), model_arr(dec.p_std), p_true, p_loc, picks,
                   expected, nested.p_local if nested else None, nested.p_combined if nested else None)


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
              params_b: np.ndarray | None, method_of_default: str = "calibrated") -> dict[str, Any]:
    """Per-method figures averaged over tasks, then over repeats."""
    out: dict[str, Any] = {}
    for method in METHODS:
        if method not in runs[0][0].picks:
            continue
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
            score_of = {"default": "expected" if PICK_OF_METHOD.get(method_of_default) == "calibrated" else "s3",
                        "calibrated": "expected", "S1": "s1", "S2": "s2", "S3": "s3"}.get(method)
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
    cals = default_calibrations(data, vectors, params, table)
    runs: list[list[HeldOut]] = []
    for r in range(max(1, repeats)):
        rng = np.random.default_rng(seed + r)
        runs.append([held_out(d, table, data, vectors, params, costs, alpha, rng, seed + r, cals[d])
                     for d in range(D)])
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
        "scores": {"calibrated": named(h.expected), "S1": named(h.s1), "S2": named(h.s2), "S3": named(h.s3)},
        "p_hat": named(h.p_hat), "p_std": named(h.p_std), "p_true": named(h.p_true),
        "p_local": named(h.p_local),
        "picks": {k: data.models[v] for k, v in h.picks.items()},
    } for h in first]
    mae = [float(np.nanmean(np.abs(h.p_hat - h.p_true))) for run in runs for h in run]
    mae_loc = [float(np.nanmean(np.abs(h.p_local - h.p_true))) for run in runs for h in run]

    def nested_mae(field: str) -> float | None:
        errs = [float(np.nanmean(np.abs(getattr(h, field) - h.p_true))) for run in runs for h in run
                if getattr(h, field) is not None]
        return float(np.nanmean(errs)) if errs else None
    # the default's reliability estimate is the local one (docs/method.md)
    report: dict[str, Any] = {
        "dataset": data.name, "models": list(data.models), "n_tasks": D, "n_prompts": int(len(data)),
        "alpha": alpha, "repeats": max(1, repeats), "params": params.to_dict(),
        "tasks": tasks, "methods": summarise(runs, data.models, task_costs, params_b, params.method),
        "p_hat_mae": float(np.nanmean(mae)),
        "p_local_mae": float(np.nanmean(mae_loc)),
        # the same two estimates from a pool without the held-out task anywhere (the candidates'), and
        # p_hat and the local estimate combined by their errors on the training tasks
        "p_local_nested_mae": nested_mae("p_local_nested"),
        "p_combined_mae": nested_mae("p_combined"),
        # the default's own reliability estimate: local for the calibrated method, p_hat for the paper's
        "p_default_mae": float(np.nanmean(mae_loc if params.method == "calibrated" else mae)),
    }
    report["default_method"] = {
        "method": params.method, "same_as": PICK_OF_METHOD[params.method], "features": list(params.features),
        "calibrated_strengths": [c.calibrations["calibrated"].strength for c in cals],
        "selfcheck_eta": [c.eta for c in cals],
        "combined_w": [c.combined_w for c in cals],
        "local_sd": [c.local_sd for c in cals], "combined_sd": [c.combined_sd for c in cals],
        "calibrated_beta": [[float(x) for x in c.calibrations["calibrated"].beta] for c in cals]}
    if costs is not None:
        report["cost_curve"] = cost_curve(data, vectors, table, params, costs, cals)
    sizes = size_costs(data)
    stand_in = task_costs if task_costs is not None else (None if sizes is None else np.tile(sizes, (D, 1)))
    if stand_in is not None:
        report["default_cost_curve"] = default_cost_curve(first, stand_in, task_costs is None, params.method)
    return report


EPSILONS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)


def size_costs(data: BenchmarkData) -> np.ndarray | None:
    """Model size as the cost where the data has no prices (``BenchmarkData.size_costs``)."""
    return data.size_costs()


def default_cost_curve(run: list[HeldOut], costs: np.ndarray, sizes: bool, method: str) -> list[dict[str, Any]]:
    """The default's epsilon knob (cheapest model whose score is within epsilon of the best: expected
    accuracy for the calibrated method, S3 for the paper's, without its fallback): accuracy and mean
    cost of its picks, and both relative to BMA's. ``costs`` is (D, M): each task's mean cost per query.

    The last row, ``epsilon: null``, is a reference no router reaches: each task's most accurate model
    among those costing at most a quarter of BMA's cost there (the issue's quality-floor target).
    """
    out: list[dict[str, Any]] = []
    bma_acc = float(np.mean([h.true_accuracy[h.picks["BMA"]] for h in run]))
    bma_cost = float(np.mean([costs[i][h.picks["BMA"]] for i, h in enumerate(run)]))

    def row(eps: float | None, picks: list[int]) -> dict[str, Any]:
        acc = float(np.mean([h.true_accuracy[p] for h, p in zip(run, picks)]))
        cost = float(np.mean([costs[i][p] for i, p in enumerate(picks)]))
        return {"epsilon": eps, "accuracy": acc, "mean_cost": cost,
                "cost_unit": "params_b" if sizes else "usd_per_query",
                "accuracy_vs_bma": acc / bma_acc if bma_acc else float("nan"),
                "cost_vs_bma": cost / bma_cost if bma_cost else float("nan")}

    for eps in EPSILONS:
        out.append(row(eps, [sc.cost_aware_choice(h.expected if method == "calibrated" else h.s3, costs[i],
                                                  epsilon=eps) if eps else h.picks["default"]
                             for i, h in enumerate(run)]))
    ideal = []
    for i, h in enumerate(run):
        cheap = np.flatnonzero(costs[i] <= 0.25 * costs[i][h.picks["BMA"]])
        ideal.append(int(cheap[np.nanargmax(h.true_accuracy[cheap])]) if len(cheap) else h.picks["BMA"])
    out.append(row(None, ideal))
    return out


def cost_curve(data: BenchmarkData, vectors: np.ndarray, table: loto.LotoTable, params: RoutingParams,
               costs: np.ndarray, cals: list[Nested],
               points: int = 12) -> list[dict[str, float]]:
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
        hs = [held_out(d, table, data, vectors, p, costs, 0.0, rng, params.seed, cals[d])
              for d in range(len(table.task_names))]
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
