"""Task decisions: the eta fallback (the paper's test and the uncertain method's), the cost knobs, and
aggregates == batch."""

import math

import numpy as np
import pytest

from router_core import scores as sc
from router_core.decision import Decision, RoutingParams, decide_instance, decide_task
from router_core.state import TaskAggregates

MODELS = ["big", "small"]
U_TRAIN = np.array([0.3, 0.5])
P_TRAIN = np.array([[0.9, 0.9], [0.9, 0.9]])
PAPER = RoutingParams(method="paper")


def agg_of(gbar_big: int, gbar_small: int, n: int = 20, u: float = 0.4) -> TaskAggregates:
    return TaskAggregates(n, np.array([gbar_big, gbar_small], float), np.array([gbar_big, gbar_small], float), u * n)


def test_s3_pick_kept_when_clearly_better_than_bma():
    d = decide_task(agg_of(5, 18), MODELS, U_TRAIN, P_TRAIN, bma=0, costs=None, params=PAPER)
    assert d.model == "small" and d.method == "S3" and d.bma == "big"
    assert d.prob_beats_bma > 0.6
    assert d.ranking == ["small", "big"]


def test_fallback_to_bma_when_evidence_is_weak():
    # S3 prefers small by one prompt out of 20: P(beats BMA) ~ 0.5 < eta
    d = decide_task(agg_of(10, 11), MODELS, U_TRAIN, P_TRAIN, bma=0, costs=None, params=PAPER)
    assert d.argmax_model == "small"
    assert d.model == "big" and d.method == "BMA-fallback"
    assert d.prob_beats_bma < 0.6
    no_fb = decide_task(agg_of(10, 11), MODELS, U_TRAIN, P_TRAIN, 0, None,
                        RoutingParams(method="paper", fallback=False))
    assert no_fb.model == "small"


def test_epsilon_prefers_cheaper_model_and_fallback_respects_margin():
    costs = np.array([0.01, 0.0005])
    d = decide_task(agg_of(18, 17), MODELS, U_TRAIN, P_TRAIN, 0, costs, RoutingParams(method="paper", epsilon=0.1))
    assert d.model == "small" and d.method == "S3"
    plain = decide_task(agg_of(18, 17), MODELS, U_TRAIN, P_TRAIN, 0, costs, PAPER)
    assert plain.model == "big"


def test_decision_dict_round_trip():
    d = decide_task(agg_of(5, 18), MODELS, U_TRAIN, P_TRAIN, 0, None, PAPER)
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
    d_inc = decide_task(inc, models, u_tr, p_tr, 2, None, PAPER)
    d_batch = decide_task(batch, models, u_tr, p_tr, 2, None, PAPER)
    assert d_inc.model == d_batch.model and d_inc.s3 == pytest.approx(d_batch.s3)
    # and both equal the formulas over the raw rows
    p_hat, _ = sc.nadaraya_watson(float(u.mean()), u_tr, p_tr)
    assert list(d_batch.s3.values()) == pytest.approx(sc.s3(g, p_hat), abs=1e-6)
    assert list(d_batch.s1.values()) == pytest.approx(sc.s1(g), abs=1e-6)
    # merge of two halves is the whole
    half = TaskAggregates.from_rows(g[:20], u[:20]).merge(TaskAggregates.from_rows(g[20:], u[20:]))
    assert half.sum_g == pytest.approx(batch.sum_g)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_uncertain_method_tests_the_lead_against_the_measured_error():
    # p_hat = 0.9 (every training task), S2 = 10/20 and 14/20: S3 = 0.9 S2 + 0.1 (1 - S2) = 0.5 and 0.66
    # (the measured test alone: without the default's binomial guard)
    unc = RoutingParams(method="uncertain", binomial_guard=False)
    lead = 0.66 - 0.5
    sure = decide_task(agg_of(10, 14), MODELS, U_TRAIN, P_TRAIN, 0, None, unc, score_sd=0.1)
    assert sure.model == "small" and sure.method == "S3"
    assert sure.prob_beats_bma == pytest.approx(_phi(lead / (math.sqrt(2) * 0.1)))  # 0.871
    unsure = decide_task(agg_of(10, 14), MODELS, U_TRAIN, P_TRAIN, 0, None, unc, score_sd=0.5)
    assert unsure.model == "big" and unsure.method == "BMA-fallback" and unsure.argmax_model == "small"
    assert unsure.prob_beats_bma == pytest.approx(_phi(lead / (math.sqrt(2) * 0.5)))  # 0.590 < eta
    # no score_sd measured (an old artifact): the default spread
    assert decide_task(agg_of(10, 14), MODELS, U_TRAIN, P_TRAIN, 0, None, unc).prob_beats_bma == pytest.approx(
        _phi(lead / (math.sqrt(2) * sc.DEFAULT_SCORE_SD)))


def test_uncertain_method_does_not_grow_sure_with_the_prompt_count():
    # the same S2 shares from 20 and from 2,000 prompts: the paper's binomial test becomes certain, the
    # measured one reads the same lead against the same error
    unc, sd = RoutingParams(method="uncertain", binomial_guard=False), 0.3
    small_n = decide_task(agg_of(10, 11, n=20), MODELS, U_TRAIN, P_TRAIN, 0, None, unc, score_sd=sd)
    large_n = decide_task(agg_of(1000, 1100, n=2000), MODELS, U_TRAIN, P_TRAIN, 0, None, unc, score_sd=sd)
    assert small_n.prob_beats_bma == pytest.approx(large_n.prob_beats_bma)
    assert large_n.model == "big"  # lead 0.04 against sqrt(2) * 0.3: Phi(0.094) = 0.54 < eta
    paper = decide_task(agg_of(1000, 1100, n=2000), MODELS, U_TRAIN, P_TRAIN, 0, None, PAPER)
    assert paper.model == "small" and paper.prob_beats_bma > 0.99


def test_uncertain_test_with_the_leads_sampling_variance():
    # the same task (S2 0.5 and 0.7 of n = 20 prompts, p = 0.9): the lead's sampling variance is
    # [0.8^2 * 0.5 * 0.5 + 0.8^2 * 0.7 * 0.3] / 20 = 0.01472, added to 2 * 0.1^2
    v = (0.64 * 0.25 + 0.64 * 0.21) / 20
    assert sc.lead_sampling_var(20, np.array([10.0, 14.0]), np.array([0.9, 0.9]), 1, 0) == pytest.approx(v)
    unc_n = RoutingParams(method="uncertain", lead_sampling=True, binomial_guard=False)
    d = decide_task(agg_of(10, 14), MODELS, U_TRAIN, P_TRAIN, 0, None, unc_n, score_sd=0.1)
    assert d.prob_beats_bma == pytest.approx(_phi(0.16 / math.sqrt(2 * 0.01 + v)))  # 0.805, against 0.871
    # a hundred times the prompts, the same shares: the sampling term shrinks a hundredfold
    many = decide_task(agg_of(1000, 1400, n=2000), MODELS, U_TRAIN, P_TRAIN, 0, None, unc_n, score_sd=0.1)
    assert many.prob_beats_bma == pytest.approx(_phi(0.16 / math.sqrt(2 * 0.01 + v / 100)))


def test_uncertain_guard_takes_the_lesser_of_both_tests():
    # S2 0.5 and 0.55 (p = 0.9): S3 leads by 0.04; against score_sd 0.01 the measured test is sure
    # (Phi(2.83)), while the paper's binomial test on 20 prompts is not: the guard (on by default) keeps BMA
    guard, sd = RoutingParams(method="uncertain"), 0.01
    unc = RoutingParams(method="uncertain", binomial_guard=False)
    few = agg_of(10, 11, n=20)
    measured = decide_task(few, MODELS, U_TRAIN, P_TRAIN, 0, None, unc, score_sd=sd)
    binomial = decide_task(few, MODELS, U_TRAIN, P_TRAIN, 0, None, PAPER)
    guarded = decide_task(few, MODELS, U_TRAIN, P_TRAIN, 0, None, guard, score_sd=sd)
    assert measured.model == "small" and measured.prob_beats_bma == pytest.approx(_phi(0.04 / (math.sqrt(2) * sd)))
    assert binomial.model == "big" and binomial.prob_beats_bma < sc.ETA
    assert guarded.model == "big" and guarded.prob_beats_bma == binomial.prob_beats_bma
    # the same shares from 2,000 prompts: the binomial test is certain, the measured one decides alone
    many = agg_of(1000, 1100, n=2000)
    assert decide_task(many, MODELS, U_TRAIN, P_TRAIN, 0, None, PAPER).prob_beats_bma == 1.0
    guarded = decide_task(many, MODELS, U_TRAIN, P_TRAIN, 0, None, guard, score_sd=sd)
    assert guarded.model == "small" and guarded.prob_beats_bma == pytest.approx(_phi(0.04 / (math.sqrt(2) * sd)))


def test_uncertain_method_gives_the_cheaper_pick_the_cost_margin():
    # epsilon 0.1 with small cheaper: BMA must lead by 0.5 + 0.1 * 20 answers, i.e. 0.125 per prompt
    costs = np.array([0.01, 0.0005])
    unc = RoutingParams(method="uncertain", epsilon=0.1, binomial_guard=False)
    d = decide_task(agg_of(18, 17), MODELS, U_TRAIN, P_TRAIN, 0, costs, unc, score_sd=0.1)
    s3_big, s3_small = 0.9 * 0.9 + 0.1 * 0.1, 0.9 * 0.85 + 0.1 * 0.15
    assert d.model == "small"
    assert d.prob_beats_bma == pytest.approx(_phi((s3_small - s3_big + 0.125) / (math.sqrt(2) * 0.1)))


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
