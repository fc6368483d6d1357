"""The paper's formulas on tiny arrays, against numbers worked out by hand."""

import numpy as np
import pytest

from router_core import scores as sc

# 4 pool prompts x 2 models
LABELS = np.array([[1, 0], [1, 1], [0, 1], [1, np.nan]], dtype=float)


def test_knn_correctness_means_neighbour_labels_and_skips_missing():
    ids = np.array([[0, 1, 3], [2, 3, 3]])
    g = sc.knn_correctness(ids, LABELS, fallback=np.array([0.25, 0.75]))
    # row 0: model0 (1+1+1)/3, model1 (0+1)/2 (prompt 3 unlabelled)
    # row 1: model0 (0+1+1)/3, model1 only prompt 2 labelled -> 1
    assert g == pytest.approx(np.array([[1.0, 0.5], [2 / 3, 1.0]]))
    g2 = sc.knn_correctness(np.array([[3, 3]]), LABELS, fallback=np.array([0.25, 0.75]))
    assert g2[0, 1] == pytest.approx(0.75)  # no labelled neighbour: the model's training mean


def test_s1_s2_s3_by_hand():
    g = np.array([[0.8, 0.4], [0.6, 0.6], [0.2, 0.4]])
    assert sc.s1(g) == pytest.approx([1.6 / 3, 1.4 / 3])
    # gbar = [[1,0],[1,1],[0,0]] (0.5 is not > 0.5)
    assert sc.s2(g) == pytest.approx([2 / 3, 1 / 3])
    p = np.array([0.9, 0.6])
    # S3 = p*S2 + (1-p)*(1-S2)
    assert sc.s3(g, p) == pytest.approx([0.9 * 2 / 3 + 0.1 / 3, 0.6 / 3 + 0.4 * 2 / 3])
    assert sc.threshold(np.array([0.5, 0.5000001])) == pytest.approx([0.0, 1.0])


def test_agreement_is_the_outcome_where_predicted_right_and_its_complement_where_predicted_wrong():
    g = np.array([0.9, 0.9, 0.2, 0.2, 0.5])
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.25])
    assert sc.agreement(g, y) == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.75])  # 0.5 thresholds to 0


def test_prompt_distance_and_predictor_accuracy():
    dists = np.array([[0.1, 0.3, 0.5], [0.2, 0.2, 0.8]])
    assert sc.prompt_distance(dists, k=2) == pytest.approx([0.2, 0.2])
    g = np.array([[0.8, 0.2], [0.2, 0.8], [0.6, 0.6]])
    y = np.array([[1, 1], [0, 1], [0, np.nan]])
    # model0: gbar 1,0,1 vs 1,0,0 -> 2/3; model1: gbar 0,1 vs 1,1 -> 1/2 (third unlabelled)
    assert sc.predictor_accuracy(g, y) == pytest.approx([2 / 3, 0.5])


def test_nadaraya_watson_by_hand():
    u_train = np.array([0.5, 0.6, 0.9])
    p_train = np.array([[0.8, 0.4], [0.6, 0.5], [0.2, 0.9]])
    h = 0.09
    w = np.exp(-0.5 * ((0.55 - u_train) / h) ** 2)
    expect = (w[:, None] * p_train).sum(0) / w.sum()
    mean, std = sc.nadaraya_watson(0.55, u_train, p_train, h)
    assert mean == pytest.approx(expect)
    var = (w[:, None] * (p_train - expect) ** 2).sum(0) / w.sum()
    assert std == pytest.approx(np.sqrt(var))
    # equidistant from the first two tasks, far from the third: the mean of the two
    assert mean[0] == pytest.approx(0.7, abs=1e-3)


def test_nadaraya_watson_far_task_uses_nearest_and_skips_nan():
    mean, _ = sc.nadaraya_watson(5.0, np.array([0.5, 0.6]), np.array([[0.8, np.nan], [0.6, 0.3]]))
    assert mean[0] == pytest.approx(0.6)  # weights of the nearest, not 0/0
    assert mean[1] == pytest.approx(0.3)  # NaN target ignored


def test_prob_beats_is_seeded_and_sensible():
    a = sc.prob_beats(100, 90, 0.9, 50, 0.9, seed=3)
    assert a == sc.prob_beats(100, 90, 0.9, 50, 0.9, seed=3)
    assert a > 0.99  # ~82 vs ~50 expected correct
    assert sc.prob_beats(100, 50, 0.9, 90, 0.9) < 0.01
    # equal evidence: about a coin flip minus ties
    even = sc.prob_beats(100, 60, 0.7, 60, 0.7, draws=4000)
    assert 0.35 < even < 0.55
    # a margin lets the first trail by up to 5 answers
    assert sc.prob_beats(100, 60, 0.7, 60, 0.7, margin=-5, draws=4000) > 0.7


def test_best_on_average_uses_mean_of_task_accuracies():
    acc = np.array([[0.9, 0.5], [0.1, 0.6], [np.nan, 0.7]])
    # model0 mean over its tasks = 0.5, model1 = 0.6
    assert sc.best_on_average(acc) == 1


def test_cost_aware_choice_knobs():
    s = np.array([0.80, 0.78, 0.60])
    c = np.array([0.010, 0.001, 0.0001])
    assert sc.cost_aware_choice(s, c) == 0
    assert sc.cost_aware_choice(s, c, epsilon=0.03) == 1  # cheapest within 0.03 of the best
    assert sc.cost_aware_choice(s, c, epsilon=0.25) == 2
    # lambda: 0.80-0.010L vs 0.78-0.001L -> model 1 once L > 2.22
    assert sc.cost_aware_choice(s, c, lam=2.0) == 0
    assert sc.cost_aware_choice(s, c, lam=3.0) == 1
    assert sc.cost_aware_choice(s, None, epsilon=0.5) == 0  # no costs: knobs ignored


def test_instance_choice_tie_break_by_training_mean():
    g = np.array([0.6, 0.6, 0.4])
    assert sc.instance_choice(g, np.array([0.5, 0.7, 0.9])) == 1
    assert sc.instance_choice(g, np.array([0.8, 0.7, 0.9])) == 0


def test_local_predictor_accuracy_by_hand():
    agree = np.array([[1, 0], [1, np.nan], [0, 1]], dtype=float)
    ids = np.array([[0, 1], [1, 2], [1, 1]])
    p = sc.local_predictor_accuracy(ids, agree, fallback=np.array([0.5, 0.7]))
    # row 0: model0 (1+1)/2, model1 only prompt 0 -> 0; row 1: (1+0)/2, only prompt 2 -> 1;
    # row 2: model0 1, model1 no labelled neighbour -> fallback 0.7
    assert p == pytest.approx(np.array([[1.0, 0.0], [0.5, 1.0], [1.0, 0.7]]))


def test_ties_go_to_the_cheaper_model_when_costs_are_known():
    s = np.array([0.8, 0.8, 0.8, 0.6])
    c = np.array([0.010, 0.002, 0.005, 0.0001])
    assert sc.cost_aware_choice(s, None) == 0  # no costs: plain argmax
    assert sc.cost_aware_choice(s, c) == 0  # knobs off: the paper's argmax, ties to the first
    assert sc.cost_aware_choice(s, c, epsilon=0.0) == 1  # a knob on: the cheapest of the three tied
    assert sc.cost_aware_choice(s, c, lam=0.0) == 1
    assert sc.cost_aware_choice(s + np.array([0, 0, 1e-6, 0]), c, epsilon=0.0) == 2  # not a tie
    # per prompt: a tie in g goes to the cheaper model before the training mean decides
    g = np.array([0.6, 0.6, 0.4])
    assert sc.instance_choice(g, np.array([0.9, 0.5, 0.9]), costs=np.array([5.0, 1.0, 0.1])) == 1
    assert sc.instance_choice(g, np.array([0.5, 0.9, 0.9]), costs=np.array([1.0, 1.0, 0.1])) == 1
