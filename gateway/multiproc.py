"""Prometheus multiprocess mode: the per-process files' directory, made fresh before metrics load.

Kept free of prometheus_client imports: once ``gateway.metrics`` is imported with
``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client writes into that directory at once, so the
directory must exist (and hold no stale files from an earlier run) before that import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def fresh_multiproc_dir(required: bool) -> Path | None:
    """Empty (or create) the directory named by the environment; with ``required`` make one if unset.

    The directory itself is kept, only its contents go: it may be a mount point (an emptyDir).
    """
    named = os.environ.get(ENV)
    if not named and not required:
        return None
    path = Path(named) if named else Path(tempfile.mkdtemp(prefix="llm-router-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    return path
