"""The ``llm-router`` console script: router_core's commands plus the gateway's (serve, upstream, demo)."""

from __future__ import annotations

from router_core.cli import app


def main() -> None:
    app()
