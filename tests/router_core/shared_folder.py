"""A benchmark subset written back as a shared-format data folder, for tests that drive the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from router_core.data import BenchmarkData


def write_shared_folder(bench: BenchmarkData, folder: Path) -> Path:
    """``folder/records.jsonl.gz`` with one record per prompt (task, prompt, per-model correctness)."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "records.jsonl.gz", "wt") as fh:
        for p, t, lab in zip(bench.prompts, bench.tasks, bench.labels):
            correct = {m: float(v) for m, v in zip(bench.models, lab) if not np.isnan(v)}
            fh.write(json.dumps({"task": t, "prompt": p, "correct": correct}) + "\n")
    return folder
