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
    sum_pl: np.ndarray | None = None  # (M,) sums of the local predictor-accuracy estimate, if kept

    @classmethod
    def empty(cls, n_models: int, local: bool = False) -> "TaskAggregates":
        return cls(0, np.zeros(n_models), np.zeros(n_models), 0.0, np.zeros(n_models) if local else None)

    @classmethod
    def from_rows(cls, g: np.ndarray, u: np.ndarray, p_local: np.ndarray | None = None) -> "TaskAggregates":
        """Aggregates of a batch: g (n, M), per-prompt distances u (n,), optionally local p (n, M)."""
        g = np.atleast_2d(g)
        pl = None if p_local is None else np.atleast_2d(p_local).sum(axis=0)
        return cls(len(g), g.sum(axis=0), threshold(g).sum(axis=0), float(np.sum(u)), pl)

    def fold(self, g_row: np.ndarray, u_value: float, pl_row: np.ndarray | None = None) -> "TaskAggregates":
        """These aggregates plus one prompt (a new object; the old one is unchanged)."""
        return self.merge(TaskAggregates.from_rows(np.asarray(g_row, dtype=np.float64), np.array([u_value]),
                                                   None if pl_row is None else np.asarray(pl_row)))

    def merge(self, other: "TaskAggregates") -> "TaskAggregates":
        pl = None if self.sum_pl is None or other.sum_pl is None else self.sum_pl + other.sum_pl
        if self.n == 0:
            pl = other.sum_pl
        return TaskAggregates(self.n + other.n, self.sum_g + other.sum_g,
                              self.sum_gbar + other.sum_gbar, self.sum_u + other.sum_u, pl)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "sum_g": [float(x) for x in self.sum_g],
                               "sum_gbar": [float(x) for x in self.sum_gbar], "sum_u": self.sum_u}
        if self.sum_pl is not None:
            out["sum_pl"] = [float(x) for x in self.sum_pl]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskAggregates":
        pl = d.get("sum_pl")
        return cls(int(d["n"]), np.asarray(d["sum_g"], dtype=np.float64),
                   np.asarray(d["sum_gbar"], dtype=np.float64), float(d["sum_u"]),
                   None if pl is None else np.asarray(pl, dtype=np.float64))
