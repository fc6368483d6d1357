"""Gateway fixtures: a small real router, real redis-server, the local upstream in a subprocess,
and gateways on free localhost ports (in a thread of this process, or as `llm-router serve`)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from gateway.redis_embedded import EmbeddedRedis

from gateway_support import API_KEY, PER_TASK, TASKS, ThreadGateway, UpstreamHandle, make_config, running_upstream


@dataclass
class Bench:
    """The full routerbench subset, the router's pool (a sample) and held-out prompts per task."""

    data: Any
    pool: Any
    held_out: dict[str, list[str]]


@pytest.fixture(scope="session")
def bench(shared_data: Path) -> Bench:
    from router_core import data

    full = data.load(shared_data / "routerbench-subset")
    pool = full.sample_tasks(TASKS, per_task=PER_TASK)
    in_pool = set(pool.prompts)
    held = {t: [p for p, tt in zip(full.prompts, full.tasks) if tt == t and p not in in_pool][:40] for t in TASKS}
    return Bench(full, pool, held)


@pytest.fixture(scope="session")
def encoder():
    from router_core.embed import get_encoder

    return get_encoder()


@pytest.fixture(scope="session")
def router_dir(bench: Bench, encoder, tmp_path_factory) -> Path:
    from router_core import artifact
    from router_core.router import build_router

    out = tmp_path_factory.mktemp("router")
    artifact.save(build_router(bench.pool, encoder), out)
    return out


@pytest.fixture(scope="session")
def router(router_dir: Path):
    from router_core import artifact

    return artifact.load(router_dir)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def upstream(shared_data: Path) -> Iterator[UpstreamHandle]:
    with running_upstream(shared_data / "routerbench-subset") as handle:
        yield handle


@pytest.fixture(autouse=True)
def _reset_upstream(request) -> Iterator[None]:
    yield
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


@pytest.fixture(scope="session")
def gateway_config(router_dir, router, upstream, redis_url) -> dict[str, Any]:
    return make_config(router_dir, router.models, upstream.url, redis_url)


@pytest.fixture(scope="session")
def gateway(gateway_config, encoder) -> Iterator[ThreadGateway]:
    gw = ThreadGateway(gateway_config, encoder).start()
    yield gw
    gw.stop()


@pytest.fixture()
def task_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def client(gateway):
    import openai

    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def aclient_factory(gateway):
    import openai

    return lambda: openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0)
