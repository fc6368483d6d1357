"""The calibrated default decision: every formula on numbers worked out by hand."""

import numpy as np
import pytest

from router_core import calibration as cal
from router_core.decision import RoutingParams, decide_calibrated, decide_task, task_features
from router_core.state import TaskAggregates

MODELS = ["a", "b"]


def test_centred_removes_model_means_and_task_mean():
    x = np.array([[0.6, 0.2], [0.8, 0.6]])
    centre = np.array([0.7, 0.4])
    # rows minus centre: [-0.1, -0.2], [0.1, 0.2]; minus their row means -0.15 and 0.15
    assert cal.centred(x, centre) == pytest.approx(np.array([[0.05, -0.05], [-0.05, 0.05]]))


def test_predict_is_prior_plus_strength_times_beta_times_centred_score():
    prior = np.array([0.7, 0.6])
    centre = np.array([[0.5, 0.5]])
    x = np.array([[0.7, 0.5]])  # centred: [0.2, 0] - 0.1 = [0.1, -0.1]
    out = cal.predict(prior, centre, np.array([0.5]), 1.0, x)
    assert out == pytest.approx([0.75, 0.55])
    assert cal.predict(prior, centre, np.array([0.5]), 0.0, x) == pytest.approx(prior)


def _pool(signal: float, noise: float, D: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """D tasks, 2 models: true accuracy differences that the score sees with weight ``signal``."""
    rng = np.random.default_rng(seed)
    swing = rng.choice([-0.1, 0.1], D)
    acc = np.stack([0.7 + swing, 0.65 - swing], axis=1)
    s1 = 0.5 + signal * (acc - acc.mean(axis=1, keepdims=True)) + noise * rng.standard_normal((D, 2))
    return s1, acc


def test_fit_recovers_the_slope_and_uses_it_where_scores_predict():
    s1, acc = _pool(signal=0.5, noise=0.0)
    fit = cal.fit({"s1": s1}, acc, ["s1"])
    # accuracy moves 2 units per unit of centred score, exactly
    assert fit.beta == pytest.approx([2.0])
    assert fit.sigma == pytest.approx(0.0, abs=1e-9)
    # the smallest strength whose inner picks were as good as any (here 0.5 and 1 tie: ties go down)
    assert fit.strength == 0.5 and fit.inner["0.5"] == fit.inner["1"] > fit.inner["0.25"]
    assert fit.prior == pytest.approx(acc.mean(axis=0))
    # the inner leave-one-task-out found every task's best model at full strength
    assert fit.inner["1"] == pytest.approx(acc.max(axis=1).mean())
    assert fit.inner["0"] == pytest.approx(acc[:, int(np.argmax(acc.mean(axis=0)))].mean())


def test_fit_falls_back_to_the_prior_where_scores_are_noise():
    s1, acc = _pool(signal=0.0, noise=0.2, seed=3)
    rng = np.random.default_rng(11)
    s1 = rng.random(s1.shape)  # unrelated to accuracy
    fit = cal.fit({"s1": s1}, acc, ["s1"])
    best_inner = max(fit.inner.values())
    assert fit.inner[f"{fit.strength:g}"] == best_inner
    # whatever strength won, it did no worse than the prior alone on the inner folds
    assert best_inner >= fit.inner["0"]


def test_fewer_than_three_tasks_trust_the_prior():
    s1, acc = _pool(signal=0.5, noise=0.0, D=2)
    assert cal.fit({"s1": s1}, acc, ["s1"]).strength == 0.0


def test_calibration_round_trips_through_a_dict():
    s1, acc = _pool(signal=0.5, noise=0.01)
    fit = cal.fit({"s1": s1}, acc, ["s1"])
    back = cal.Calibration.from_dict(fit.to_dict())
    assert back.features == fit.features and back.strength == fit.strength
    assert back.beta == pytest.approx(fit.beta) and back.centre == pytest.approx(fit.centre)


def test_with_labels_moves_toward_observed_accuracy_by_their_count():
    expected = np.array([0.7, 0.6])
    # no labels: unchanged
    assert cal.with_labels(expected, 0.05, np.zeros(2), np.zeros(2)) == pytest.approx(expected)
    few = cal.with_labels(expected, 0.05, np.array([1.0, 4.0]), np.array([4.0, 4.0]))
    many = cal.with_labels(expected, 0.05, np.array([25.0, 100.0]), np.array([100.0, 100.0]))
    # model b is right on every labelled prompt, a on a quarter: both move, more with more labels
    assert few[1] > expected[1] and many[1] > few[1]
    assert few[0] < expected[0] and many[0] < few[0]
    assert many[1] > many[0]
    # by hand, 4 labels of b: a = (4 + 0.25*0.6)/4.25, var = max(a(1-a), .01)/4, prior var .0025
    a = (4 + 0.25 * 0.6) / 4.25
    v = max(a * (1 - a), 0.01) / 4
    assert few[1] == pytest.approx((0.6 / 0.0025 + a / v) / (1 / 0.0025 + 1 / v))


def test_decide_calibrated_picks_highest_expected_accuracy_and_the_cost_knob_trades_it():
    fit = cal.Calibration(features=("s1",), prior=np.array([0.7, 0.68]), centre=np.array([[0.5, 0.5]]),
                          beta=np.array([1.0]), strength=1.0, sigma=0.05)
    u_tr, p_tr = np.array([0.3, 0.5]), np.full((2, 2), 0.8)
    # s1 = [0.5, 0.56] -> centred [-0.03, 0.03] -> expected [0.67, 0.71]
    agg = TaskAggregates(10, np.array([5.0, 5.6]), np.array([5.0, 6.0]), 4.0)
    d = decide_calibrated(agg, MODELS, fit, u_tr, p_tr, 0, None, RoutingParams())
    assert d.method == "calibrated" and d.model == "b" and d.bma == "a"
    assert d.expected == pytest.approx({"a": 0.67, "b": 0.71})
    assert d.scores == d.expected and d.ranking == ["b", "a"]
    # b is dearer; within epsilon = 0.05 the cheaper a is taken
    costs = np.array([0.001, 0.01])
    assert decide_calibrated(agg, MODELS, fit, u_tr, p_tr, 0, costs, RoutingParams(epsilon=0.05)).model == "a"
    assert decide_calibrated(agg, MODELS, fit, u_tr, p_tr, 0, costs, RoutingParams(epsilon=0.01)).model == "b"


def test_calibrated_features_come_from_the_running_sums():
    agg = TaskAggregates(4, np.array([2.0, 3.0]), np.array([1.0, 4.0]), 1.0, np.array([2.0, 3.2]))
    f = task_features(agg)
    assert f["s1"] == pytest.approx([0.5, 0.75])
    assert f["s2"] == pytest.approx([0.25, 1.0])
    # S3 with p_local = [0.5, 0.8]: p S2 + (1-p)(1-S2)
    assert f["s3_local"] == pytest.approx([0.5 * 0.25 + 0.5 * 0.75, 0.8])


def test_paper_method_is_untouched_by_the_calibrated_one():
    """decide_task (the paper) is what --method paper runs; its numbers are the paper's formulas."""
    agg = TaskAggregates(20, np.array([5.0, 18.0]), np.array([5.0, 18.0]), 8.0)
    u_tr, p_tr = np.array([0.3, 0.5]), np.full((2, 2), 0.9)
    d = decide_task(agg, MODELS, u_tr, p_tr, 0, None, RoutingParams(method="paper"))
    s2 = np.array([0.25, 0.9])
    assert list(d.s3.values()) == pytest.approx(0.9 * s2 + 0.1 * (1 - s2))
    assert d.method == "S3" and d.model == "b"


def test_params_reject_unknown_method_and_features():
    with pytest.raises(ValueError, match="method"):
        RoutingParams(method="magic")
    with pytest.raises(ValueError, match="features"):
        RoutingParams(features=("s9",))
    assert RoutingParams(features=["s1", "s2"]).features == ("s1", "s2")  # type: ignore[arg-type]


def test_nested_worlds_on_a_tiny_pool():
    """Fewer prompts outside a task than the candidate width: the worlds still cover every task."""
    from router_core import loto

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((24, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tasks = np.repeat(["t0", "t1", "t2"], 8)
    labels = (rng.random((24, 2)) > 0.5).astype(np.float64)
    worlds = loto.Worlds(vecs, tasks, labels)
    assert worlds.ids.shape == (24, 16)  # 24 prompts, 8 in the largest task
    f = worlds.features(banned=0)
    # no prompt is its own task's neighbour, and with task 0 removed every g is a mean of 0/1 labels
    assert np.all(worlds.task_of[worlds.ids] != worlds.task_of[:, None])
    assert f.s1.shape == (3, 2) and np.all((f.s1 >= 0) & (f.s1 <= 1))
