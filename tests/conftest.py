"""Shared fixtures: where the real benchmark data lives, and a small real router built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from router_core.data import shared_data_root

    root = shared_data_root()
    assert (root / "routerbench-subset" / "records.jsonl.gz").exists(), (
        f"shared benchmark data not found under {root}; set ROUTER_SHARED_DATA")
    return root
