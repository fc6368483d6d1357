"""Config reload without a restart: ``SIGHUP`` makes a one-process gateway read its config file again.

What a running process can swap takes effect for the requests that start after the reload: the
``model_list`` (deployments, prices), the ``router`` section (its artifact, method, knobs, aliases,
TTLs), ``upstreams`` and ``feedback``. The new config is read and checked exactly as at start-up
(:func:`gateway.app.load_checked`) before anything changes; a file that fails, or that changes a section
only a restart can apply (``RESTART_SECTIONS``: the Redis connection, the encoder, the API keys and
body limits the middleware holds, tracing), changes nothing and is logged with the reason. Requests in
flight finish on the runtime they started with; the new one keeps the Redis client (a new artifact
gets its own key layout on it).

With ``serve --workers N`` uvicorn's supervisor handles ``SIGHUP`` itself: it replaces the workers one
by one, each starting from the file, and keeps the old ones if a new one does not serve within
:data:`gateway.serve.WORKER_READY_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal

from fastapi import FastAPI

from . import metrics
from .config import ConfigError, GatewayConfig, load_config
from .runtime import Runtime
from .task_store import RedisTaskStore

log = logging.getLogger("gateway.reload")

#: sections a running process holds in its middleware, connections or encoder: changing them needs a restart
RESTART_SECTIONS = ("redis", "embedding", "auth", "limits", "tracing")

Result = Literal["applied", "unchanged", "rejected"]


def restart_needed(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The sections of ``new`` that differ from ``old`` and that only a restart applies."""
    return [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]


def _store_kept(old: Runtime, new: GatewayConfig, version: str, models: list[str]) -> bool:
    """Whether the new runtime can keep the old store: the same artifact (key layout), TTLs and caps
    (otherwise it gets a new store on the same Redis client)."""
    o, n = old.config.router, new.router
    return (old.learned.version == version and list(old.learned.models) == models
            and (o.decision_ttl_s, o.max_labelled_samples, o.pending_ttl_s)
            == (n.decision_ttl_s, n.max_labelled_samples, n.pending_ttl_s))


async def reload_config(app: FastAPI, path: Path) -> Result:
    """Read ``path`` again and swap ``app.state.runtime`` for one built from it (module docstring)."""
    from .app import load_checked  # the start-up check; app imports this module

    old: Runtime = app.state.runtime
    try:
        new = await asyncio.to_thread(load_config, path)
        if new == old.config:
            log.info("config %s reloaded: nothing changed", path)
            metrics.CONFIG_RELOADS.labels("unchanged").inc()
            return "unchanged"
        sections = restart_needed(old.config, new)
        if sections:
            raise ConfigError(f"{', '.join(sections)} changed: only a restart applies "
                              f"{'that section' if len(sections) == 1 else 'those sections'}")
        learned = await asyncio.to_thread(load_checked, new)
    except ConfigError as exc:
        log.error("config %s not reloaded, the running config stays: %s", path, exc)
        metrics.CONFIG_RELOADS.labels("rejected").inc()
        return "rejected"
    settings = new.router
    store = old.store
    assert isinstance(store, RedisTaskStore)  # the one store a running gateway has
    if not _store_kept(old, new, learned.version, list(learned.models)):
        # the same Redis client (its connections), with the new artifact's key layout and the new TTLs
        store = RedisTaskStore(store.client, new.redis, learned.version, list(learned.models),
                               settings.decision_ttl_s, settings.max_labelled_samples, settings.pending_ttl_s)
    encoder = old.task_router.encoder
    cache = getattr(encoder, "cache", None)
    if cache is not None:
        cache.max_rows = settings.embedding_cache_max_rows
    app.state.runtime = Runtime.build(new, learned, encoder, store, old.tracing, old.task_router.batcher)
    metrics.ROUTER_INFO.labels(learned.version, str(len(learned.models))).set(1)
    if (learned.version, len(learned.models)) != (old.learned.version, len(old.learned.models)):
        with contextlib.suppress(KeyError):  # the artifact table shows each label set it has
            metrics.ROUTER_INFO.remove(old.learned.version, str(len(old.learned.models)))
    metrics.CONFIG_RELOADS.labels("applied").inc()
    log.info("config %s reloaded: artifact %s, %d models, aliases %s", path, learned.version, len(learned.models),
             ", ".join(settings.alias_names))
    return "applied"
