"""A task's running aggregates: what a server keeps per task instead of embeddings.

Folding a prompt adds its row of g, its row of gbar, and its u contribution; the task-level
scores and the decision are computed from these O(models) sums alone
(:func:`router_core.decision.decide_task`), and equal the batch computation over all prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .scores import threshold


@dataclass
class TaskAggregates:
    """Sums over the prompts of one task seen so far."""

    n: int
    sum_g: np.ndarray  # (M,)
    sum_gbar: np.ndarray  # (M,) integer counts of predicted-correct prompts
    sum_u: float

    @classmethod
    def empty(cls, n_models: int) -> "TaskAggregates":
        return cls(0, np.zeros(n_models), np.zeros(n_models), 0.0)

    @classmethod
    def from_rows(cls, g: np.ndarray, u: np.ndarray) -> "TaskAggregates":
        """Aggregates of a batch: g (n, M) and per-prompt distances u (n,)."""
        g = np.atleast_2d(g)
        return cls(len(g), g.sum(axis=0), threshold(g).sum(axis=0), float(np.sum(u)))

    def fold(self, g_row: np.ndarray, u_value: float) -> "TaskAggregates":
        """These aggregates plus one prompt (a new object; the old one is unchanged)."""
        g_row = np.asarray(g_row, dtype=np.float64)
        return TaskAggregates(self.n + 1, self.sum_g + g_row, self.sum_gbar + threshold(g_row),
                              self.sum_u + float(u_value))

    def merge(self, other: "TaskAggregates") -> "TaskAggregates":
        return TaskAggregates(self.n + other.n, self.sum_g + other.sum_g,
                              self.sum_gbar + other.sum_gbar, self.sum_u + other.sum_u)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum_g": [float(x) for x in self.sum_g],
                "sum_gbar": [float(x) for x in self.sum_gbar], "sum_u": self.sum_u}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskAggregates":
        return cls(int(d["n"]), np.asarray(d["sum_g"], dtype=np.float64),
                   np.asarray(d["sum_gbar"], dtype=np.float64), float(d["sum_u"]))
