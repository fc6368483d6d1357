"""The ridge head (router_core.ridge): the fit on hand-computed data, the pick's margin, and the inner
leave-one-task-out choice checked against refits from the raw prompts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router_core import ridge
from router_core import scores as sc


def test_weights_match_the_hand_computed_ridge_with_a_free_intercept() -> None:
    # x = 0, 1, 2 and y = 0, 1, 1: centred, Sxy = 1 and Sxx = 2, so with lambda = 1 on the slope only
    # the slope is 1 / (2 + 1) and the intercept ybar - slope * xbar = 2/3 - 1/3
    vectors = np.array([[0.0], [1.0], [2.0]])
    labels = np.array([[0.0], [1.0], [1.0]])
    grams = ridge.Grams.of_pool(vectors, np.array([0, 0, 1]), labels, 2)
    w = grams.weights([0, 1], lam=1.0)
    assert w[:, 0] == pytest.approx([1 / 3, 1 / 3])
    # lambda 0 is least squares: slope 1/2, intercept 1/6
    assert grams.weights([0, 1], lam=0.0)[:, 0] == pytest.approx([0.5, 1 / 6])
    assert grams.mean_x[0] == pytest.approx([0.5, 1.0])


def test_a_missing_label_counts_as_the_models_mean() -> None:
    vectors = np.array([[0.0], [1.0], [2.0]])
    with_gap = ridge.Grams.of_pool(vectors, np.array([0, 0, 0]), np.array([[0.0], [np.nan], [1.0]]), 1)
    filled = ridge.Grams.of_pool(vectors, np.array([0, 0, 0]), np.array([[0.0], [0.5], [1.0]]), 1)
    assert with_gap.xty == pytest.approx(filled.xty)


def test_the_pick_needs_a_lead_larger_than_tau() -> None:
    r = np.array([0.50, 0.56, 0.52])
    assert ridge.pick(r, bma=0, tau=0.0) == 1
    assert ridge.pick(r, bma=0, tau=0.05) == 1
    assert ridge.pick(r, bma=0, tau=0.06 + 1e-12) == 0
    assert ridge.pick(r, bma=0, tau=math.inf) == 0
    assert ridge.pick(r, bma=1, tau=math.inf) == 1


def _naive_weights(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    xa = np.hstack([x, np.ones((len(x), 1))])
    pen = lam * np.eye(xa.shape[1])
    pen[-1, -1] = 0.0
    return np.asarray(np.linalg.solve(xa.T @ xa + pen, xa.T @ y))


def test_inner_choice_equals_refits_from_the_raw_prompts() -> None:
    rng = np.random.default_rng(3)
    n_tasks, per, dim, models = 6, 8, 3, 3
    task_of = np.repeat(np.arange(n_tasks), per)
    centres = rng.normal(size=(n_tasks, dim))
    vectors = centres[task_of] + 0.3 * rng.normal(size=(len(task_of), dim))
    labels = (rng.random((len(task_of), models)) < 0.3 + 0.4 * (vectors[:, :models] > 0)).astype(float)
    accuracy = np.vstack([labels[task_of == d].mean(axis=0) for d in range(n_tasks)])
    grams = ridge.Grams.of_pool(vectors, task_of, labels, n_tasks)
    train = np.array([0, 1, 2, 4, 5])
    score = {}
    for lam in ridge.LAMBDAS:
        for tau in ridge.TAUS:
            accs = []
            for t in train:
                others = train[train != t]
                rows = np.isin(task_of, others)
                w = _naive_weights(vectors[rows], labels[rows], lam)
                r = np.append(vectors[task_of == t].mean(axis=0), 1.0) @ w
                accs.append(accuracy[t, ridge.pick(r, sc.best_on_average(accuracy[others]), tau)])
            score[(lam, tau)] = float(np.mean(accs))
    best = max(score.values())
    expected = max((k for k, s in score.items() if s >= best - 1e-9), key=lambda k: (k[1], k[0]))
    assert ridge.best_pair(ridge.inner_scores(grams, accuracy, train), ridge.TAUS) == expected


def test_too_few_training_tasks_choose_the_most_cautious_pair() -> None:
    grams = ridge.Grams.of_pool(np.eye(3), np.array([0, 1, 2]), np.eye(3), 3)
    assert ridge.best_pair(ridge.inner_scores(grams, np.eye(3), np.array([0, 1])), ridge.TAUS) == (
        ridge.LAMBDAS[-1], math.inf)


def _two_directions() -> tuple[ridge.Grams, np.ndarray]:
    """Tasks 0-2 lie along e1, where model 0 is always right and model 1 always wrong; tasks 3-6 along
    e2, the other way round. Model 1 is the best on average."""
    rng = np.random.default_rng(0)
    per, n_tasks = 10, 7
    task_of = np.repeat(np.arange(n_tasks), per)
    along_e1 = task_of < 3
    vectors = np.where(along_e1[:, None], [1.0, 0.0], [0.0, 1.0]) + 0.05 * rng.normal(size=(len(task_of), 2))
    labels = np.stack([along_e1, ~along_e1], axis=1).astype(float)
    accuracy = np.vstack([labels[task_of == d].mean(axis=0) for d in range(n_tasks)])
    return ridge.Grams.of_pool(vectors, task_of, labels, n_tasks), accuracy


def test_the_head_departs_from_bma_where_the_training_tasks_show_it_pays() -> None:
    grams, accuracy = _two_directions()
    usable = np.ones(7, dtype=bool)
    assert sc.best_on_average(accuracy[1:]) == 1
    assert ridge.held_out_picks(grams, accuracy, 0, usable) == {"ridge": 0, "ridge_selfcheck": 0}
    assert ridge.held_out_picks(grams, accuracy, 4, usable) == {"ridge": 1, "ridge_selfcheck": 1}


def test_an_unusable_task_is_left_out_of_the_fit_and_the_choice() -> None:
    grams, accuracy = _two_directions()
    usable = np.ones(7, dtype=bool)
    usable[[1, 2]] = False  # no other task along e1 is left: nothing says model 0 wins there
    picks = ridge.held_out_picks(grams, accuracy, 0, usable)
    assert picks["ridge_selfcheck"] == 1


def test_chunked_solves_and_one_inner_pass_for_both_candidates_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    grams, accuracy = _two_directions()
    train = np.array([1, 2, 3, 4, 5, 6])
    whole = ridge.inner_scores(grams, accuracy, train)
    monkeypatch.setattr(ridge, "CHUNK", 2)
    assert ridge.inner_scores(grams, accuracy, train) == whole
    usable = np.ones(7, dtype=bool)
    for b in range(7):
        others = np.flatnonzero(np.arange(7) != b)
        bma = sc.best_on_average(accuracy[others])
        for name, taus in ridge.CANDIDATE_TAUS.items():
            lam, tau = ridge.best_pair(ridge.inner_scores(grams, accuracy, others, taus=taus), taus)
            alone = ridge.pick(grams.mean_x[b] @ grams.weights(others, lam), bma, tau)
            assert ridge.held_out_picks(grams, accuracy, b, usable)[name] == alone
