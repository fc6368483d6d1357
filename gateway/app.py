"""The application factory: wires config, router, decision store, forwarder, metrics and routes."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI

from router_core import artifact
from router_core.embed import Encoder, encode_each
from router_core.router import Router

from . import docs_ui, errors, metrics, openapi_doc, tracing
from .auth import KeyFirst
from .body_limit import BodyLimit
from .config import ConfigError, GatewayConfig, load_config
from .disconnect import CancelOnDisconnect
from .embed_batcher import EmbeddingBatcher
from .http_protocol import LIMITS_STATE_KEY
from .redis_embedded import EmbeddedRedis
from .routing import configured_knobs
from .runtime import Runtime, config_costs
from .task_store import RedisTaskStore

log = logging.getLogger("gateway")
CONFIG_ENV = "LLM_ROUTER_CONFIG"
REDIS_URL_ENV = "LLM_ROUTER_REDIS_URL"  # set by `serve` for its workers when it started embedded Redis


def check_models(config: GatewayConfig) -> list[str]:
    """The artifact's models, after checking that ``model_list`` can serve every one."""
    try:
        manifest = artifact.read_manifest(config.router.artifact)
    except artifact.ArtifactError as exc:
        raise ConfigError(f"router.artifact: {exc}") from None
    models = list(manifest["models"])
    missing = config.missing_models(models)
    if missing:
        raise ConfigError("model_list: the router artifact can pick models that are not configured: "
                          + ", ".join(missing))
    return models


def load_checked(config: GatewayConfig) -> Router:
    """The router artifact, checked against ``config``: every model it can pick is configured,
    ``router.method`` applies (a calibrated override needs a calibration in the artifact), and every
    cost knob of the router section and the aliases can apply. ConfigError naming what cannot."""
    check_models(config)
    try:
        learned = artifact.load(config.router.artifact)
    except artifact.ArtifactError as exc:
        raise ConfigError(f"router.artifact: {exc}") from None
    try:
        learned.use_method(config.router.method)
    except ValueError as exc:
        raise ConfigError(f"router.method: {exc}") from None
    try:
        configured_knobs(learned, config.router, config_costs(config, learned.models))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return learned


def freeze_startup_heap() -> None:
    """Move everything start-up made (litellm's model map, the artifact, pydantic schemas, ~350k objects)
    out of the garbage collector's reach: a full collection walked them all, stalling every request
    in flight for 0.6-0.7 s on the development box (docs/performance.md, "Lean cached path"). They
    live as long as the process; what requests allocate afterwards is collected as before."""
    gc.collect()  # garbage made at start-up is freed, not frozen
    gc.freeze()


def batcher_of(config: GatewayConfig, encoder: Encoder) -> EmbeddingBatcher | None:
    """The embedding batcher the ``embedding`` section asks for (None: each request embeds alone)."""
    emb = config.embedding
    if not emb.batch:
        return None
    return EmbeddingBatcher(partial(encode_each, encoder), emb.batch_window_ms / 1000, emb.batch_max)


def create_app(config: GatewayConfig, redis_url: str | None = None, encoder: Encoder | None = None,
               span_exporter: Any = None, config_path: Path | None = None) -> FastAPI:
    """A gateway app for ``config``; the router, encoder and Redis are set up in its lifespan.

    ``redis_url`` overrides ``config.redis.url``; with neither, the app starts an embedded
    redis-server under ``config.redis.state_dir`` and stops it on shutdown. ``span_exporter`` (an
    OpenTelemetry ``SpanExporter``, for tests) turns tracing on with spans exported as they end.
    ``config_path``: the file ``config`` came from; served from the main thread, ``SIGHUP`` reloads it
    (gateway/reload.py).
    """
    learned = load_checked(config)
    traces = tracing.from_settings(config.tracing, span_exporter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        embedded = None
        url = redis_url or config.redis.url or os.environ.get(REDIS_URL_ENV)
        if url is None:
            embedded = EmbeddedRedis(config.redis.state_dir).start()  # this thread: see die_with_parent
            url = embedded.url
        router = learned
        settings = config.router
        enc = encoder
        if enc is None:
            from router_core.embed import get_encoder

            cached = await asyncio.to_thread(get_encoder, backend=config.embedding.backend)
            if cached.cache is not None:  # every new prompt adds a row: keep the file bounded
                cached.cache.max_rows = settings.embedding_cache_max_rows
            await asyncio.to_thread(cached.encode, ["warm-up"])
            enc = cached
        store = RedisTaskStore.from_url(url, config.redis, router.version, router.models,
                                        settings.decision_ttl_s, settings.max_labelled_samples,
                                        settings.pending_ttl_s)
        app.state.runtime = Runtime.build(config, router, enc, store, traces, batcher_of(config, enc))
        metrics.ROUTER_INFO.labels(router.version, str(len(router.models))).set(1)
        if not await store.ping():
            log.warning("redis at %s is not reachable at start-up; failing open", url.split("@")[-1])
        freeze_startup_heap()
        if config_path is not None:
            app.state.config_path = Path(config_path)
            app.state.reload_lock = asyncio.Lock()
            if threading.current_thread() is threading.main_thread():
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup, app)
        log.info("gateway ready: artifact %s, %d models, aliases %s", router.version, len(router.models),
                 ", ".join(settings.alias_names))
        try:
            yield {LIMITS_STATE_KEY: config.limits}  # read by the connection protocol (gateway.http_protocol)
        finally:
            await store.close()
            await asyncio.to_thread(traces.shutdown)  # exports what is still queued
            if embedded is not None:
                embedded.stop()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    from .api import health, openai, router_api

    app = FastAPI(title="llm-router gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry=traces.fastapi_telemetry(),
                  description="An OpenAI-compatible gateway that routes each task to the model most likely "
                              "to answer it correctly, keeps the decision per task in Redis and forwards "
                              "through litellm.")
    errors.install(app)
    app.include_router(openai.router)
    app.include_router(router_api.router)
    app.include_router(health.router)
    openapi_doc.install(app)
    docs_ui.install(app)
    # outermost last: the key first (no body read without one), then the body's size and time, then
    # a client's disconnect cancelling the handler
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes, timeout_s=config.limits.body_timeout_s)
    app.add_middleware(KeyFirst, api_keys=config.auth.api_keys)
    return app


def on_hangup(app: FastAPI) -> None:
    """``SIGHUP``: reload the config file (gateway/reload.py), one reload at a time."""
    from .reload import reload_config

    async def run() -> None:
        async with app.state.reload_lock:
            await reload_config(app, app.state.config_path)

    app.state.reload_task = asyncio.ensure_future(run())  # kept: a bare task may be collected mid-run


def app_from_env() -> FastAPI:
    """uvicorn factory for ``serve --workers N``: the config path comes from ``LLM_ROUTER_CONFIG``
    (uvicorn's supervisor handles ``SIGHUP`` by replacing the workers, each reading the file)."""
    return create_app(load_config(os.environ[CONFIG_ENV]))
