"""The ``llm-router`` console script: router_core's commands plus the gateway's (serve, upstream, demo).

Command bodies stay thin: parse options, call into the gateway modules, report. ``upstream`` and
``demo`` run development tools (the ``devtools`` package of a source checkout, not in the wheel),
imported only when those commands run.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from router_core.cli import app


def _devtools(module: str) -> Any:
    """A ``devtools`` module, or a clear error where only the production package is installed.

    In a source checkout (an editable install included) ``devtools/`` sits beside ``gateway/``;
    the wheel has no ``devtools``.
    """
    checkout = str(Path(__file__).resolve().parents[1])
    if (Path(checkout) / "devtools" / "__init__.py").exists() and checkout not in sys.path:
        sys.path.append(checkout)
    try:
        return importlib.import_module(f"devtools.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("devtools", f"devtools.{module}"):
            raise
        typer.secho("error: this command runs a development tool (devtools/), which the installed package "
                    "does not include; run it from a source checkout", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="Gateway YAML config."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (metrics switch to multiprocess mode)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the OpenAI-compatible gateway."""
    from .multiproc import fresh_multiproc_dir

    fresh_multiproc_dir(required=workers > 1)  # before anything imports the metrics
    from .config import ConfigError
    from .serve import run

    try:
        run(config, host, port, workers, log_level)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


@app.command()
def upstream(
    port: int = typer.Option(9000, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    models: Optional[list[str]] = typer.Option(None, "--models", help="Model names to serve (repeatable)."),
    data: Optional[Path] = typer.Option(None, help="Benchmark data folder: serve its models, answer with its labels."),
    latency_ms: float = typer.Option(0.0, help="Fixed latency per request."),
    per_token_ms: float = typer.Option(0.0, help="Extra latency per output token."),
    error_rate: float = typer.Option(0.0, help="Fraction of requests that fail."),
    error_status: int = typer.Option(500, help="Status of injected failures."),
    hang: bool = typer.Option(False, help="Never answer (timeout tests)."),
    fail_model: Optional[list[str]] = typer.Option(None, "--fail-model", help="Model that always fails (repeatable)."),
    control: bool = typer.Option(False, help="Serve POST /_control (unauthenticated: changes the behaviour at run "
                                             "time; for tests)."),
) -> None:
    """Run the fake OpenAI-compatible upstream (demo, tests, benchmarks; a development tool)."""
    import uvicorn

    fake = _devtools("fake_upstream")
    names: list[str] = list(models or [])
    records: dict[str, dict[str, float]] = {}
    if data is not None:
        data_models, records = fake.benchmark_records(data)
        names = names or data_models
    if not names:
        typer.secho("error: give --models or --data", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    behaviour = fake.Behaviour(latency_ms=latency_ms, per_token_ms=per_token_ms, error_rate=error_rate,
                               error_status=error_status, hang=hang, fail_models=list(fail_model or []))
    uvicorn.run(fake.FakeUpstream(names, behaviour, records, control=control).app(), host=host, port=port,
                log_level="warning", access_log=False,
                timeout_graceful_shutdown=1)  # hung test requests must not block exit


@app.command()
def demo(
    data: Path = typer.Option(..., "--data", help="Benchmark data folder to build the demo router from."),
    port: int = typer.Option(8000, help="Gateway port."),
    state: Path = typer.Option(Path(".state"), help="Where the router, Redis and the config live."),
) -> None:
    """Build the demo router, start Redis, the fake upstream and the gateway (Ctrl-C stops all)."""
    raise typer.Exit(_devtools("demo").run_demo(data, port, state))


def main() -> None:
    app()
