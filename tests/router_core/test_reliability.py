"""router_core.reliability: the posterior over the predictors' accuracy p and the re-made decision,
on hand-computed cases."""

import numpy as np
import pytest

from router_core import feedback as fb
from router_core import reliability as rel
from router_core import scores as sc
from router_core.decision import RoutingParams

ERR = rel.ErrorModel(shared_sd=0.05, own_sd=0.05, identity_sd=0.001)


def _fparams(policy: str, max_revisions: int = 2) -> fb.FeedbackParams:
    """The revision rule's knobs of these cases: at least 20 outcomes of the served model."""
    return fb.FeedbackParams(min_outcomes=20, max_revisions=max_revisions, policy=policy)


def test_without_outcomes_the_posterior_is_the_prior():
    p_hat = np.array([0.8, 0.8, 0.7])
    mean, cov = rel.posterior_p(p_hat, np.array([1.0, 0.9, 0.5]), ERR, np.zeros(3), np.zeros(3))
    assert mean == pytest.approx(p_hat)
    assert cov == pytest.approx(0.0025 * np.ones((3, 3)) + 0.0025 * np.eye(3))


def test_one_models_outcomes_move_its_p_and_half_as_much_the_others():
    # served model: S2 = 1, so its accuracy is p itself; 600 right of 1000 against p_hat 0.8
    # prior var 0.005 (shared 0.0025 + own 0.0025), noise 0.8 * 0.2 / 1000 + 1e-6 = 0.000161
    p_hat = np.array([0.8, 0.8, 0.7])
    mean, cov = rel.posterior_p(p_hat, np.array([1.0, 0.9, 0.5]), ERR, np.array([600.0, 0, 0]),
                                np.array([1000.0, 0, 0]))
    S = 0.005 + 0.000161
    assert mean[0] == pytest.approx(0.8 - 0.2 * 0.005 / S)
    assert mean[1] == pytest.approx(0.8 - 0.2 * 0.0025 / S)  # only the shared part carries over
    assert mean[2] == pytest.approx(0.7 - 0.2 * 0.0025 / S)
    assert cov[0, 0] == pytest.approx(0.005 - 0.005 ** 2 / S)


def test_a_model_whose_s2_is_one_half_says_nothing_about_p():
    # accuracy = 0.5 + (2 S2 - 1)(p - 0.5) = 0.5 whatever p is
    p_hat = np.array([0.8, 0.7])
    mean, _ = rel.posterior_p(p_hat, np.array([0.9, 0.5]), ERR, np.array([0.0, 100.0]), np.array([0.0, 1000.0]))
    assert mean == pytest.approx(p_hat)


def test_agreement_observes_p_directly_also_where_s2_is_one_half():
    # model 1 (S2 = 0.5: its accuracy says nothing about p) has 20 outcomes with predictions, 10 of
    # which agreed: p observed as 0.5 against p_hat 0.7, noise 0.7 * 0.3 / 20 = 0.0105 (no identity
    # term), prior var 0.005, of which 0.0025 is shared with model 0
    p_hat = np.array([0.8, 0.7])
    args = (p_hat, np.array([0.9, 0.5]), ERR, np.array([0.0, 14.0]), np.array([0.0, 20.0]))
    mean, cov = rel.posterior_p(*args, agree=np.array([0.0, 10.0]), judged=np.array([0.0, 20.0]))
    S = 0.005 + 0.0105
    assert mean[1] == pytest.approx(0.7 - 0.2 * 0.005 / S)
    assert mean[0] == pytest.approx(0.8 - 0.2 * 0.0025 / S)  # through the shared part
    assert cov[1, 1] == pytest.approx(0.005 - 0.005 ** 2 / S)
    # without predictions the same outcomes leave p where it was (the accuracy row carries nothing)
    assert rel.posterior_p(*args)[0] == pytest.approx(p_hat)
    # a model with outcomes but none judged keeps the accuracy observation (model 0, S2 = 1: c/n = p)
    mixed, _ = rel.posterior_p(p_hat, np.array([1.0, 0.5]), ERR, np.array([60.0, 14.0]), np.array([100.0, 20.0]),
                               agree=np.array([0.0, 10.0]), judged=np.array([0.0, 20.0]))
    only_acc, _ = rel.posterior_p(p_hat, np.array([1.0, 0.5]), ERR, np.array([60.0, 0.0]), np.array([100.0, 0.0]))
    assert mixed[0] < only_acc[0] < p_hat[0]  # both observations pull it down


def test_agreement_counts_only_under_its_policy():
    t = _departed_task()
    # the departed model's accuracy is as predicted (24 of 30), but its predictions agreed with only 15:
    # p measured at 0.5 undoes the departure under agreement_to_bma, not under reliability_to_bma
    common = (t["n"], t["s2"], t["p_hat"], t["bma"], 1, ERR, np.array([0.0, 24.0]), np.array([0.0, 30.0]), 0)
    agreement = {"agree": np.array([0.0, 15.0]), "judged": np.array([0.0, 30.0])}
    assert rel.revise(*common, _fparams("reliability_to_bma"), **agreement) is None
    out = rel.revise(*common, _fparams("agreement_to_bma"), **agreement)
    assert out is not None and out.model == 0 and out.rule == "reliability"


def test_error_model_splits_the_shared_part_from_each_models_own():
    # equal u: each task's p_hat is the mean of the other two tasks' p; models agree within a task,
    # so the residuals (0.15, -0.15, 0) are all shared: RMS sqrt(0.015); the own part is zero
    u = np.zeros(3)
    p = np.array([[0.8, 0.8], [0.6, 0.6], [0.7, 0.7]])
    s2 = np.array([[0.9, 0.6], [0.7, 0.4], [0.8, 0.5]])
    acc = p * s2 + (1 - p) * (1 - s2)  # the S3 identity holds exactly
    em = rel.fit_error_model(u, p, s2, acc, np.ones(3, dtype=bool))
    assert em.shared_sd == pytest.approx(np.sqrt(0.015))
    assert em.own_sd == rel.MIN_SD and em.identity_sd == rel.MIN_SD
    # too few tasks: the documented defaults
    assert rel.fit_error_model(u, p, s2, acc, np.array([True, True, False])) == rel.DEFAULT_ERRORS


def test_error_model_own_part_with_the_sample_variance_correction():
    # two models whose residuals differ by +-d around a zero task mean: own variance 2 d^2 / (2 - 1)
    u = np.zeros(4)
    base = np.array([[0.7, 0.7]] * 4)
    d = np.array([[0.02, -0.02], [-0.02, 0.02], [0.02, -0.02], [-0.02, 0.02]])
    p = base + d
    # p_hat of a task: the mean of the other three, (0.7 -+ 0.02/3); residual +-(0.02 + 0.02/3)
    s2 = np.full((4, 2), 0.8)
    em = rel.fit_error_model(u, p, s2, p * s2 + (1 - p) * (1 - s2), np.ones(4, dtype=bool))
    r = 0.02 + 0.02 / 3
    assert em.own_sd == pytest.approx(np.sqrt(2 * r ** 2))
    assert em.shared_sd == rel.MIN_SD


def _departed_task():
    # model 1 departs from BMA (model 0): S2 1.0 vs 0.9 with p_hat 0.8 for both, n = 200
    return dict(n=200, s2=np.array([0.9, 1.0]), p_hat=np.array([0.8, 0.8]), bma=0)


def test_a_departure_whose_outcomes_undercut_p_goes_back_to_bma():
    t = _departed_task()
    # the departed model: 12 right of 30 (predicted 0.8): p for both falls toward 0.5, and with it the
    # fallback test's confidence
    out = rel.revise(t["n"], t["s2"], t["p_hat"], t["bma"], 1, ERR, np.array([0.0, 12.0]),
                     np.array([0.0, 30.0]), 0, _fparams("reliability"))
    assert out is not None and out.rule == "reliability"
    # model 1's S2 is 1, so its S3 under the posterior (the revision's mean) is its posterior p
    assert out.model == 0 and out.mean[1] < 0.7 and 0.5 < out.prob <= 1.0
    # the same record, too short, or the cap reached: no revision
    assert rel.revise(t["n"], t["s2"], t["p_hat"], 0, 1, ERR, np.array([0.0, 6.0]), np.array([0.0, 15.0]),
                      0, _fparams("reliability")) is None
    assert rel.revise(t["n"], t["s2"], t["p_hat"], 0, 1, ERR, np.array([0.0, 12.0]), np.array([0.0, 30.0]),
                      0, _fparams("reliability", max_revisions=0)) is None
    # a decision already revised (on direct evidence, say) is not re-made from the paper's scores
    assert rel.revise(t["n"], t["s2"], t["p_hat"], 0, 1, ERR, np.array([0.0, 12.0]), np.array([0.0, 30.0]),
                      1, _fparams("reliability")) is None


def test_outcomes_that_confirm_the_departure_keep_it():
    t = _departed_task()
    out = rel.revise(t["n"], t["s2"], t["p_hat"], t["bma"], 1, ERR, np.array([0.0, 29.0]),
                     np.array([0.0, 30.0]), 0, _fparams("reliability"))
    assert out is None


def test_the_uncertain_method_re_makes_the_decision_with_its_own_test():
    # outcomes that confirm the departure (29 of 30): the paper's binomial test (n = 200) keeps it; the
    # uncertain method reads the same S3 lead (0.108) against a wide measured spread (0.4) and goes back to BMA
    t = _departed_task()
    wide = rel.ErrorModel(shared_sd=0.05, own_sd=0.05, identity_sd=0.001, score_sd=0.4)
    args = (t["n"], t["s2"], t["p_hat"], t["bma"], 1, wide, np.array([0.0, 29.0]), np.array([0.0, 30.0]), 0,
            _fparams("reliability"))
    assert rel.revise(*args) is None
    out = rel.revise(*args, RoutingParams(method="uncertain"))
    assert out is not None and out.model == 0 and out.rule == "reliability"
    # the record of the test: 1 - P(the served model beats BMA) = 1 - Phi(lead / (sqrt(2) 0.4)) = 1 - 0.576
    assert out.prob == pytest.approx(1.0 - sc.measured_prob_beats(out.mean[1] - out.mean[0], 0.4))
    assert 0.4 < out.prob < 0.45


def test_to_bma_only_never_departs():
    # served BMA (model 0) with a strong record: p rises and model 1 would now clear the test
    t = _departed_task()
    args = (t["n"], t["s2"], t["p_hat"], 0, 0, ERR, np.array([200.0, 0.0]), np.array([200.0, 0.0]), 0)
    free = rel.revise(*args, _fparams("reliability"))
    assert free is not None and free.model == 1
    assert rel.revise(*args, _fparams("reliability_to_bma")) is None


def test_score_sd_is_the_within_task_spread_of_s3s_miss():
    # equal u: p_hat of a task is the mean p of the other two; S2 = 1 for both models, so S3_hat = p_hat
    # and the miss is accuracy - p_hat: (+0.05, -0.05) on every task -> within-task sd sqrt(2 * 0.05^2 / 1)
    u = np.zeros(3)
    p = np.full((3, 2), 0.7)
    s2 = np.ones((3, 2))
    acc = np.array([[0.75, 0.65]] * 3)
    em = rel.fit_error_model(u, p, s2, acc, np.ones(3, dtype=bool))
    assert em.score_sd == pytest.approx(np.sqrt(2 * 0.05 ** 2))
    assert rel.ErrorModel.from_dict(em.to_dict()) == em
    # an artifact from before score_sd: the documented default
    assert rel.ErrorModel.from_dict({"shared_sd": 0.1, "own_sd": 0.1, "identity_sd": 0.1}).score_sd == 0.05


def test_held_out_p_hat_leaves_each_task_out_of_its_own_estimate():
    # equal u: each usable task's p_hat is the plain mean of the other usable tasks' p; task 3 is unusable
    u = np.zeros(4)
    p = np.array([[0.6, 0.9], [0.8, 0.7], [0.7, 0.8], [0.0, 0.0]])
    out = rel.held_out_p_hat(u, p, np.array([True, True, True, False]))
    np.testing.assert_allclose(out[:3], [[0.75, 0.75], [0.65, 0.85], [0.7, 0.8]])
    assert np.isnan(out[3]).all()


def test_measured_score_sd_is_the_within_task_spread_of_the_miss():
    # misses (0.1, -0.1) and (0.0, 0.2): each task's variance over models with M/(M-1) = 2: 0.02, 0.02
    acc = np.array([[0.8, 0.6], [0.7, 0.9]])
    s3 = np.array([[0.7, 0.7], [0.7, 0.7]])
    assert rel.measured_score_sd(s3, acc) == pytest.approx(np.sqrt(0.02))
    # a miss shared by every model of a task moves no choice: zero spread, floored at MIN_SD
    assert rel.measured_score_sd(s3, s3 + 0.1) == rel.MIN_SD
    # nothing measurable (one model): the documented default
    assert rel.measured_score_sd(np.array([[0.5]]), np.array([[0.6]])) == rel.DEFAULT_SCORE_SD


def test_combination_weight_minimises_the_combined_squared_error():
    # uncorrelated errors, V_hat = 0.04, V_loc = 0.01, C = 0: w = 0.01 / 0.05 = 0.2 on p_hat
    e_hat = np.array([[0.2, -0.2], [0.2, -0.2]])
    e_loc = np.array([[0.1, 0.1], [-0.1, -0.1]])
    assert rel.combination_weight(e_hat, e_loc) == pytest.approx(0.2)
    # p_local's errors are larger copies of p_hat's: the best mix would extrapolate; clipped to all p_hat
    assert rel.combination_weight(e_hat, 2 * e_hat) == 1.0
    # the same errors cannot be told apart; NaN entries drop out, and nothing measured gives 0.5 as well
    assert rel.combination_weight(e_hat, e_hat) == 0.5
    assert rel.combination_weight(np.array([[np.nan]]), np.array([[0.1]])) == 0.5
    nan_hat = np.array([[0.2, np.nan], [0.2, -0.2], [-0.2, 0.2]])
    nan_loc = np.array([[0.1, 0.3], [0.1, 0.1], [-0.1, -0.1]])
    # remaining pairs: e_hat (0.2, 0.2, -0.2, -0.2, 0.2), e_loc (0.1, 0.1, 0.1, -0.1, -0.1):
    # V_hat = 0.04, V_loc = 0.01, C = (0.02 + 0.02 - 0.02 + 0.02 - 0.02) / 5 = 0.004
    assert rel.combination_weight(nan_hat, nan_loc) == pytest.approx((0.01 - 0.004) / (0.05 - 0.008))


def test_record_prior_is_each_models_mean_relative_accuracy_and_its_pooled_spread():
    # relative to each task's mean: task 0 (0.1, -0.1), task 1 (0.3, -0.3), task 2 (0.2, -0.2): means
    # (0.2, -0.2); deviations (-0.1, 0, 0.1) for both models: variance 0.02 / 2 = 0.01, sd 0.1
    acc = np.array([[0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
    mean, sd = rel.record_prior(acc)
    np.testing.assert_allclose(mean, [0.2, -0.2])
    assert sd == pytest.approx(0.1)
    assert rel.record_prior(np.array([[0.5, 0.6]])) is None  # one task: no spread to measure


def test_posterior_pick_weighs_the_record_against_s3s_measured_error():
    prior = np.array([0.05, -0.05])  # model 0 (BMA) is better on the record
    # S3 says model 1 by 0.2 (deviations -0.1, +0.1); prior sd 0.1 and score sd 0.1 weigh alike:
    # mu = (-0.025, +0.025), tau = sqrt(1/200); z = 0.05 / (sqrt 2 * 0.0707) = 0.5, Phi = 0.69 >= 0.6
    assert rel.posterior_pick(np.array([0.6, 0.8]), prior, 0.1, 0.1, bma=0) == 1
    # the same S3 with three times its error: mu = (0.035, -0.035): BMA leads, no departure
    assert rel.posterior_pick(np.array([0.6, 0.8]), prior, 0.1, 0.3, bma=0) == 0
    # a smaller S3 lead (0.12: deviations -0.06, +0.06): mu = (-0.005, +0.005), z = 0.01 / 0.1 = 0.1,
    # Phi = 0.54 < 0.6: BMA stays
    assert rel.posterior_pick(np.array([0.64, 0.76]), prior, 0.1, 0.1, bma=0) == 0


def test_uncertain_pick_departs_only_on_a_gap_its_error_allows():
    s3 = np.array([0.70, 0.72, 0.80])
    # gap 0.02 with sd 0.05: z = 0.02 / (sqrt 2 * 0.05) = 0.283, Phi = 0.611 >= 0.6: departs
    pick, prob = rel.uncertain_pick(s3, 1, 0, 0.05, eta=0.6)
    assert pick == 1 and prob == pytest.approx(0.6113, abs=1e-4)
    # the same gap with twice the error: Phi(0.141) = 0.556 < 0.6: back to BMA
    pick, prob = rel.uncertain_pick(s3, 1, 0, 0.10, eta=0.6)
    assert pick == 0 and prob == pytest.approx(0.5562, abs=1e-4)
    assert rel.uncertain_pick(s3, 0, 0, 0.05) == (0, None)


def _record(method: str = "S3", revision: int = 0):
    from router_core.decision import Decision

    # the departed task above as a decision record: model b departs from BMA a
    return Decision(model="b", method=method, models=["a", "b"], ranking=["b", "a"], n=200,
                    s2={"a": 0.9, "b": 1.0}, p_hat={"a": 0.8, "b": 0.8}, s3={"a": 0.74, "b": 0.8}, bma="a",
                    revision=revision)


def test_a_decision_record_is_revised_under_the_feedback_policy():
    from router_core.decision import RoutingParams

    correct, counted = np.array([0.0, 12.0]), np.array([0.0, 30.0])
    routing = RoutingParams(method="paper")
    rev = rel.revise_decision(_record(), ["a", "b"], ERR, correct, counted, fb.FeedbackParams(), routing)
    assert rev is not None and (rev.model, rev.previous, rev.rule) == (0, 1, "reliability")
    assert rev.evidence(["a", "b"])["rule"] == "reliability"
    # the same evidence under the outcome policy, on a calibrated decision, or on one revised already: nothing
    assert rel.revise_decision(_record(), ["a", "b"], ERR, correct, counted, fb.FeedbackParams(policy="outcome"),
                               routing) is None
    assert rel.revise_decision(_record("calibrated"), ["a", "b"], ERR, correct, counted, fb.FeedbackParams(),
                               routing) is None
    assert rel.revise_decision(_record(revision=1), ["a", "b"], ERR, correct, counted, fb.FeedbackParams(),
                               routing) is None


def test_labels_first_measure_the_predictors_then_the_models():
    from router_core.decision import RoutingParams

    routing = RoutingParams(method="paper")
    # 30 labels: b right on 12 (its predictor overrated), a right on 20: back to BMA on the reliability rule
    dec = rel.with_label_evidence(_record(), ["a", "b"], ERR, None, np.array([20.0, 12.0]), np.array([30.0, 30.0]),
                                  routing)
    assert (dec.model, dec.method, dec.evidence["rule"]) == ("a", "labels", "reliability")
    assert dec.ranking == ["a", "b"]
    # labels that confirm the departure leave it
    kept = rel.with_label_evidence(_record(), ["a", "b"], ERR, None, np.array([25.0, 29.0]), np.array([30.0, 30.0]),
                                   routing)
    assert kept == _record()


def test_measured_p_is_the_posterior_of_the_decisions_model_once_it_has_judged_outcomes():
    from router_core.decision import Decision

    # model b: S2 0.5, p_hat 0.7, 10 of 20 judged outcomes agreed with their predictions (the hand-computed
    # case of test_agreement_observes_p_directly_also_where_s2_is_one_half)
    d = Decision(model="b", method="S3", models=["a", "b"], ranking=["b", "a"], n=50, s2={"a": 0.9, "b": 0.5},
                 p_hat={"a": 0.8, "b": 0.7}, bma="a")
    args = (np.array([0.0, 14.0]), np.array([0.0, 20.0]), np.array([0.0, 10.0]))
    assert rel.measured_p(d, ["a", "b"], ERR, *args, np.array([0.0, 20.0])) == pytest.approx(
        0.7 - 0.2 * 0.005 / (0.005 + 0.0105))
    assert rel.measured_p(d, ["a", "b"], ERR, *args, np.array([0.0, 0.0])) is None  # nothing judged
    assert rel.measured_p(d, ["a", "c"], ERR, *args, np.array([0.0, 20.0])) is None  # a model it has no S2 for
