"""``python -m gateway`` is the ``llm-router`` command."""

from .cli import main

main()
