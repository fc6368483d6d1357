"""Test doubles for the fast tier: a hashing encoder, a tiny router built from synthetic vectors,
and an in-memory task state store implementing gateway.task_store.TaskStore."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from gateway.task_store import FoldResult, StoreUnavailable
from router_core.data import BenchmarkData
from router_core.decision import Decision
from router_core.router import LabelledSamples, Router, build_from_vectors
from router_core.state import TaskAggregates

DIM = 16
MODELS = ["big", "small", "code"]
TASKS = ["math", "prose", "code", "trivia"]


class HashEncoder:
    """Unit vectors from a text's hash; a topic word shifts the direction so tasks cluster."""

    name = "hash-encoder"
    dim = DIM

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.calls += 1
        rows = []
        for t in texts:
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
            v = rng.normal(size=DIM) * 0.3
            for i, task in enumerate(TASKS):
                if task in t:
                    v[i] += 3.0
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIM)


def prompts(task: str, n: int, start: int = 0) -> list[str]:
    return [f"{task} question number {i}" for i in range(start, start + n)]


def tiny_router(encoder: HashEncoder) -> Router:
    """Four tasks of 30 prompts: "small" is right on math, "code" on code, "big" on the rest."""
    texts, tasks, labels = [], [], []
    rng = np.random.default_rng(0)
    best = {"math": 1, "prose": 0, "code": 2, "trivia": 0}
    for task in TASKS:
        for p in prompts(task, 30):
            row = (rng.random(len(MODELS)) < 0.3).astype(np.float32)
            row[best[task]] = 1.0
            texts.append(p)
            tasks.append(task)
            labels.append(row)
    data = BenchmarkData("synthetic", list(MODELS), texts, np.array(tasks, dtype=object), np.vstack(labels))
    return build_from_vectors(data, encoder.encode(texts))


class MemoryTaskStore:
    """gateway.task_store.TaskStore in a dict; ``down`` makes every call raise StoreUnavailable."""

    def __init__(self, n_models: int) -> None:
        self.n_models = n_models
        self.sums: dict[str, TaskAggregates] = {}
        self.finals: dict[str, Decision] = {}
        self.samples: dict[str, LabelledSamples] = {}
        self.local: dict[str, Decision] = {}
        self.down = False
        self.lose_final_writes = False  # SET NX loses and the read-back finds nothing
        self.fail_open = False
        self.last_error: str | None = None

    def _check(self) -> None:
        if self.down:
            self.fail_open, self.last_error = True, "down for the test"
            raise StoreUnavailable("down for the test")

    async def ping(self) -> bool:
        return not self.down

    async def final(self, task: str, variant: str = "") -> Decision | None:
        self._check()
        return self.finals.get(f"{task}|{variant}")

    def local_final(self, task: str, variant: str = "") -> Decision | None:
        return self.local.get(f"{task}|{variant}")

    async def peek(self, task: str, variant: str = "") -> tuple[Decision | None, TaskAggregates,
                                                                LabelledSamples | None]:
        self._check()
        return (self.finals.get(f"{task}|{variant}"), self.sums.get(task, TaskAggregates.empty(self.n_models)),
                self.samples.get(task))

    async def labelled(self, task: str) -> LabelledSamples | None:
        self._check()
        return self.samples.get(task)

    async def fold(self, task: str, delta: TaskAggregates, variant: str = "") -> FoldResult:
        self._check()
        if f"{task}|{variant}" in self.finals:
            return FoldResult(None, self.finals[f"{task}|{variant}"])
        empty = TaskAggregates.empty(self.n_models, delta.sum_pl is not None)
        self.sums[task] = self.sums.get(task, empty).merge(delta)
        return FoldResult(self.sums[task], None)

    async def set_final(self, task: str, decision: Decision, variant: str = "") -> tuple[Decision | None, bool]:
        self._check()
        if self.lose_final_writes:
            return None, False
        key = f"{task}|{variant}"
        if key in self.finals:
            return self.finals[key], False
        self.finals[key] = self.local[key] = decision
        return decision, True

    async def add_samples(self, task: str, vectors: np.ndarray, labels: list[dict[str, float]]) -> int:
        self._check()
        rows = np.full((len(labels), self.n_models), np.nan, dtype=np.float32)
        for i, lab in enumerate(labels):
            for m, v in lab.items():
                rows[i, MODELS.index(m)] = v
        old = self.samples.get(task)
        vecs = vectors if old is None else np.vstack([old.vectors, vectors])
        labs = rows if old is None else np.vstack([old.labels, rows])
        self.samples[task] = LabelledSamples(np.asarray(vecs, dtype=np.float32), labs)
        return len(self.samples[task])

    async def reset(self, task: str, variants: list[str] | None = None) -> int:
        self._check()
        finals = [k for k in self.finals if k.split("|")[0] == task and k.split("|")[1] in ["", *(variants or [])]]
        gone = sum(task in d for d in (self.sums, self.samples)) + len(finals)
        for d in (self.sums, self.samples):
            d.pop(task, None)  # type: ignore[attr-defined]
        for k in finals:
            self.finals.pop(k, None)
            self.local.pop(k, None)
        return gone

    async def close(self) -> None:
        return None
