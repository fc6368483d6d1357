"""The closed loop's maths (router_core.feedback, calibration.posterior) on cases worked by hand."""

import math

import numpy as np
import pytest

from router_core import calibration as cal
from router_core import feedback as fb
from router_core.decision import Decision


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_posterior_without_shared_level_is_the_per_model_normal_update():
    expected = np.array([0.7, 0.6])
    mean, cov = cal.posterior(expected, 0.1, np.array([50.0, 0.0]), np.array([100.0, 0.0]))
    a = (50 + 0.25 * 0.7) / 100.25  # the observed accuracy, shrunk a quarter count to the prior
    obs_var = a * (1 - a) / 100
    assert mean[0] == pytest.approx((0.7 / 0.01 + a / obs_var) / (1 / 0.01 + 1 / obs_var))
    assert cov[0, 0] == pytest.approx(1 / (1 / 0.01 + 1 / obs_var))
    # the unobserved model keeps its prior mean and variance, and nothing links the two
    assert mean[1] == pytest.approx(0.6) and cov[1, 1] == pytest.approx(0.01) and cov[0, 1] == 0.0
    assert cal.with_labels(expected, 0.1, np.array([50.0, 0.0]), np.array([100.0, 0.0])) == pytest.approx(mean)


def test_posterior_with_a_shared_level_moves_the_unobserved_model_too():
    # prior covariance [[0.02, 0.01], [0.01, 0.02]] (sigma 0.1, level 0.1)
    mean, cov = cal.posterior(np.array([0.7, 0.6]), 0.1, np.array([50.0, 0.0]), np.array([100.0, 0.0]),
                              level_sd=0.1)
    a = (50 + 0.25 * 0.7) / 100.25
    obs_var = a * (1 - a) / 100
    gain = np.array([0.02, 0.01]) / (0.02 + obs_var)
    assert mean == pytest.approx(np.array([0.7, 0.6]) + gain * (a - 0.7))
    assert cov[0, 0] == pytest.approx(0.02 - gain[0] * 0.02)
    assert cov[0, 1] == pytest.approx(0.01 - gain[0] * 0.01)
    assert cov[1, 1] == pytest.approx(0.02 - gain[1] * 0.01)
    # about 0.523 and 0.511: model 1 fell with the task's level, and stays behind
    assert mean[0] == pytest.approx(0.5227, abs=1e-3) and mean[1] == pytest.approx(0.5113, abs=1e-3)


def test_prob_better_is_the_normal_tail_of_the_difference():
    mean = np.array([0.5, 0.6])
    cov = np.array([[0.002, 0.001], [0.001, 0.011]])
    # difference 1 - 0: mean 0.1 - margin 0.02, variance 0.011 + 0.002 - 0.002 = 0.011
    assert fb.prob_better(mean, cov, 1, 0, 0.02) == pytest.approx(_phi(0.08 / math.sqrt(0.011)))
    assert fb.prob_better(mean, np.zeros((2, 2)), 1, 0) == 1.0


def _belief(mean, sigma=0.05, level=0.1):
    return fb.Belief(np.asarray(mean, dtype=float), sigma, level)


def test_a_served_model_doing_worse_than_predicted_is_not_a_reason_to_switch_to_an_untested_one():
    # predicted 0.70 vs 0.68; the served model gets 45/100: the task is hard, nothing says the other
    # model (never served) would do better
    belief = _belief([0.70, 0.68])
    correct, counted = np.array([45.0, 0.0]), np.array([100.0, 0.0])
    assert fb.revise(belief, 0, correct, counted, 0, fb.FeedbackParams()) is None
    # the independent update (no shared level) would compare 0.55 observed with 0.68 predicted and switch
    naive = fb.revise(_belief([0.70, 0.68], level=0.0), 0, correct, counted, 0, fb.FeedbackParams())
    assert naive is not None and naive.model == 1


def test_revises_when_both_records_say_so_with_confidence():
    belief = _belief([0.70, 0.68])
    correct, counted = np.array([50.0, 70.0]), np.array([100.0, 100.0])
    rev = fb.revise(belief, 0, correct, counted, 0, fb.FeedbackParams())
    assert rev is not None and rev.model == 1 and rev.previous == 0
    mean, cov = belief.posterior(correct, counted)
    assert rev.prob == pytest.approx(fb.prob_better(mean, cov, 1, 0, 0.01)) and rev.prob >= 0.9
    ev = rev.evidence(["a", "b"])
    assert ev["from"] == "a" and ev["to"] == "b" and ev["outcomes"] == {"a": 100, "b": 100}


def test_sticky_min_outcomes_cap_and_confidence():
    belief = _belief([0.70, 0.68])
    params = fb.FeedbackParams(min_outcomes=20, max_revisions=1)
    # the same 50 % vs 70 % record, but the served model has only 10 outcomes: not yet
    assert fb.revise(belief, 0, np.array([5.0, 70.0]), np.array([10.0, 100.0]), 0, params) is None
    # the cap
    assert fb.revise(belief, 0, np.array([50.0, 70.0]), np.array([100.0, 100.0]), 1, params) is None
    # a small edge (62 % vs 60 % on 100 each) is not confident enough either way
    assert fb.revise(belief, 0, np.array([60.0, 62.0]), np.array([100.0, 100.0]), 0, params) is None
    assert fb.revise(belief, 1, np.array([60.0, 62.0]), np.array([100.0, 100.0]), 0, params) is None


def test_explore_pick_is_the_model_most_likely_to_overturn_the_decision():
    belief = _belief([0.70, 0.60, 0.69, 0.50])
    assert fb.explore_pick(belief, 0, np.zeros(4), np.zeros(4)) == 2
    # once model 2 has a poor record, model 1 (untested) is the better bet
    assert fb.explore_pick(belief, 0, np.array([0.0, 0.0, 20.0, 0.0]), np.array([0.0, 0.0, 100.0, 0.0])) == 1


def test_resolved_exploration_stops_once_no_other_model_could_beat_the_served_one():
    params = fb.FeedbackParams(explore=0.1)  # the default: resolved; confidence 0.9, margin 0.01
    blind = fb.FeedbackParams(explore=0.1, explore_resolved=False)
    # P(model 2 beats model 0 by 0.01) = Phi((0.69 - 0.70 - 0.01) / (sqrt(2) 0.05)) = Phi(-0.28) = 0.39:
    # still plausible, explored as before
    belief = _belief([0.70, 0.60, 0.69, 0.50])
    assert fb.explore_pick(belief, 0, np.zeros(4), np.zeros(4), params) == 2
    # the best other model trails by 0.20: Phi(-0.21 / 0.0707) = 0.0015 < 1 - 0.9, nothing to explore
    far = _belief([0.80, 0.55, 0.60, 0.50])
    assert fb.explore_pick(far, 0, np.zeros(4), np.zeros(4), params) is None
    assert fb.explore_pick(far, 0, np.zeros(4), np.zeros(4), blind) == 2  # exploring blindly goes on regardless
    # records (the served model 80/100 against a predicted 0.70, model 2 20/100) rule out model 2 and,
    # through the task level they share, the untested ones: P(beats by 0.01) below 1e-8 for each
    poor = (np.array([80.0, 0.0, 20.0, 0.0]), np.array([100.0, 0.0, 100.0, 0.0]))
    assert fb.explore_pick(_belief([0.70, 0.50, 0.69, 0.50]), 0, *poor, params) is None
    assert fb.explore_pick(_belief([0.70, 0.50, 0.69, 0.50]), 0, *poor, blind) == 1  # the least hopeless


def test_belief_of_decision_prefers_expected_accuracy_and_takes_the_spread_from_the_calibration():
    d = Decision(model="a", method="S3", models=["a", "b"], ranking=["a", "b"], s3={"a": 0.6, "b": 0.5})
    assert fb.Belief.of_decision(d, None).mean == pytest.approx([0.6, 0.5])
    assert fb.Belief.of_decision(d, None).sigma == fb.DEFAULT_SIGMA
    c = cal.Calibration(("s1",), np.zeros(2), np.zeros((1, 2)), np.zeros(1), 0.0, 0.07, level_sd=0.12)
    d2 = Decision(model="b", method="calibrated", models=["a", "b"], ranking=["b", "a"],
                  s3={"a": 0.6, "b": 0.5}, expected={"a": 0.55, "b": 0.58})
    b = fb.Belief.of_decision(d2, c)
    assert b.mean == pytest.approx([0.55, 0.58]) and (b.sigma, b.level_sd) == (0.07, 0.12)
    with pytest.raises(ValueError):
        fb.Belief.of_decision(Decision(model="a", method="instance", models=["a"], ranking=["a"]), c)


def test_calibration_measures_the_task_level_spread_and_round_trips_it():
    acc = np.array([[0.8, 0.6], [0.6, 0.4], [0.7, 0.5]])  # task means 0.7, 0.5, 0.6
    fit = cal.fit({"s1": acc.copy()}, acc, ["s1"])
    assert fit.level_sd == pytest.approx(np.std([0.7, 0.5, 0.6]))
    assert cal.Calibration.from_dict(fit.to_dict()).level_sd == pytest.approx(fit.level_sd)
    old = fit.to_dict()
    del old["level_sd"]
    assert cal.Calibration.from_dict(old).level_sd == cal.LEVEL_SD


@pytest.mark.parametrize("bad", [dict(confidence=0.4), dict(confidence=1.0), dict(min_outcomes=0),
                                 dict(explore=1.0), dict(margin=-0.1)])
def test_bad_params_are_refused(bad):
    with pytest.raises(ValueError):
        fb.FeedbackParams(**bad)


def test_label_outcomes_count_each_models_labelled_prompts():
    labels = np.array([[1.0, 0.0, np.nan], [1.0, 1.0, 0.0], [0.0, 1.0, np.nan]])
    correct, counted = fb.label_outcomes(labels)
    assert correct == pytest.approx([2.0, 2.0, 0.0]) and counted == pytest.approx([3.0, 3.0, 1.0])


def _s3_decision(s3):
    models = list(s3)
    pick = max(models, key=lambda m: s3[m])
    return Decision(model=pick, method="S3", models=models, ranking=sorted(models, key=lambda m: -s3[m]), s3=s3)


def test_labels_revise_the_pick_only_when_they_measure_a_clear_difference():
    d = _s3_decision({"a": 0.70, "b": 0.68})
    # 40 prompts labelled for both: b right on 36, a on 22; every model is measured, so the shared
    # level cancels and the gap is plain
    rev = fb.with_label_evidence(d, None, np.array([22.0, 36.0]), np.array([40.0, 40.0]))
    assert rev.model == "b" and rev.method == "labels" and rev.ranking[0] == "b"
    assert rev.evidence["from"] == "a" and rev.evidence["outcomes"] == {"a": 40, "b": 40}
    belief = fb.Belief.of_decision(d, None)
    mean, cov = belief.posterior(np.array([22.0, 36.0]), np.array([40.0, 40.0]))
    assert rev.evidence["prob_better"] == pytest.approx(fb.prob_better(mean, cov, 1, 0, 0.01), abs=1e-4)
    # the same gap on 10 labels is below the minimum count, a small gap on 40 is not confident: unchanged
    assert fb.with_label_evidence(d, None, np.array([5.0, 9.0]), np.array([10.0, 10.0])) is d
    assert fb.with_label_evidence(d, None, np.array([28.0, 29.0]), np.array([40.0, 40.0])) is d
    # labels that agree with the pick leave it alone
    assert fb.with_label_evidence(d, None, np.array([36.0, 22.0]), np.array([40.0, 40.0])) is d
    # the record round-trips with its evidence
    assert Decision.from_dict(rev.to_dict()).evidence == rev.evidence


def test_cost_margins_are_lambda_times_the_extra_cost_plus_the_floor():
    costs = np.array([1.0, 3.0, 0.5])
    assert fb.cost_margins(None, 0, 0.05, 0.1) is None and fb.cost_margins(costs, 0) is None
    assert fb.cost_margins(costs, 0, lam=0.1) == pytest.approx([0.0, 0.2, -0.05])
    assert fb.cost_margins(costs, 0, epsilon=0.05) == pytest.approx([0.05, 0.05, 0.05])
    assert fb.cost_margins(costs, 2, epsilon=0.05, lam=0.1) == pytest.approx([0.1, 0.3, 0.05])


def test_a_revision_under_a_cost_knob_needs_the_lead_the_knob_asks_of_a_dearer_model():
    # the same records that revise 0 -> 1 on accuracy alone (50 % vs 70 % on 100 each) ...
    belief = _belief([0.70, 0.68])
    correct, counted = np.array([50.0, 70.0]), np.array([100.0, 100.0])
    params = fb.FeedbackParams()
    assert fb.revise(belief, 0, correct, counted, 0, params).model == 1
    mean, cov = belief.posterior(correct, counted)
    lead = float(mean[1] - mean[0])
    # ... do not when model 1 costs so much more that lambda asks for a bigger lead than the evidence shows
    dear = fb.cost_margins(np.array([0.0, lead / 0.5]), 0, lam=0.5)
    assert fb.revise(belief, 0, correct, counted, 0, params, dear) is None
    # and a cheaper model needs less: the same records with model 1 cheaper still revise, with more confidence
    cheap = fb.cost_margins(np.array([1.0, 0.0]), 0, lam=0.05)
    rev = fb.revise(belief, 0, correct, counted, 0, params, cheap)
    assert rev is not None and rev.model == 1
    assert rev.prob == pytest.approx(fb.prob_better(mean, cov, 1, 0, 0.01 - 0.05))


def test_coverage_signals_on_hand_computed_cases():
    from router_core import coverage as cov

    assert cov.reliability(0.75) == pytest.approx(0.5) and cov.reliability(0.4) == 0.0 and cov.reliability(1.0) == 1.0
    u_train = np.array([0.1, 0.2, 0.3, np.nan, 0.4])
    assert cov.closeness(0.25, u_train) == pytest.approx(0.5)  # 0.3 and 0.4 are at least as far
    assert cov.closeness(0.05, u_train) == 1.0 and cov.closeness(0.5, u_train) == 0.0
    assert cov.agreement(0.7, 0.0, 0.0, 0.1) is None
    # 14 of 20 right against a prediction of 0.7: the observation agrees exactly (a = (14 + 0.175) / 20.25)
    a = (14 + 0.25 * 0.7) / 20.25
    z = abs(a - 0.7) / math.sqrt(0.01 + a * (1 - a) / 20)
    assert cov.agreement(0.7, 14.0, 20.0, 0.1) == pytest.approx(math.erfc(z / math.sqrt(2)))
    # 2 of 20 right against 0.7 is far from it
    assert cov.agreement(0.7, 2.0, 20.0, 0.1) < 0.01
    c = cov.coverage(0.75, 0.25, u_train)
    assert c.coverage == pytest.approx(math.sqrt(0.5 * 0.5)) and c.agreement is None
    c3 = cov.coverage(0.75, 0.25, u_train, 0.2)
    assert c3.coverage == pytest.approx((0.5 * 0.5 * 0.2) ** (1 / 3))
    assert c3.to_dict() == {"coverage": round(c3.coverage, 4), "reliability": 0.5, "closeness": 0.5, "agreement": 0.2}


def test_under_the_floor_a_cheaper_model_whose_own_record_clears_it_takes_over():
    # served model 0 is the dearest; model 1 (cheaper) and model 2 (cheapest) have records of their own
    belief = _belief([0.70, 0.68, 0.60])
    costs = np.array([3.0, 1.0, 0.5])
    params = fb.FeedbackParams()
    correct, counted = np.array([700.0, 690.0, 500.0]), np.array([1000.0, 1000.0, 1000.0])
    mean, cov = belief.posterior(correct, counted)
    assert int(np.argmax(mean)) == 0
    # epsilon 0.05: model 1 trails the best by ~0.01 and clears best - 0.05 + 0.01 with confidence; model 2
    # (0.50 observed) does not: the cheapest that clears is model 1
    rev = fb.revise_to_cheaper(belief, 0, correct, counted, 0, params, costs, 0.05)
    assert rev is not None and (rev.model, rev.previous) == (1, 0)
    assert rev.prob == pytest.approx(fb.prob_better(mean, cov, 1, 0, 0.01 - 0.05)) and rev.prob >= 0.9
    # no floor, no costs, a cheaper model without its own record, or the cap: nothing
    assert fb.revise_to_cheaper(belief, 0, correct, counted, 0, params, costs, None) is None
    assert fb.revise_to_cheaper(belief, 0, correct, counted, 0, params, None, 0.05) is None
    assert fb.revise_to_cheaper(belief, 0, np.array([700.0, 7.0, 500.0]), np.array([1000.0, 10.0, 1000.0]), 0,
                                params, costs, 0.05) is None
    assert fb.revise_to_cheaper(belief, 0, correct, counted, 2, params, costs, 0.05) is None
    # a floor too tight for the evidence (epsilon 0.02: model 1 must be as good as the best): nothing
    assert fb.revise_to_cheaper(belief, 0, correct, counted, 0, params, costs, 0.02) is None
    # the floor is set by recorded models only: a fourth model predicted far better, never served, does
    # not raise it (its posterior is a prediction), and the same records still move the task to model 1
    four = _belief([0.70, 0.68, 0.60, 0.95])
    rev4 = fb.revise_to_cheaper(four, 0, np.append(correct, 0.0), np.append(counted, 0.0), 0, params,
                                np.append(costs, 5.0), 0.05)
    assert rev4 is not None and rev4.model == 1
