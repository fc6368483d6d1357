"""Leave-one-task-out predictions: every prompt scored by a pool that excludes its own task.

Both the router build (the (u(d), p(d, .)) targets of the p_hat smoother) and the evaluation need,
for each benchmark prompt, g and u computed without its task. One exact neighbour search over the
whole pool, with a prompt's own task masked out, gives all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from . import scores as sc
from .index import grouped_neighbours


@dataclass
class LotoTable:
    """Per-prompt LOTO neighbours and per-task targets."""

    task_names: list[str]
    task_of: np.ndarray  # (N,) int index into task_names
    ids: np.ndarray  # (N, u_k) neighbour ids from other tasks
    dists: np.ndarray  # (N, u_k)
    g: np.ndarray  # (N, M) LOTO correctness predictions
    u_prompt: np.ndarray  # (N,) per-prompt distance contributions
    u: np.ndarray  # (D,) task descriptors
    p: np.ndarray  # (D, M) accuracy of gbar on each task (NaN where a model has no labels)
    accuracy: np.ndarray  # (D, M) true accuracy of each model on each task
    agree: np.ndarray  # (N, M) 1 where the LOTO gbar matched the label, 0 where not, NaN unlabelled

    def rows(self, d: int) -> np.ndarray:
        return np.flatnonzero(self.task_of == d)


def task_accuracy(labels: np.ndarray, task_of: np.ndarray, n_tasks: int) -> np.ndarray:
    """(D, M) mean correctness of each model on each task, NaN-aware."""
    out = np.full((n_tasks, labels.shape[1]), np.nan)
    for d in range(n_tasks):
        rows = labels[task_of == d]
        with np.errstate(invalid="ignore"):
            if len(rows):
                out[d] = np.nanmean(np.where(np.isnan(rows), np.nan, rows), axis=0)
    return out


def model_means(labels: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return cast(np.ndarray, np.nan_to_num(np.nanmean(labels, axis=0), nan=0.0))


def compute(vectors: np.ndarray, tasks: np.ndarray, labels: np.ndarray, k: int = sc.K_NEIGHBOURS,
            u_k: int = sc.U_NEIGHBOURS) -> LotoTable:
    """The LOTO table of a pool (exact search; O(N^2 d) flops, a few seconds at 20k prompts)."""
    names = list(dict.fromkeys(str(t) for t in tasks))
    code = {t: i for i, t in enumerate(names)}
    task_of = np.array([code[str(t)] for t in tasks], dtype=np.int64)
    if len(names) < 2:
        raise ValueError("leave-one-task-out needs at least two tasks")
    width = max(k, u_k)
    ids, dists = grouped_neighbours(vectors, task_of, width)
    fallback = model_means(labels)
    g = sc.knn_correctness(ids[:, :k], labels, fallback)
    u_prompt = sc.prompt_distance(dists, u_k)
    D = len(names)
    u = np.array([u_prompt[task_of == d].mean() for d in range(D)])
    p = np.vstack([sc.predictor_accuracy(g[task_of == d], labels[task_of == d]) for d in range(D)])
    acc = task_accuracy(labels, task_of, D)
    agree = np.where(np.isnan(labels), np.nan, (sc.threshold(g) == labels).astype(np.float64))
    return LotoTable(names, task_of, ids, dists, g, u_prompt, u, p, acc, agree)


@dataclass
class TaskFeatures:
    """Task-level held-out scores: what the default decision is calibrated on (D tasks, M models)."""

    s1: np.ndarray  # (D, M) mean g over the task's prompts
    s2: np.ndarray  # (D, M) mean gbar
    u: np.ndarray  # (D,)
    p: np.ndarray  # (D, M) true accuracy of gbar on the task (the predictor-accuracy target)
    p_local: np.ndarray  # (D, M) mean local agreement around the task's prompts
    accuracy: np.ndarray  # (D, M) true accuracy of each model

    def get(self, name: str) -> np.ndarray:
        """A feature by name (``s1``, ``s2``, ``s3_local``: S3 with the local p estimate)."""
        if name == "s3_local":
            return sc.s3_from_s2(self.s2, self.p_local)
        return cast(np.ndarray, getattr(self, name))


def _per_task(x: np.ndarray, task_of: np.ndarray, D: int) -> np.ndarray:
    out = np.full((D,) + x.shape[1:], np.nan)
    for d in range(D):
        rows = x[task_of == d]
        if len(rows):
            with np.errstate(invalid="ignore"):
                out[d] = np.nanmean(rows, axis=0)
    return out


def features_of(table: LotoTable, labels: np.ndarray, u_k: int = sc.U_NEIGHBOURS) -> TaskFeatures:
    """Task-level features of a LOTO table (the build's calibration targets)."""
    D = len(table.task_names)
    fallback = np.full(labels.shape[1], 0.5)
    p_local = sc.local_predictor_accuracy(table.ids[:, :u_k], table.agree, fallback)
    return TaskFeatures(s1=_per_task(table.g, table.task_of, D),
                        s2=_per_task(sc.threshold(table.g), table.task_of, D),
                        u=table.u.copy(), p=table.p.copy(), p_local=_per_task(p_local, table.task_of, D),
                        accuracy=table.accuracy.copy())


class Worlds:
    """The pool's LOTO features with one more task removed from every neighbour list.

    The evaluation holds out task b and must fit the default's calibration on the other tasks'
    held-out scores *without b's labels anywhere*: in ``features(b)`` every prompt's neighbours
    exclude both its own task and b. One exact search keeps ``candidates`` neighbours per prompt
    from other tasks; removing b keeps the first ``k`` (``u_k``) that remain (a prompt whose
    candidates were almost all from b keeps fewer; with 4x the needed width this is rare).
    """

    def __init__(self, vectors: np.ndarray, tasks: np.ndarray, labels: np.ndarray,
                 k: int = sc.K_NEIGHBOURS, u_k: int = sc.U_NEIGHBOURS, candidates: int | None = None) -> None:
        self.names = list(dict.fromkeys(str(t) for t in tasks))
        code = {t: i for i, t in enumerate(self.names)}
        self.task_of = np.array([code[str(t)] for t in tasks], dtype=np.int64)
        self.k, self.u_k = k, u_k
        width = candidates or 4 * max(k, u_k)
        # a small pool: never ask for more neighbours than every prompt has outside its own task
        width = max(1, min(width, len(self.task_of) - int(np.bincount(self.task_of).max())))
        self.ids, self.dists = grouped_neighbours(vectors, self.task_of, width)
        self.nbr_task = self.task_of[self.ids]
        self.labels = labels
        self.have = ~np.isnan(labels)
        self.fallback = model_means(labels)
        self.accuracy = task_accuracy(labels, self.task_of, len(self.names))

    def _first(self, valid: np.ndarray, n: int) -> np.ndarray:
        return valid & (np.cumsum(valid, axis=1) <= n)

    def features(self, banned: int | None = None) -> TaskFeatures:
        valid = self.nbr_task != (-1 if banned is None else banned)
        sel = self._first(valid, self.k)
        lab = np.nan_to_num(self.labels)
        num = np.zeros(self.labels.shape)
        den = np.zeros(self.labels.shape)
        for j in range(self.ids.shape[1]):  # column by column: no (N, width, M) temporaries
            s = sel[:, j][:, None]
            num += s * lab[self.ids[:, j]]
            den += s * self.have[self.ids[:, j]]
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(den > 0, num / np.where(den > 0, den, 1), self.fallback[None, :])
        sel_u = self._first(valid, self.u_k)
        u_prompt = (self.dists * sel_u).sum(axis=1) / np.maximum(sel_u.sum(axis=1), 1)
        agree = np.where(self.have, (sc.threshold(g) == self.labels).astype(np.float64), np.nan)
        a_num = np.zeros(self.labels.shape)
        a_den = np.zeros(self.labels.shape)
        for j in range(self.ids.shape[1]):
            a = agree[self.ids[:, j]]
            ok = sel_u[:, j][:, None] & ~np.isnan(a)
            a_num += np.where(ok, a, 0.0)
            a_den += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            p_local = np.where(a_den > 0, a_num / np.where(a_den > 0, a_den, 1), 0.5)
        D = len(self.names)
        return TaskFeatures(s1=_per_task(g, self.task_of, D), s2=_per_task(sc.threshold(g), self.task_of, D),
                            u=_per_task(u_prompt, self.task_of, D), p=_per_task(agree, self.task_of, D),
                            p_local=_per_task(p_local, self.task_of, D), accuracy=self.accuracy)
