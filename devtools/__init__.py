"""Development tools: the fake upstream and the demo. Not part of the production package.

``devtools`` lives beside ``gateway`` and ``router_core`` in a source checkout and is left out of
the wheel (pyproject.toml). The ``llm-router upstream`` and ``llm-router demo`` commands import it
only when they run; ``gateway`` never imports it otherwise. The container image carries it (for
docker-compose's demo stack and the chart's opt-in ``demoUpstream``), see deploy/Dockerfile.
"""
