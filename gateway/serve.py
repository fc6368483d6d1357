"""``llm-router serve``: validate the config, start embedded Redis if needed, run uvicorn.

With ``--workers > 1`` Prometheus runs in multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set
to a fresh, empty directory before any worker starts (and each worker marks itself dead on exit);
the CLI prepares it before this module (and so the metrics) is imported, see gateway/multiproc.py.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from .app import CONFIG_ENV, REDIS_URL_ENV, create_app, load_checked
from .config import load_config
from .redis_embedded import EmbeddedRedis

GRACE_S = 30  # in-flight requests get this long to finish on shutdown
# with workers, uvicorn's supervisor waits this long for a replacement worker (SIGHUP) to serve before it
# keeps the old one; a worker loads the artifact and the encoder first (its 5 s default is too short)
WORKER_READY_S = 120
HTTP = "gateway.http_protocol:GuardedHttpProtocol"  # uvicorn's httptools protocol with header limits


def run(config_path: Path, host: str, port: int, workers: int, log_level: str = "info") -> None:
    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)  # fails here, naming the field, before anything starts
    for warning in config.warnings:  # a LiteLLM Proxy file's settings this gateway does not apply
        logging.getLogger("gateway").warning("config %s: %s", config_path, warning)
    # the model check runs once per process that builds an app (create_app); with workers the
    # parent builds none, so it checks here, before anything starts
    app = create_app(config, config_path=Path(config_path).resolve()) if workers == 1 else None
    if app is None:
        load_checked(config)
    embedded = None
    if config.redis.url is None and not os.environ.get(REDIS_URL_ENV):
        embedded = EmbeddedRedis(config.redis.state_dir).start()
        os.environ[REDIS_URL_ENV] = embedded.url
        logging.getLogger("gateway").info("embedded redis-server on %s (data in %s)", embedded.url,
                                          config.redis.state_dir)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit through ``finally`` instead
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if app is None:
            os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
            uvicorn.run("gateway.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level=log_level, access_log=False, timeout_graceful_shutdown=GRACE_S, http=HTTP,
                        timeout_worker_healthcheck=WORKER_READY_S)
        else:
            uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                        timeout_graceful_shutdown=GRACE_S, http=HTTP)
    finally:
        if embedded is not None:
            embedded.stop()
