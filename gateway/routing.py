"""Which model serves a request: explicit names pass through, aliases ask router_core.

The path for an alias with a task ID: a cached final decision is used as is (no embedding);
otherwise the prompt is embedded, folded into the task's shared sums, and router_core decides;
at ``min_samples`` prompts the decision becomes final (first writer wins). Without a task ID, or
while Redis is down and no decision is known locally, the prompt is routed on its own.
Each request is decided under its knobs (:class:`gateway.knobs.Knobs`: the alias's, or the
request's headers); the task's sums are shared by all knobs, its final decision is kept per knobs.
All scoring is router_core's; this module only sequences the calls.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from router_core.decision import Decision
from router_core.embed import Encoder
from router_core.router import LabelledSamples, Observation, Router
from router_core.state import TaskAggregates

from . import metrics
from .config import RouterSettings
from .embed_batcher import EmbeddingBatcher
from .errors import bad_request
from .knobs import Knobs, check
from .task_store import StoreUnavailable, TaskStore
from .tracing import OFF, Span, Tracing

#: where a request's decision came from (the ``x-router-decision`` header, the ``decision`` label);
#: ``revised``: a final decision read back after outcome feedback revised it, ``explore``: a request sent
#: to another model to learn about it (both gateway.feedback)
Source = Literal["cached", "final", "provisional", "instance", "explicit", "revised", "explore"]
SOURCES: tuple[Source, ...] = get_args(Source)

# matched in full (``$`` alone also matches before a final newline): no braces (hash tag), no '/' (URL path)
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}")


def check_task_id(task_id: str | None) -> str | None:
    """A task ID usable as a Redis hash tag (no braces, bounded), or a 400."""
    if task_id is None or task_id == "":
        return None
    if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
        raise bad_request("task ID must be 1-200 characters of letters, digits and . _ : @ + = - "
                          "(starting with a letter or digit)", param="task_id", code="invalid_task_id")
    return task_id


@dataclass
class Choice:
    """A routing outcome: the decision, where it came from, and the task it belongs to."""

    decision: Decision
    source: Source
    task_id: str | None
    knobs: Knobs | None = None  # what it was decided under (None: explicit, no routing)
    predictions: np.ndarray | None = None  # the prompt's g row, when it was embedded (for feedback)
    request_id: str | None = None  # x-router-request-id (gateway.feedback)
    coverage: float | None = None  # x-router-coverage: how far the task's prediction can be trusted

    @property
    def order(self) -> list[str]:
        """Models to try, first choice first."""
        return list(self.decision.ranking) or [self.decision.model]


@dataclass
class TaskState:
    """A task as the tasks API shows it: its sums, its decision (final, or what the sums give now)."""

    aggregates: TaskAggregates
    labelled: LabelledSamples | None
    final: bool
    decision: Decision | None  # None before the task's first prompt


@dataclass
class SamplesAdded:
    """What posting samples did: the task's decision after folding them, how many prompts were folded
    and labelled samples kept, and the task's labelled samples as they now are (read once, for the
    decision and for revising final decisions on them)."""

    choice: Choice | None
    folded: int
    kept: int
    labelled: LabelledSamples | None


def configured_knobs(learned: Router, settings: RouterSettings, costs: np.ndarray | None
                     ) -> tuple[Knobs, dict[str, Knobs]]:
    """The router section's knobs and each alias's (its own where set, else the section's);
    ValueError naming the config key whose knob cannot apply to ``learned``."""
    try:
        default = check(Knobs(settings.epsilon, settings.lam), learned, costs)
    except ValueError as exc:
        raise ValueError(f"router: {exc}") from None
    aliases: dict[str, Knobs] = {}
    for a in settings.aliases:
        own = Knobs(default.epsilon if a.epsilon is None else a.epsilon,
                    default.lam if a.lam is None else a.lam, a.method)
        try:
            aliases[a.name] = check(own, learned, costs)
        except ValueError as exc:
            raise ValueError(f"router.aliases ({a.name}): {exc}") from None
    return default, aliases


class TaskRouter:
    """The per-task router: router_core's learned :class:`Router`, the encoder and the task state store.

    Every decision the gateway reports (requests, dry runs, samples, the tasks API) is made here.
    """

    def __init__(self, learned: Router, encoder: Encoder, store: TaskStore, settings: RouterSettings,
                 costs: np.ndarray | None = None, tracing: Tracing = OFF,
                 batcher: EmbeddingBatcher | None = None) -> None:
        """Raises ValueError when a configured knob cannot apply to ``learned`` (start-up error).
        ``batcher``: routed prompts are embedded through it, together with concurrent ones."""
        self.learned = learned
        self.batcher = batcher
        self.tracing = tracing
        self.encoder = encoder
        self.store = store
        self.settings = settings
        self.costs = costs  # config prices (override the artifact's); None: the artifact's or model size
        learned.use_method(settings.method)  # router.method overrides the artifact's
        self.default, self.aliases = configured_knobs(learned, settings, costs)

    def details(self, choice: Choice) -> dict[str, Any]:
        """The knobs a routed choice was made under and what the pick costs (``router`` object fields):
        ``routing_method``, ``epsilon``/``lambda`` where set, ``cost_unit`` and ``chosen_cost``."""
        if choice.knobs is None:
            return {}
        out = choice.knobs.describe(self.learned, self.costs)
        costs = self.learned.effective_costs(self.costs)
        if costs is not None and choice.decision.model in self.learned.models:
            out["chosen_cost"] = round(float(costs[self.learned.models.index(choice.decision.model)]), 8)
        return out

    def knobs_of(self, alias: str | None) -> Knobs:
        return self.aliases.get(alias or "", self.default)

    @property
    def variants(self) -> list[str]:
        """The configured aliases' final-decision variants (what DELETE of a task also removes)."""
        return sorted({k.variant(self.default) for k in self.aliases.values()} - {""})

    def explicit(self, model: str) -> Choice:
        return Choice(Decision(model=model, method="explicit", models=[model], ranking=[model]), "explicit", None)

    def _predict(self, text: str, labelled: LabelledSamples | None, save: bool) -> Observation:
        # a dry run changes no state: it reads the encoder's on-disk cache but adds nothing to it (an
        # encoder without ``encode_unsaved`` has no cache to write)
        unsaved = None if save else getattr(self.encoder, "encode_unsaved", None)
        with self.tracing.span("embed"):
            vec = unsaved([text]) if unsaved is not None else self.encoder.encode([text])
        return self._observe(vec, labelled)

    async def predict(self, text: str, labelled: LabelledSamples | None = None, save: bool = True) -> Observation:
        """router_core's predictions (g, u, ...) for one prompt; embedding runs in a thread so the event
        loop keeps serving (batched with concurrent prompts where a batcher is set; dry runs embed alone)."""
        if self.batcher is None or not save:
            return await asyncio.to_thread(self._predict, text, labelled, save)
        with self.tracing.span("embed"):
            vec = await self.batcher.embed(text)
        return await asyncio.to_thread(self._observe, vec[None, :], labelled)

    async def predictions(self, text: str) -> np.ndarray:
        """One prompt's predictions per model column (for feedback on a request served without them)."""
        return (await self.predict(text)).g[0]

    def _observe(self, vec: np.ndarray, labelled: LabelledSamples | None) -> Observation:
        with self.tracing.span("knn"):
            return self.learned.observe(vec, labelled)

    def instance(self, g: np.ndarray, task_id: str | None, knobs: Knobs | None = None) -> Choice:
        """A prompt routed on its own: per-prompt argmax, or the best model on average if configured."""
        knobs = knobs or self.default
        if self.settings.no_task == "bma" and task_id is None:
            r = self.learned
            others = [r.models[i] for i in np.argsort(-np.nan_to_num(r.train_mean), kind="stable") if i != r.bma]
            return Choice(Decision(model=r.bma_model, method="BMA", models=r.models,
                                   ranking=[r.bma_model, *others]), "instance", None, knobs)
        return Choice(self.learned.decide_instance(g[0], **knobs.instance_kwargs(self.costs)), "instance",
                      task_id, knobs)

    async def choose(self, task_id: str | None, text: str, knobs: Knobs | None = None) -> Choice:
        """Route one prompt under ``knobs`` (default: the router section's), updating the task's shared
        state (traced as the ``route`` span)."""
        with self.tracing.span("route") as span:
            choice = await self._choose(task_id, text, knobs or self.default)
            _record(span, choice)
            return choice

    async def _choose(self, task_id: str | None, text: str, knobs: Knobs) -> Choice:
        variant = knobs.variant(self.default)
        if task_id is None:
            g = (await self.predict(text)).g
            return self.instance(g, None, knobs)
        try:
            with self.tracing.span("redis.final"):
                final = await self.store.final(task_id, variant)
            metrics.DECISION_CACHE.labels("hit" if final else "miss").inc()
            if final is not None:
                return Choice(final, read_back(final), task_id, knobs)
            labelled = await self.store.labelled(task_id)
            obs = await self.predict(text, labelled)
            with self.tracing.span("redis.fold"):
                folded = await self.store.fold(task_id, obs.aggregates(), variant)
            if folded.final is not None:  # another process finalised it meanwhile
                return Choice(folded.final, read_back(folded.final), task_id, knobs, obs.g[0])
            assert folded.aggregates is not None  # a fold returns sums or the final decision
            choice = await self._decide(task_id, folded.aggregates, knobs, commit=True, labelled=labelled)
            choice.predictions = obs.g[0]
            return choice
        except StoreUnavailable:
            return await self._fail_open(task_id, text, knobs)

    async def _fail_open(self, task_id: str, text: str, knobs: Knobs, save: bool = True) -> Choice:
        """Redis is down: a decision this process has seen, else the prompt on its own."""
        local = self.store.local_final(task_id, knobs.variant(self.default))
        if local is not None:
            return Choice(local, read_back(local), task_id, knobs)
        g = (await self.predict(text, save=save)).g
        return self.instance(g, task_id, knobs)

    async def _decide(self, task_id: str, agg: TaskAggregates, knobs: Knobs, commit: bool,
                      labelled: LabelledSamples | None = None) -> Choice:
        with self.tracing.span("decide"):
            decision = self.learned.decide(agg, labelled=labelled, **knobs.decide_kwargs(self.costs))
        if agg.n < self.settings.min_samples:
            return Choice(decision, "provisional", task_id, knobs)
        if not commit:
            return Choice(decision, "final", task_id, knobs)
        with self.tracing.span("redis.set_final"):
            winner, ours = await self.store.set_final(task_id, decision, knobs.variant(self.default))
        if winner is None:  # neither stored nor read back: the pick stands, but nothing made it final
            return Choice(decision, "provisional", task_id, knobs)
        return Choice(winner, "final" if ours else "cached", task_id, knobs)

    async def dry_run(self, task_id: str | None, text: str, knobs: Knobs | None = None) -> Choice:
        """What :meth:`choose` would pick for this prompt now, without changing any state (the
        embedding cache included)."""
        knobs = knobs or self.default
        if task_id is None:
            g = (await self.predict(text, save=False)).g
            return self.instance(g, None, knobs)
        try:
            final, agg, labelled = await self.store.peek(task_id, knobs.variant(self.default))
        except StoreUnavailable:
            return await self._fail_open(task_id, text, knobs, save=False)
        if final is not None:
            return Choice(final, read_back(final), task_id, knobs)
        obs = await self.predict(text, labelled, save=False)
        return await self._decide(task_id, agg.merge(obs.aggregates()), knobs, commit=False, labelled=labelled)

    async def task_state(self, task_id: str, knobs: Knobs | None = None) -> TaskState:
        """The task's sums and decision, without changing any state (raises StoreUnavailable)."""
        knobs = knobs or self.default
        final, agg, labelled = await self.store.peek(task_id, knobs.variant(self.default))
        decision = final or (self.learned.decide(agg, labelled=labelled, **knobs.decide_kwargs(self.costs))
                             if agg.n else None)
        return TaskState(agg, labelled, final is not None, decision)

    async def add_samples(self, task_id: str, texts: list[str], labels: list[dict[str, float] | None]
                          ) -> SamplesAdded:
        """Fold example prompts into the task; the labelled ones are kept as the task's evidence (and
        join its neighbour pool where the method says so, router_core's ``Router.labels_join_pool``)."""
        vecs = await asyncio.to_thread(self.encoder.encode, texts)
        labelled_idx = [i for i, lab in enumerate(labels) if lab]
        kept = 0
        if labelled_idx:
            kept = await self.store.add_samples(task_id, vecs[labelled_idx],
                                                [labels[i] for i in labelled_idx])  # type: ignore[misc]
        pool = await self.store.labelled(task_id)
        obs = await asyncio.to_thread(self.learned.observe, vecs, pool)
        folded = await self.store.fold(task_id, obs.aggregates())
        if folded.final is not None:
            return SamplesAdded(Choice(folded.final, read_back(folded.final), task_id, self.default), len(texts),
                                kept, pool)
        assert folded.aggregates is not None  # a fold returns sums or the final decision
        choice = await self._decide(task_id, folded.aggregates, self.default, commit=True, labelled=pool)
        return SamplesAdded(choice, len(texts), kept, pool)


#: the sources :func:`read_back` gives: a final decision read back from the store
READ_BACK: tuple[Source, ...] = ("cached", "revised")


def read_back(final: Decision) -> Source:
    """The source of a stored final decision: ``revised`` once feedback revised it, else ``cached``."""
    return "revised" if final.revision else "cached"


def _record(span: Span, choice: Choice) -> None:
    """The decision on the ``route`` span: where it came from, how it was made, what it picked."""
    if span.is_recording():
        span.set_attributes({"llm_router.decision.source": choice.source,
                             "llm_router.decision.method": choice.decision.method,
                             "llm_router.decision.model": choice.decision.model,
                             **({"llm_router.task_id": choice.task_id} if choice.task_id else {})})
