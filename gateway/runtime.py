"""Everything a request handler needs, built once per process at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from starlette.requests import Request

from router_core.embed import Encoder
from router_core.router import Router

from .config import GatewayConfig
from .embed_batcher import EmbeddingBatcher
from .feedback import Feedback
from .forward import Forwarder, Outcome
from .routing import TaskRouter
from .task_store import RedisTaskStore, TaskStore
from .tracing import OFF, Tracing


@dataclass
class Runtime:
    config: GatewayConfig
    learned: Router  # router_core's router, loaded from the artifact
    store: TaskStore  # every task's state, shared through Redis
    task_router: TaskRouter  # decides for a task (or a lone prompt) from the two above
    forwarder: Forwarder
    feedback: Feedback  # request IDs, outcome feedback, revisions (gateway/feedback.py)
    tracing: Tracing = OFF  # the request's spans (gateway/tracing.py)

    @classmethod
    def build(cls, config: GatewayConfig, learned: Router, encoder: Encoder, store: RedisTaskStore,
              tracing: Tracing, batcher: EmbeddingBatcher | None) -> "Runtime":
        """The runtime for ``config`` around the process's encoder, Redis store and tracing (at start-up,
        and again on a config reload, gateway/reload.py)."""
        task_router = TaskRouter(learned, encoder, store, config.router, config_costs(config, learned.models),
                                 tracing, batcher)
        feedback = Feedback(learned, store, config.feedback, task_router.default, task_router.costs,
                            predict=task_router.predictions)
        return cls(config, learned, store, task_router, Forwarder(config, tracing), feedback, tracing)

    @property
    def aliases(self) -> list[str]:
        return self.config.router.alias_names

    def __post_init__(self) -> None:
        #: every name a request may use as ``model`` (the bounded ``requested`` label set)
        self.known_names = frozenset([*self.aliases, *self.config.models_by_name])

    def cost(self, outcome: Outcome, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for an answer: the prices of the deployment that gave it (else its model's first entry)."""
        dep = outcome.deployment
        info = dep.prices if dep is not None and dep.prices is not None else \
            self.config.models_by_name[outcome.served].model_info
        return float(info.cost(prompt_tokens, completion_tokens))


def config_costs(config: GatewayConfig, models: list[str]) -> np.ndarray | None:
    """Per-request prices from ``model_info.cost_per_request`` when every routed model has one."""
    prices = [config.models_by_name[m].model_info.cost_per_request for m in models]
    return None if any(p is None for p in prices) else np.asarray(prices, dtype=np.float64)


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency (async: a sync one would cost a thread-pool hop per request)."""
    runtime: Runtime = request.app.state.runtime
    return runtime
