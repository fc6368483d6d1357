"""Nearest-neighbour search over normalised embeddings (cosine distance = 1 - dot).

:class:`HnswIndex` serves queries at run time; :class:`ExactIndex` is the brute-force reference
(and what small pools use). :func:`grouped_neighbours` answers the leave-one-task-out question
"the k nearest prompts that are *not* in my task" exactly, in blocks, for evaluation and for the
LOTO targets computed when a router is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import hnswlib


class NeighbourIndex(Protocol):
    size: int

    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances), each (n, k), nearest first."""
        ...


def _topk_from_sims(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, sims.shape[1])
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return ids.astype(np.int64), (1.0 - np.take_along_axis(top, order, axis=1)).astype(np.float32)


class ExactIndex:
    """Brute force by matrix product; exact, and fast enough below ~50k vectors."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size = len(self.vectors)

    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        ids, dists = [], []
        for start in range(0, len(q), 1024):
            i, d = _topk_from_sims(q[start:start + 1024] @ self.vectors.T, k)
            ids.append(i)
            dists.append(d)
        return np.vstack(ids), np.vstack(dists)


class HnswIndex:
    """hnswlib cosine index; ``ef`` trades recall for latency."""

    def __init__(self, index: hnswlib.Index, size: int) -> None:
        self._index = index
        self.size = size

    @classmethod
    def build(cls, vectors: np.ndarray, m: int = 16, ef_construction: int = 200, ef: int = 64,
              threads: int = -1, seed: int = 100) -> "HnswIndex":
        import hnswlib

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        idx = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        idx.init_index(max_elements=max(1, len(vectors)), ef_construction=ef_construction, M=m,
                       random_seed=seed)
        if len(vectors):
            idx.add_items(vectors, np.arange(len(vectors)), num_threads=threads)
        idx.set_ef(ef)
        return cls(idx, len(vectors))

    @classmethod
    def load(cls, path: str | Path, dim: int, size: int, ef: int = 64) -> "HnswIndex":
        import hnswlib

        idx = hnswlib.Index(space="cosine", dim=dim)
        idx.load_index(str(path), max_elements=max(1, size))
        idx.set_ef(ef)
        return cls(idx, size)

    def save(self, path: str | Path) -> None:
        self._index.save_index(str(path))

    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        k = min(k, self.size)
        labels, dists = self._index.knn_query(q, k=k, num_threads=1)
        return labels.astype(np.int64), dists.astype(np.float32)


def grouped_neighbours(vectors: np.ndarray, groups: np.ndarray, k: int,
                       queries: np.ndarray | None = None, query_groups: np.ndarray | None = None,
                       block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest pool rows whose group differs from the query's group.

    With ``queries`` omitted the pool rows query themselves (each row's own group is excluded,
    so its own duplicate never counts).
    """
    pool = np.ascontiguousarray(vectors, dtype=np.float32)
    if queries is None:
        queries, query_groups = pool, groups
    assert query_groups is not None
    codes, inv = np.unique(np.concatenate([groups, query_groups]).astype(str), return_inverse=True)
    pool_codes, q_codes = inv[: len(groups)], inv[len(groups):]
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    d_out = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ pool.T
        sims[q_codes[start:start + block, None] == pool_codes[None, :]] = -np.inf
        ids, d = _topk_from_sims(sims, k)
        ids_out[start:start + block] = ids
        d_out[start:start + block] = d
    return ids_out, d_out
