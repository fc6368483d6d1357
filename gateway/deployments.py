"""Several deployments under one ``model_name``: which one to try, and which ones keep failing.

LiteLLM Proxy load-balances the entries of ``model_list`` that share a ``model_name``; so does the
gateway, with two of LiteLLM's strategies: ``simple-shuffle`` (a random order per request) and
``least-busy`` (fewest requests in flight first). A deployment that failed ``allowed_fails`` times
in a row is put last for ``cooldown_s`` seconds, and a retry of the same model goes to its next
deployment, so a failing deployment is skipped while another one answers.

Each deployment also keeps its last few outcomes: one whose every recent attempt failed is
reported by readiness as degraded (:meth:`DeploymentPool.degraded`).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Balancing = Literal["simple-shuffle", "least-busy"]
RECENT = 5  # outcomes kept per deployment for the readiness report


@dataclass
class Deployment:
    """One ``model_list`` entry: the arguments litellm gets, and its running state."""

    model: str  # the model_name it serves
    index: int  # its position among that model_name's entries
    kwargs: dict[str, Any]  # litellm arguments (model, api_base, api_key, timeout, ...)
    prices: Any = None  # its config.ModelInfo (prices the answer), where configured
    direct: Any = None  # its litellm_direct.DirectChat, where the fast path applies
    in_flight: int = 0
    fails: int = 0  # consecutive failures
    down_until: float = 0.0  # cooled down until this monotonic time
    recent: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=RECENT))

    @property
    def api_base(self) -> str | None:
        base = self.kwargs.get("api_base")
        return str(base) if base else None

    @property
    def label(self) -> str:
        """How messages name it: the model and, where configured, its api_base (never a key)."""
        return f"{self.model} ({self.api_base})" if self.api_base else self.model


class DeploymentPool:
    """Every configured deployment, grouped by ``model_name``."""

    def __init__(self, deployments: list[Deployment], balancing: Balancing = "simple-shuffle",
                 cooldown_s: float = 5.0, allowed_fails: int = 1, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.by_model: dict[str, list[Deployment]] = {}
        for d in deployments:
            self.by_model.setdefault(d.model, []).append(d)
        self.balancing = balancing
        self.cooldown_s = cooldown_s
        self.allowed_fails = allowed_fails
        self.rng = rng or random.Random()
        self.clock = clock

    def __contains__(self, model: str) -> bool:
        return model in self.by_model

    def ordered(self, model: str) -> list[Deployment]:
        """``model``'s deployments in the order to try them: available ones by the balancing
        strategy, cooled-down ones last (tried only when nothing else is left)."""
        group = list(self.by_model.get(model, ()))
        if len(group) > 1:
            if self.balancing == "least-busy":
                self.rng.shuffle(group)  # equal loads: no fixed favourite
                group.sort(key=lambda d: d.in_flight)
            else:
                self.rng.shuffle(group)
            now = self.clock()
            group.sort(key=lambda d: d.down_until > now)  # stable: keeps the order within each part
        return group

    def plan(self, models: list[str], tries: int) -> list[Deployment]:
        """The attempts for a request: ``tries`` per model (in ``models`` order), each retry on the
        model's next deployment."""
        attempts: list[Deployment] = []
        for model in models:
            group = self.ordered(model)
            if group:
                attempts += [group[i % len(group)] for i in range(tries)]
        return attempts

    def started(self, d: Deployment) -> None:
        d.in_flight += 1

    def finished(self, d: Deployment, ok: bool | None) -> None:
        """One attempt on ``d`` is over: ``ok`` True (answered), False (the upstream failed) or None
        (the caller's fault, e.g. a 400: says nothing about the deployment)."""
        d.in_flight = max(0, d.in_flight - 1)
        if ok is None:
            return
        now = self.clock()
        d.recent.append((ok, now))
        if ok:
            d.fails = 0
            d.down_until = 0.0
            return
        d.fails += 1
        if d.fails >= self.allowed_fails and len(self.by_model.get(d.model, ())) > 1:
            d.down_until = now + self.cooldown_s

    def degraded(self) -> list[dict[str, Any]]:
        """Deployments whose every recent attempt failed (none of them answered lately)."""
        out = []
        for group in self.by_model.values():
            for d in group:
                if d.recent and not any(ok for ok, _ in d.recent):
                    out.append({"model": d.model, "api_base": d.api_base, "failed_attempts": len(d.recent),
                                "last_failure_s_ago": round(self.clock() - d.recent[-1][1], 1)})
        return out
