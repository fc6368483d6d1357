"""Task decisions: the eta fallback, the cost knobs, and aggregates == batch."""

import numpy as np
import pytest

from router_core import scores as sc
from router_core.decision import Decision, RoutingParams, decide_instance, decide_task
from router_core.state import TaskAggregates

MODELS = ["big", "small"]
U_TRAIN = np.array([0.3, 0.5])
P_TRAIN = np.array([[0.9, 0.9], [0.9, 0.9]])


def agg_of(gbar_big: int, gbar_small: int, n: int = 20, u: float = 0.4) -> TaskAggregates:
    return TaskAggregates(n, np.array([gbar_big, gbar_small], float), np.array([gbar_big, gbar_small], float), u * n)


def test_s3_pick_kept_when_clearly_better_than_bma():
    d = decide_task(agg_of(5, 18), MODELS, U_TRAIN, P_TRAIN, bma=0, costs=None, params=RoutingParams())
    assert d.model == "small" and d.method == "S3" and d.bma == "big"
    assert d.prob_beats_bma > 0.6
    assert d.ranking == ["small", "big"]


def test_fallback_to_bma_when_evidence_is_weak():
    # S3 prefers small by one prompt out of 20: P(beats BMA) ~ 0.5 < eta
    d = decide_task(agg_of(10, 11), MODELS, U_TRAIN, P_TRAIN, bma=0, costs=None, params=RoutingParams())
    assert d.argmax_model == "small"
    assert d.model == "big" and d.method == "BMA-fallback"
    assert d.prob_beats_bma < 0.6
    no_fb = decide_task(agg_of(10, 11), MODELS, U_TRAIN, P_TRAIN, 0, None, RoutingParams(fallback=False))
    assert no_fb.model == "small"


def test_epsilon_prefers_cheaper_model_and_fallback_respects_margin():
    costs = np.array([0.01, 0.0005])
    d = decide_task(agg_of(18, 17), MODELS, U_TRAIN, P_TRAIN, 0, costs, RoutingParams(epsilon=0.1))
    assert d.model == "small" and d.method == "S3"
    plain = decide_task(agg_of(18, 17), MODELS, U_TRAIN, P_TRAIN, 0, costs, RoutingParams())
    assert plain.model == "big"


def test_decision_dict_round_trip():
    d = decide_task(agg_of(5, 18), MODELS, U_TRAIN, P_TRAIN, 0, None, RoutingParams())
    back = Decision.from_dict(d.to_dict())
    assert back.model == d.model and back.s3 == d.s3 and back.ranking == d.ranking


def test_aggregates_equal_batch():
    rng = np.random.default_rng(7)
    g = rng.random((37, 4))
    u = rng.random(37)
    batch = TaskAggregates.from_rows(g, u)
    inc = TaskAggregates.empty(4)
    for row, uu in zip(g, u):
        inc = inc.fold(row, uu)
    assert inc.n == batch.n
    assert inc.sum_g == pytest.approx(batch.sum_g)
    assert np.array_equal(inc.sum_gbar, batch.sum_gbar)
    assert TaskAggregates.from_dict(inc.to_dict()).sum_u == pytest.approx(batch.sum_u)
    models = ["a", "b", "c", "d"]
    u_tr, p_tr = np.array([0.2, 0.4, 0.6]), rng.random((3, 4))
    d_inc = decide_task(inc, models, u_tr, p_tr, 2, None, RoutingParams())
    d_batch = decide_task(batch, models, u_tr, p_tr, 2, None, RoutingParams())
    assert d_inc.model == d_batch.model and d_inc.s3 == pytest.approx(d_batch.s3)
    # and both equal the formulas over the raw rows
    p_hat, _ = sc.nadaraya_watson(float(u.mean()), u_tr, p_tr)
    assert list(d_batch.s3.values()) == pytest.approx(sc.s3(g, p_hat), abs=1e-6)
    assert list(d_batch.s1.values()) == pytest.approx(sc.s1(g), abs=1e-6)
    # merge of two halves is the whole
    half = TaskAggregates.from_rows(g[:20], u[:20]).merge(TaskAggregates.from_rows(g[20:], u[20:]))
    assert half.sum_g == pytest.approx(batch.sum_g)


def test_instance_decision_names_scores():
    d = decide_instance(np.array([0.2, 0.8]), MODELS, np.array([0.9, 0.1]), None, RoutingParams())
    assert d.model == "small" and d.method == "instance" and d.g == {"big": 0.2, "small": 0.8}


def test_a_cheaper_model_tied_with_bma_is_not_undone_by_the_fallback():
    agg = agg_of(18, 18)  # model 1 as good as BMA (model 0) on every prompt
    costs = np.array([0.01, 0.0005])
    d = decide_task(agg, MODELS, U_TRAIN, P_TRAIN, 0, costs, RoutingParams(epsilon=0.0))
    assert d.model == MODELS[1] and d.method == "S3"
    d = decide_task(agg, MODELS, U_TRAIN, P_TRAIN, 0, costs, RoutingParams())
    assert d.model == MODELS[0]  # knobs off: the paper's argmax and test exactly, ties to the first
    d = decide_task(agg, MODELS, U_TRAIN, P_TRAIN, 0, None, RoutingParams(epsilon=0.0))
    assert d.model == MODELS[0]  # no costs: nothing to prefer
