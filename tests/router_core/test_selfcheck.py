"""The fallback threshold checked on the training tasks (router_core.selfcheck), on hand-built pools."""

import numpy as np

from router_core import selfcheck
from router_core.loto import TaskFeatures


def pool(s2_favours_b: list[bool], acc: list[tuple[float, float]]) -> TaskFeatures:
    """Tasks with two models (0, 1): gbar says 0.9 for the favoured model and 0.1 for the other, the
    predictors are right 90 % of the time everywhere (so S3 follows gbar), and the true accuracies given."""
    D = len(acc)
    s2 = np.array([[0.1, 0.9] if b else [0.9, 0.1] for b in s2_favours_b])
    return TaskFeatures(s1=s2.copy(), s2=s2, u=np.full(D, 0.5), p=np.full((D, 2), 0.9),
                        p_local=np.full((D, 2), 0.9), accuracy=np.array(acc, dtype=float))


SIZES = np.full(5, 100)
ALL = np.ones(5, dtype=bool)


def test_departures_that_lose_on_the_training_tasks_make_it_never_depart():
    # model 0 is better everywhere (BMA), yet gbar favours model 1 on every task: S3 departs, confidently
    feats = pool([True] * 5, [(0.8, 0.5)] * 5)
    prob, acc_pick, acc_bma = selfcheck.departures(feats, SIZES, ALL)
    assert np.all(prob > 0.99) and np.all(acc_pick == 0.5) and np.all(acc_bma == 0.8)
    assert selfcheck.inner_eta(feats, SIZES, ALL) == 1.01


def test_departures_that_pay_keep_a_threshold_that_departs():
    # tasks 0 and 1: model 1 better and favoured; tasks 2-4: model 0 better and favoured; BMA is model 0
    feats = pool([True, True, False, False, False], [(0.6, 0.8)] * 2 + [(0.9, 0.5)] * 3)
    prob, acc_pick, acc_bma = selfcheck.departures(feats, SIZES, ALL)
    assert list(acc_pick) == [0.8, 0.8, 0.9, 0.9, 0.9] and list(acc_bma) == [0.6, 0.6, 0.9, 0.9, 0.9]
    # every threshold up to 0.9 departs on tasks 0 and 1 (mean 0.86 against 0.78): ties go to the larger
    assert selfcheck.inner_eta(feats, SIZES, ALL) == 0.9


def test_too_few_tasks_keep_the_papers_threshold_and_pick_follows_it():
    feats = pool([True] * 5, [(0.8, 0.5)] * 5)
    two = np.array([True, True, False, False, False])
    assert selfcheck.inner_eta(feats, SIZES, two) == selfcheck.ETAS[0] == 0.6
    assert selfcheck.pick(1, 0, 0.75, 0.7) == 1 and selfcheck.pick(1, 0, 0.75, 0.8) == 0
    assert selfcheck.pick(0, 0, None, 1.01) == 0
