"""The paper's maths as pure functions over arrays (Shnitzer et al., 2023, section 3-4).

Shapes: ``n`` prompts, ``k`` neighbours, ``M`` models, ``D`` training tasks.
Nothing here embeds, searches or reads files, so every function can be checked by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np

K_NEIGHBOURS = 5  # neighbours for the correctness predictor g
U_NEIGHBOURS = 19  # neighbours for the task distance descriptor u
BANDWIDTH = 0.09  # Nadaraya-Watson Gaussian kernel bandwidth h
ETA = 0.6  # fallback to BMA when P(m* beats BMA) < eta
DRAWS = 1000  # Monte-Carlo draws for that probability
MIN_SD = 1e-3  # no measured spread is taken as exactly zero (an update would then ignore all evidence)
DEFAULT_SCORE_SD = 0.05  # S3's between-model error where a pool is too small (or an artifact too old) to measure it
TIE_BREAK = 0.01  # per-instance routing: weight of each model's training mean accuracy
TIE = 1e-9  # scores closer than this are tied (and go to the cheaper model when costs are known)


def knn_correctness(neighbour_ids: np.ndarray, labels: np.ndarray,
                    fallback: np.ndarray | None = None) -> np.ndarray:
    """g_m(x): mean label of each model over the neighbours; (n, k) ids -> (n, M).

    Unlabelled neighbours (NaN) are skipped; where a model has no labelled neighbour at all,
    ``fallback[m]`` (its training mean) is used.
    """
    vals = labels[neighbour_ids]  # (n, k, M)
    have = ~np.isnan(vals)
    count = have.sum(axis=1)
    total = np.where(have, vals, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = total / count
    if fallback is not None:
        g = np.where(count > 0, g, fallback[None, :])
    else:
        g = np.where(count > 0, g, 0.0)
    return g.astype(np.float64)


def threshold(g: np.ndarray) -> np.ndarray:
    """gbar_m(x) = 1 if g_m(x) > 0.5 else 0."""
    return (g > 0.5).astype(np.float64)


def binomial_var(rate: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The variance of a mean of ``n`` outcomes at ``rate``, the rate clipped to [0.02, 0.98] so that no
    measurement counts as exact."""
    a = np.clip(np.asarray(rate, dtype=np.float64), 0.02, 0.98)
    return np.asarray(a * (1.0 - a) / n, dtype=np.float64)


def agreement(g: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """How far an outcome y in [0, 1] agrees with the thresholded prediction gbar(g): y where gbar is 1,
    1 - y where it is 0 (for labels, whether the predictor was right: p's summand)."""
    y = np.asarray(y, dtype=np.float64)
    return np.where(threshold(np.asarray(g, dtype=np.float64)) > 0, y, 1.0 - y)


def s1(g: np.ndarray) -> np.ndarray:
    """S1(m) = mean_i g_m(x_i)."""
    return cast(np.ndarray, g.mean(axis=0))


def s2(g: np.ndarray) -> np.ndarray:
    """S2(m) = mean_i gbar_m(x_i)."""
    return cast(np.ndarray, threshold(g).mean(axis=0))


def s3_from_s2(s2_scores: np.ndarray, p: np.ndarray) -> np.ndarray:
    """S3(m) = p S2 + (1 - p)(1 - S2): the expected accuracy when gbar is right w.p. p."""
    return cast(np.ndarray, p * s2_scores + (1.0 - p) * (1.0 - s2_scores))


def s3(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    return s3_from_s2(s2(g), p)


def prompt_distance(neighbour_dists: np.ndarray, k: int = U_NEIGHBOURS) -> np.ndarray:
    """Each prompt's mean cosine distance to its ``k`` nearest pool prompts; u(d) is their mean."""
    return cast(np.ndarray, neighbour_dists[:, :k].mean(axis=1).astype(np.float64))


def predictor_accuracy(g: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(d, m) = P(gbar_m(X) = y(X, m)) over the labelled prompts of one task; (M,)."""
    agree = (threshold(g) == labels).astype(np.float64)
    agree[np.isnan(labels)] = np.nan
    with np.errstate(invalid="ignore"):
        out = np.nanmean(agree, axis=0) if len(g) else np.full(g.shape[1], np.nan)
    return out


def local_predictor_accuracy(neighbour_ids: np.ndarray, agree: np.ndarray,
                             fallback: np.ndarray) -> np.ndarray:
    """Per prompt, how often the held-out predictor was right around it; (n, k) ids -> (n, M).

    ``agree[j, m]`` records whether gbar_m, computed with pool prompt j's own task left out, matched
    y(x_j, m). Averaged over a new prompt's neighbours, it estimates p locally, where the task-level
    u of the Nadaraya-Watson estimate sees only one distance per task. NaN entries are skipped;
    a model with no labelled neighbour gets ``fallback[m]``.
    """
    vals = agree[neighbour_ids]
    have = ~np.isnan(vals)
    count = have.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(have, vals, 0.0).sum(axis=1) / count
    return np.where(count > 0, out, fallback[None, :])


def nadaraya_watson(u_new: float, u_train: np.ndarray, p_train: np.ndarray,
                    h: float = BANDWIDTH) -> tuple[np.ndarray, np.ndarray]:
    """p_hat(d', m) and its kernel-weighted standard deviation, from D (u(d), p(d, .)) pairs.

    Gaussian weights are normalised in log space, so a task far from every training task
    still gets the weights of its nearest ones instead of 0/0. NaN targets (a model without
    labels on a task) drop out of that model's average.
    """
    u_train = np.asarray(u_train, dtype=np.float64)
    p_train = np.asarray(p_train, dtype=np.float64)
    logw = -0.5 * ((u_new - u_train) / h) ** 2
    w = np.exp(logw - logw.max())  # (D,)
    W = np.where(np.isnan(p_train), 0.0, w[:, None])  # (D, M)
    P = np.nan_to_num(p_train)
    wsum = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (W * P).sum(axis=0) / wsum
        var = (W * (P - mean[None, :]) ** 2).sum(axis=0) / wsum
    mean = np.where(wsum > 0, mean, 0.5)
    std = np.sqrt(np.where(wsum > 0, var, 0.0))
    return mean, std


def best_on_average(task_accuracy: np.ndarray) -> int:
    """BMA: the model with the highest mean of per-task accuracies (rows = training tasks)."""
    with np.errstate(invalid="ignore"):
        means = np.nanmean(task_accuracy, axis=0)
    return int(np.nanargmax(means))


def normal_cdf(z: float) -> float:
    """Phi(z), the standard normal CDF: the probability tests of the decision rules."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def measured_prob_beats(lead: float, score_sd: float, extra_var: float = 0.0) -> float:
    """P(a pick beats BMA) when its S3 leads BMA's by ``lead`` and each S3 misses the model's accuracy
    with the spread ``score_sd`` measured on training tasks: Phi(lead / sqrt(2 score_sd^2 + extra_var)).
    The fallback test of the ``uncertain`` method (docs/method.md): the paper's binomial test takes S3 as
    exact, so its confidence grows with the task's prompt count while S3's own error does not shrink.
    ``extra_var``: the lead's sampling variance from the prompts seen (:func:`lead_sampling_var`)."""
    if extra_var <= 0.0:
        return normal_cdf(lead / (math.sqrt(2.0) * max(score_sd, MIN_SD)))
    return normal_cdf(lead / math.sqrt(2.0 * max(score_sd, MIN_SD) ** 2 + extra_var))


def lead_sampling_var(n: int, n_pos: np.ndarray, p: np.ndarray, a: int, b: int) -> float:
    """The sampling variance of S3(a) - S3(b) read from ``n`` prompts: S3 = (2p - 1) S2 + 1 - p with S2
    a share of n prompts (``n_pos / n``), each model's share counted as independent:
    [(2p_a - 1)^2 S2_a (1 - S2_a) + (2p_b - 1)^2 S2_b (1 - S2_b)] / n."""
    n = max(int(n), 1)

    def one(m: int) -> float:
        s2 = float(np.clip(n_pos[m] / n, 0.0, 1.0))
        slope = 2.0 * float(np.clip(p[m], 0.0, 1.0)) - 1.0
        return slope * slope * s2 * (1.0 - s2)

    return (one(a) + one(b)) / n


def prob_beats(n: int, n_pos_a: float, p_a: float, n_pos_b: float, p_b: float,
               margin: float = 0.0, draws: int = DRAWS, seed: int = 0) -> float:
    """P(count_a - count_b > margin), each count ~ Bin(n_pos, p) + Bin(n - n_pos, 1 - p).

    A model's count is how many of the task's n prompts it answers correctly if its predictor
    is right with probability p on each prompt. Seeded: equal inputs give equal outputs.
    """
    rng = np.random.default_rng(seed)
    na, nb = int(round(n_pos_a)), int(round(n_pos_b))
    pa, pb = float(np.clip(p_a, 0.0, 1.0)), float(np.clip(p_b, 0.0, 1.0))
    a = rng.binomial(na, pa, draws) + rng.binomial(n - na, 1.0 - pa, draws)
    b = rng.binomial(nb, pb, draws) + rng.binomial(n - nb, 1.0 - pb, draws)
    return float(np.mean((a - b) > margin))


def knob_on(epsilon: float | None, lam: float | None) -> bool:
    """Whether the caller asked for a cost trade-off at all (``epsilon: 0`` does: ties to the cheaper)."""
    return epsilon is not None or lam is not None


def cost_aware_choice(scores: np.ndarray, costs: np.ndarray | None,
                      epsilon: float | None = None, lam: float | None = None,
                      then: np.ndarray | None = None) -> int:
    """The pick under the cost knobs (both off, or no costs: plain argmax, the paper's choice).

    ``lam``: maximise score - lam * cost (cost in USD per query).
    ``epsilon``: the cheapest model whose (lam-adjusted) score is within epsilon of the best.
    With a knob on (``epsilon`` or ``lam`` given, 0 included) and costs known, models tied at the
    best score (within ``TIE``) go to the cheapest: the preference for smaller models. Remaining
    ties go to the higher score, then the higher ``then`` (e.g. training mean accuracy), then the
    lower index. With both knobs off the paper's S1/S2/S3 picks stay exactly the paper's.
    """
    scores = np.asarray(scores, dtype=np.float64)
    util = scores.copy()
    if costs is not None and lam:
        util = util - lam * np.nan_to_num(costs, nan=np.nanmax(costs) if np.any(~np.isnan(costs)) else 0)
    best = int(np.argmax(util))
    if costs is None or not knob_on(epsilon, lam):
        return best
    ok = np.flatnonzero(util >= util[best] - max(epsilon or 0.0, TIE))
    c = np.nan_to_num(np.asarray(costs, dtype=np.float64)[ok], nan=np.inf)
    second = np.zeros(len(ok)) if then is None else -np.asarray(then, dtype=np.float64)[ok]
    order = np.lexsort((second, -util[ok], c))
    return int(ok[order[0]])


def fallback_margin(n: int, pick: int, bma: int, costs: np.ndarray | None,
                    epsilon: float | None, lam: float | None) -> float:
    """How many more correct answers BMA must be expected to give before the cheaper pick loses.

    Without costs or cost knobs this is 0 (the paper's test). With a knob on and costs known, a pick
    cheaper than BMA wins a tie in the count (margin 0.5: the counts are integers), so the preference
    for the cheaper of equally good models is not undone by the fallback. With ``epsilon`` the pick
    may trail BMA by epsilon*n answers more; with ``lam`` by lam * (cost saved) * n.
    """
    margin = 0.0
    known = None if costs is None else np.nan_to_num(costs, nan=np.inf)
    if known is not None and knob_on(epsilon, lam) and known[pick] < known[bma]:
        margin += 0.5
    if epsilon:
        margin += epsilon * n
    if lam and costs is not None and not np.isnan(costs[pick]) and not np.isnan(costs[bma]):
        margin += lam * float(costs[bma] - costs[pick]) * n
    return margin


def instance_choice(g_row: np.ndarray, train_mean: np.ndarray, costs: np.ndarray | None = None,
                    epsilon: float | None = None, lam: float | None = None) -> int:
    """Per-prompt routing: argmax_m g_m(x); ties go to the cheaper model when costs are known, else
    (and then) to the higher training mean accuracy (without costs: 0.01 x that mean is added).

    A prompt's g takes few values (a share of k neighbours), so ties are common; preferring the
    cheaper of tied models is the product's promise here, knobs or not (no paper score is per prompt).
    """
    mean = np.nan_to_num(train_mean)
    if costs is None:
        return cost_aware_choice(g_row + TIE_BREAK * mean, None, epsilon, lam)
    return cost_aware_choice(g_row, costs, 0.0 if epsilon is None else epsilon, lam, then=mean)


@dataclass(frozen=True)
class TaskScores:
    """Everything a task-level decision rests on."""

    n: int
    s1: np.ndarray
    s2: np.ndarray
    s3: np.ndarray
    u: float
    p_hat: np.ndarray
    p_std: np.ndarray
    n_pos: np.ndarray  # sum_i gbar_m(x_i)


def task_scores(n: int, sum_g: np.ndarray, sum_gbar: np.ndarray, sum_u: float,
                u_train: np.ndarray, p_train: np.ndarray, h: float = BANDWIDTH) -> TaskScores:
    """S1, S2, S3 and p_hat from a task's running sums (n prompts folded in)."""
    if n <= 0:
        raise ValueError("a task needs at least one prompt")
    s1v = np.asarray(sum_g, dtype=np.float64) / n
    s2v = np.asarray(sum_gbar, dtype=np.float64) / n
    u = float(sum_u) / n
    p_hat, p_std = nadaraya_watson(u, u_train, p_train, h)
    return TaskScores(n=n, s1=s1v, s2=s2v, s3=s3_from_s2(s2v, p_hat), u=u, p_hat=p_hat,
                      p_std=p_std, n_pos=np.asarray(sum_gbar, dtype=np.float64))
