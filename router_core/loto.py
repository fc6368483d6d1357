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
