"""The default's labels path: a posterior per model from its S3 and its labels (router_core.labels)."""

from __future__ import annotations

import numpy as np
import pytest

from router_core import labels
from router_core.decision import Decision, RoutingParams
from router_core.reliability import ErrorModel


def _pick(s3, correct, counted, score_sd, current, eta=0.6):
    rev = labels.revision(s3, correct, counted, score_sd, current, eta)
    return current if rev is None else rev.model


def _record():
    # a task whose decision departed from BMA a to b
    return Decision(model="b", method="S3", models=["a", "b"], ranking=["b", "a"], n=200,
                    s2={"a": 0.9, "b": 1.0}, p_hat={"a": 0.8, "b": 0.8}, s3={"a": 0.74, "b": 0.8}, bma="a")


def test_accuracy_posterior_is_the_precision_weighted_mean():
    # S3 0.5 with sd 0.1 (precision 100); 25 labels, 15 right: c/n 0.6 with variance 0.25/25 = 0.01
    # (precision 100): mean 0.55, sd sqrt(1/200); a model without labels keeps its prior
    mu, tau = labels.accuracy_posterior(np.array([0.5, 0.7]), np.array([15.0, 0.0]), np.array([25.0, 0.0]), 0.1)
    np.testing.assert_allclose(mu, [0.55, 0.7])
    np.testing.assert_allclose(tau, [np.sqrt(1 / 200), 0.1])


def test_revision_moves_only_on_a_clear_difference():
    s3 = np.array([0.5, 0.5])
    # equal priors; 100 labels each, 40 and 60 right: precisions 100 + 400 each, means 0.42 and 0.58,
    # z = 0.16 / sqrt(2 / 500) = 2.53: the labels' leader replaces the zero-label pick 0
    correct, counted = np.array([40.0, 60.0]), np.array([100.0, 100.0])
    assert _pick(s3, correct, counted, 0.1, current=0) == 1
    # 4 labels each, 1 and 3 right: precisions 100 + 16, means (50 + 4) / 116 and (50 + 12) / 116,
    # z = (8 / 116) / sqrt(2 / 116) = 0.525, Phi = 0.70 >= 0.6: moves; at eta 0.75 it stays
    few = np.array([1.0, 3.0]), np.array([4.0, 4.0])
    assert _pick(s3, *few, 0.1, current=0) == 1
    assert _pick(s3, *few, 0.1, current=0, eta=0.75) == 0
    # the zero-label pick leads already: it stays
    assert _pick(s3, correct, counted, 0.1, current=1) == 1


def test_a_decision_record_follows_its_labels_posterior():
    dec = _record()  # b departed from BMA a: S3 a 0.74, b 0.8
    errors = ErrorModel(0.05, 0.05, 0.03, score_sd=0.05)
    # 100 labels each: a right on 90, b on 60; precisions 400 + 100 / (0.74 * 0.26) and 400 + 100 / (0.8 * 0.2)
    mu, _ = labels.accuracy_posterior(np.array([0.74, 0.8]), np.array([90.0, 60.0]), np.array([100.0, 100.0]), 0.05)
    out = labels.revise_decision(dec, ["a", "b"], errors, np.array([90.0, 60.0]), np.array([100.0, 100.0]),
                                 RoutingParams())
    assert (out.model, out.method, out.ranking[0], out.evidence["rule"]) == ("a", "labels", "a", "labels")
    assert out.evidence["posterior"]["a"] == pytest.approx(mu[0], abs=1e-4) and mu[0] > mu[1]
    # labels that agree with the pick leave the record as it was
    same = labels.revise_decision(dec, ["a", "b"], errors, np.array([60.0, 90.0]), np.array([100.0, 100.0]),
                                  RoutingParams())
    assert same is dec
